"""The runtime's HTTP hardening: body size limit, strict JSON, authentication before the body, no CDN docs,
and readiness when a background task dies."""

import asyncio
import uuid
from typing import Annotated

import asyncpg
import pytest
import structlog
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from medgov_shared.messaging.consumer import EventConsumer
from medgov_shared.messaging.relay import OutboxRelay
from medgov_shared.service import Service
from medgov_shared.testing.services import http_client, running, topic_tag, unique_name, wait_until
from medgov_shared.web.auth import Principal, issue_token, require_roles

from .test_runtime import create_topic, revocation
from .toy import MIGRATIONS, ToySettings, build_toy

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


class Note(BaseModel):
    text: str
    weight: float = 1.0


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post("/notes")
    async def add_note(note: Note, principal: Annotated[Principal, Depends(require_roles("operator"))]) -> dict:
        return {"text": note.text, "weight": note.weight, "by": principal.id}

    @router.post("/public-notes")
    async def add_public_note(note: Note) -> dict:
        return {"text": note.text}

    @router.put("/blobs")
    async def upload_blob(request: Request) -> dict:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    return router


@pytest.fixture
async def client(settings_factory):
    settings = settings_factory(ToySettings, http_max_body_bytes=LIMIT)
    service = Service(settings=settings, migrations=MIGRATIONS, handlers={}, routers=[build_router()])
    async with running(service), http_client(service) as client:
        yield client


@pytest.fixture
def operator(jwt_secret) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(jwt_secret, subject_id='op-1', roles=['operator'])}"}


async def test_valid_note_accepted(client, operator):
    response = await client.post("/notes", json={"text": "ok", "weight": 2.5}, headers=operator)

    assert response.status_code == 200, response.text
    assert response.json() == {"text": "ok", "weight": 2.5, "by": "op-1"}


async def test_body_over_limit_413(client, operator):
    body = b'{"text": "' + b"x" * LIMIT + b'"}'

    response = await client.post("/notes", content=body, headers={**operator, "Content-Type": "application/json"})

    assert response.status_code == 413
    assert f"limit of {LIMIT} bytes" in response.json()["detail"]


async def test_anonymous_body_over_limit_401(client):
    body = b'{"text": "' + b"x" * LIMIT + b'"}'

    response = await client.post("/notes", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 401
    assert response.json()["detail"] == "missing bearer token"


async def test_chunked_body_over_limit_413(client, operator):
    async def chunks():
        yield b'{"text": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    response = await client.post("/notes", content=chunks(), headers={**operator, "Content-Type": "application/json"})

    assert response.status_code == 413
    assert "request body too large" in response.json()["detail"]


async def test_streamed_route_not_limited(client):
    response = await client.put("/blobs", content=b"x" * (LIMIT * 3))

    assert response.status_code == 200
    assert response.json() == {"size": LIMIT * 3}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"text": "a", "weight": NaN}', "unexpected character"),
        (b'{"text": "a", "weight": Infinity}', "unexpected character"),
        (b'{"text": "a", "weight": -Infinity}', "no digit after sign"),
        (b'{"text": "\\ud800"}', "surrogate"),
        (b'{"text": "\\udc00"}', "surrogate"),
        (b'{"text": "\xed\xa0\x80"}', "not UTF-8 text (invalid byte 0xed at offset 10)"),
        (b'{"subject": "\xff"}', "not UTF-8 text (invalid byte 0xff at offset 13); send JSON as UTF-8"),
        ("\ufeff{}".encode("utf-16-le"), "UTF-16 or UTF-32 text (it starts with a byte-order mark); send JSON as UTF-8"),
    ],
)
async def test_non_standard_json_422(body, reason, client, operator):
    response = await client.post("/notes", content=body, headers={**operator, "Content-Type": "application/json"})

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("invalid JSON body: ")
    assert reason in response.json()["detail"]


async def test_anonymous_malformed_body_401(client):
    response = await client.post("/notes", content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 401
    assert response.json()["detail"] == "missing bearer token"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_bad_token_malformed_body_401(client):
    headers = {"Content-Type": "application/json", "Authorization": "Bearer not-a-token"}

    response = await client.post("/notes", content=b"{not json", headers=headers)

    assert response.status_code == 401
    assert response.json()["detail"] == "invalid bearer token: not a JWT (three base64url parts: header, claims, signature)"


async def test_token_of_three_odd_parts_401(client):
    # Three parts that are not base64url JSON: PyJWT's own message named a codec error here.
    response = await client.post("/notes", json={"text": "ok"}, headers={"Authorization": "Bearer abc.def.ghi"})

    assert response.status_code == 401
    assert response.json()["detail"] == "invalid bearer token: not a JWT (three base64url parts: header, claims, signature)"


async def test_public_route_malformed_body_422(client):
    response = await client.post("/public-notes", content=b"[1,", headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("invalid JSON body: ")


async def test_non_json_content_type_415(client, operator):
    headers = {**operator, "Content-Type": "text/plain"}

    response = await client.post("/notes", content=b"\x80", headers=headers)

    assert response.status_code == 415
    assert "'text/plain'" in response.json()["detail"]


async def test_deeply_nested_body_answered(client, operator):
    headers = {**operator, "Content-Type": "application/json"}

    for depth in (129, 950, 1000, 1100):
        response = await client.post("/notes", content=b"[" * depth + b"]" * depth, headers=headers)

        assert response.status_code == 422, (depth, response.text[:200])
        assert response.json()["detail"].startswith("invalid JSON body: ")


async def test_nesting_at_limit_reaches_validation(client, operator):
    headers = {**operator, "Content-Type": "application/json"}
    body = b'{"text": "a", "extra": ' + b"[" * 127 + b"]" * 127 + b"}"

    response = await client.post("/notes", content=body, headers=headers)

    assert response.status_code == 200, response.text


async def test_validation_error_omits_input(client, operator):
    response = await client.post("/notes", json={"text": 5}, headers=operator)

    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": ["body", "text"], "msg": "Input should be a valid string",
                                          "type": "string_type"}]


