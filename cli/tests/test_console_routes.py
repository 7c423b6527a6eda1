"""The local console requires no token, so it offers only reads; its status panel responds while services stall."""

import asyncio

import httpx
from fastapi.routing import APIRoute
from starlette.routing import Mount

from medgov_cli.console.app import create_console


def test_console_offers_only_reads() -> None:
    app = create_console({"review": "http://127.0.0.1:1", "catalog": "http://127.0.0.1:1",
                          "consent": "http://127.0.0.1:1", "grants": "http://127.0.0.1:1"}, "k" * 32)

    api_methods = {method for route in app.routes if isinstance(route, APIRoute) for method in route.methods}
    mounts = [route.path for route in app.routes if isinstance(route, Mount)]

    assert api_methods <= {"GET", "HEAD"}
    assert mounts == ["/static"]


async def test_service_panel_answers_while_services_stall() -> None:
    # Four "services" that accept connections and never respond, as during a stalled database.
    servers = [await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0) for _ in range(4)]
    urls = {
        name: f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        for name, server in zip(("review", "catalog", "consent", "grants"), servers, strict=True)
    }
    app = create_console(urls, "k" * 32)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
            # Checked one after another, four 1.5 s timeouts took 6 s. The panel must respond well before that.
            response = await asyncio.wait_for(client.get("/api/services"), timeout=4)
    finally:
        for server in servers:
            server.close()

    assert response.status_code == 200
    assert {name: item["ready"] for name, item in response.json()["services"].items()} == dict.fromkeys(urls, False)


async def test_service_rejection_passed_through() -> None:
    # A catalog that rejects every request as the real one rejects a NUL in the search text.
    body = b'{"detail":"invalid input: text contains a NUL character"}'

    async def reject(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 422 Unprocessable Content\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(reject, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    app = create_console({"review": url, "catalog": url, "consent": url, "grants": url}, "k" * 32)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as client:
            response = await client.get("/api/search", params={"q": "\x00"})
    finally:
        server.close()

    assert response.status_code == 422
    assert response.json()["detail"] == "invalid input: text contains a NUL character"
