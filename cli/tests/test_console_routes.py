"""The local console asks for no token, so it must offer nothing but reads."""

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