async def test_docs_offline(client):
    docs = await client.get("/docs")
    redoc = await client.get("/redoc")
    schema = await client.get("/openapi.json")

    assert docs.status_code == 404
    assert redoc.status_code == 404
    assert schema.status_code == 200
    assert "/notes" in schema.json()["paths"]


async def test_dead_consumer_logged_and_not_ready(infra, settings_factory, monkeypatch):
    topic = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, topic)

    async def crash(self) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("consumer loop bug")

    monkeypatch.setattr(EventConsumer, "run", crash)
    settings = settings_factory(ToySettings, kafka_group_id=unique_name("toy"), create_topics=True)
    service = build_toy(settings, [topic])
    with structlog.testing.capture_logs() as logs:
        async with running(service), http_client(service) as client:
            await wait_until(lambda: not service.is_alive(), timeout_s=10, message="the consumer task to end")
            response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["task:consumer"] == "failed: RuntimeError: consumer loop bug"
    failures = [entry for entry in logs if entry["event"] == "background task failed"]
    assert len(failures) == 1
    assert failures[0]["task"] == "consumer"
    assert failures[0]["log_level"] == "error"


async def test_route_max_body_size_wins(settings_factory, operator):
    router = APIRouter()

    @router.post("/large-notes", max_body_size=LIMIT * 4)
    async def add_large_note(note: Note) -> dict:
        return {"length": len(note.text)}

    settings = settings_factory(ToySettings, http_max_body_bytes=LIMIT)
    service = Service(settings=settings, migrations=MIGRATIONS, handlers={}, routers=[router])
    async with running(service), http_client(service) as client:
        accepted = await client.post("/large-notes", json={"text": "x" * (LIMIT * 2)})
        rejected = await client.post("/large-notes", json={"text": "x" * (LIMIT * 5)})

    assert accepted.status_code == 200, accepted.text[:200]
    assert accepted.json() == {"length": LIMIT * 2}
    assert rejected.status_code == 413  # FastAPI's own route limit rejects this one


async def test_task_failure_asks_the_process_to_exit(infra, settings_factory, monkeypatch):
    topic = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, topic)

    async def crash(self) -> None:
        raise RuntimeError("consumer loop bug")

    monkeypatch.setattr(EventConsumer, "run", crash)
    settings = settings_factory(ToySettings, kafka_group_id=unique_name("toy"), create_topics=True)
    service = build_toy(settings, [topic])
    exit_requests: list[str] = []
    service.on_task_failure = lambda: exit_requests.append("exit")
    async with running(service):
        await wait_until(lambda: bool(exit_requests), timeout_s=10, message="the exit request")

    assert exit_requests == ["exit"]
    assert dict(service.task_failures) == {"consumer": "failed: RuntimeError: consumer loop bug"}


async def test_relay_survives_an_unexpected_error(infra, settings_factory, monkeypatch):
    topic = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, topic)
    original = OutboxRelay.publish_pending
    failures = [RuntimeError("relay bug")]  # not a connection error: the relay logs it and tries again

    async def fail_once(self) -> int:
        if failures:
            raise failures.pop()
        return await original(self)

    monkeypatch.setattr(OutboxRelay, "publish_pending", fail_once)
    settings = settings_factory(ToySettings, kafka_group_id=unique_name("toy"), create_topics=True)
    async with running(build_toy(settings, [topic])) as service:
        async with service.unit_of_work() as unit:
            await unit.emit(revocation(f"relay-{uuid.uuid4().hex[:8]}"), topic=topic)
        await wait_until(
            lambda: service.pool.fetchval("SELECT bool_and(sent_at IS NOT NULL) FROM outbox"),
            timeout_s=15, message="the outbox row to be sent after the relay's failure",
        )
        checks = await service.readiness()

    assert failures == []
    assert service.task_failures == {}
    assert checks["relay"] == "ok"


async def test_unreachable_database_answers_503(settings_factory):
    router = APIRouter()

    @router.get("/needs-database")
    async def needs_database() -> dict:
        raise asyncpg.CannotConnectNowError("the database system is starting up")

    service = Service(settings=settings_factory(ToySettings), migrations=MIGRATIONS, handlers={}, routers=[router])
    async with running(service), http_client(service) as client:
        response = await client.get("/needs-database")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "database or broker is unavailable (CannotConnectNowError)" in response.json()["detail"]


async def test_empty_body_named(client, operator):
    response = await client.post("/notes", content=b"", headers={**operator, "Content-Type": "application/json"})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"] == ["body"]
    assert detail[0]["msg"].startswith("request body is missing; send a JSON object")
