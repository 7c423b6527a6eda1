"""The messaging runtime against the real Kafka broker and PostgreSQL server."""

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry import context as otel_context

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.consent import ConsentGranted, ConsentRevoked, ConsentScope
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.messaging import consumer as consumer_module
from medgov_shared.messaging import context as handler_context
from medgov_shared.messaging import dlq, outbox_retention
from medgov_shared.messaging import relay as relay_module
from medgov_shared.messaging.context import BatchableHandler, HandlerContext, RejectEvent
from medgov_shared.observability.tracing import context_from_headers
from medgov_shared.service import Service
from medgov_shared.testing.fixtures import new_database_name
from medgov_shared.testing.services import running, topic_tag, unique_name, wait_until

from .toy import MIGRATIONS, ToySettings, build_toy

pytestmark = pytest.mark.integration

KEY = b"k" * 32


def revocation(consent_id: str, subject_seed: str = "patient-1") -> ConsentRevoked:
    return ConsentRevoked(
        subject=pseudonymize(subject_seed, region="daegu", key=KEY),
        consent_id=consent_id,
        institution_id="knuh",
        region="daegu",
        scope=ConsentScope(),
        channel="dashboard",
        effective_at=datetime.now(UTC),
    )


async def create_topic(bootstrap: str, name: str, partitions: int = 1, *, with_dead_letters: bool = True) -> None:
    topics = [NewTopic(name, partitions, 1)] + ([NewTopic(f"{name}.dlq", 1, 1)] if with_dead_letters else [])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(topics)
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"k")
    finally:
        await producer.stop()


async def publish_in_one_request(bootstrap: str, topic: str, envelopes: list) -> None:
    """Publish the envelopes in one produce request, so that they reach a consumer in one poll."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, envelope.to_json(), key=b"k") for envelope in envelopes])
    finally:
        await producer.stop()


async def publish_revocations(bootstrap: str, topic: str, consent_ids: list[str]) -> list:
    """Publish one ConsentRevoked envelope per consent id, in order, and return the envelopes."""
    envelopes = [wrap(revocation(consent_id), source="medgov/consent", region="daegu") for consent_id in consent_ids]
    await publish(bootstrap, topic, [envelope.to_json() for envelope in envelopes])
    return envelopes


async def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=None, enable_auto_commit=False)
    await consumer.start()
    records: list = []
    try:
        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for items in batch.values():
                records.extend(items)
            return len(records) >= expected

        await wait_until(enough, timeout_s=timeout_s, message=f"{expected} records on {topic}")
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def toy_topic(infra) -> str:
    name = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, name)
    return name


@pytest.fixture
def toy_settings(settings_factory):
    return settings_factory(ToySettings, kafka_group_id=unique_name("toy"), create_topics=True)


async def test_event_applied_once_despite_redelivery(infra, toy_topic, toy_settings):
    envelope = wrap(revocation("c-1"), source="medgov/consent", region="daegu")
    await publish(infra.kafka_bootstrap_servers, toy_topic, [envelope.to_json(), envelope.to_json()])

    async with running(build_toy(toy_settings, [toy_topic])) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM inbox"), message="inbox row")
        await asyncio.sleep(1.0)
        effects = await service.pool.fetchval("SELECT count(*) FROM effects")

    assert effects == 1


async def test_poison_message_dead_lettered_and_next_applied(infra, toy_topic, toy_settings):
    good = wrap(revocation("c-2"), source="medgov/consent", region="daegu")
    await publish(infra.kafka_bootstrap_servers, toy_topic, [b"{not json", good.to_json()])

    async with running(build_toy(toy_settings, [toy_topic])) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM effects"), message="effect of good event")
        letters = await read_all(infra.kafka_bootstrap_servers, f"{toy_topic}.dlq", expected=1)

    headers = dlq.headers_dict(letters[0].headers)
    assert letters[0].value == b"{not json"
    assert headers[dlq.REASON] == "invalid_envelope"
    assert headers[dlq.ORIGINAL_TOPIC] == toy_topic
    assert headers[dlq.ORIGINAL_OFFSET] == "0"
    assert "CloudEvent" in headers[dlq.ERROR]


async def test_dead_letter_topic_created_when_missing(infra, toy_settings):
    # A topic made without its .dlq, as someone might make an inbound topic by hand.
    topic = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, topic, with_dead_letters=False)
    good = wrap(revocation("c-dlq"), source="medgov/consent", region="daegu")
    await publish(infra.kafka_bootstrap_servers, topic, [b"{not json", good.to_json()])

    async with running(build_toy(toy_settings, [topic])) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM effects"), message="effect of good event")
        letters = await read_all(infra.kafka_bootstrap_servers, f"{topic}.dlq", expected=1)

    assert letters[0].value == b"{not json"
    assert dlq.headers_dict(letters[0].headers)[dlq.REASON] == "invalid_envelope"


async def test_handler_failure_retried_then_dead_lettered(infra, toy_topic, toy_settings):
    bad = wrap(revocation("boom-1"), source="medgov/consent", region="daegu")
    rejected = wrap(revocation("reject-1"), source="medgov/consent", region="daegu")
    good = wrap(revocation("c-3"), source="medgov/consent", region="daegu")
    await publish(infra.kafka_bootstrap_servers, toy_topic, [bad.to_json(), rejected.to_json(), good.to_json()])

    async with running(build_toy(toy_settings, [toy_topic])) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM effects"), message="good event applied")
        letters = await read_all(infra.kafka_bootstrap_servers, f"{toy_topic}.dlq", expected=2)
        recorded = await service.pool.fetch("SELECT reason FROM dead_letters ORDER BY kafka_offset")

    reasons = [dlq.headers_dict(letter.headers)[dlq.REASON] for letter in letters]
    assert reasons == ["handler_failed", "rejected"]
    assert dlq.headers_dict(letters[0].headers)[dlq.ATTEMPTS] == str(toy_settings.max_attempts)
    assert [row["reason"] for row in recorded] == ["handler_failed", "rejected"]


async def _emit_and_send(service: Service, topic: str, consent_ids: list[str]) -> None:
    for consent_id in consent_ids:
        async with service.unit_of_work() as unit:
            await unit.emit(revocation(consent_id), topic=topic)
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"), message="outbox drained"
    )


async def _outbox_consent_ids(service: Service) -> list[str]:
    rows = await service.pool.fetch("SELECT value FROM outbox ORDER BY position")
    return [orjson.loads(row["value"])["data"]["consent_id"] for row in rows]


async def test_outbox_relay_publishes_in_order(infra, toy_topic, toy_settings):
    async with running(build_toy(toy_settings, [toy_topic])) as service:
        await _emit_and_send(service, toy_topic, [f"seq-{index}" for index in range(20)])
        records = await read_all(infra.kafka_bootstrap_servers, toy_topic, expected=20)

    consent_ids = [wrap_id for wrap_id in (r.value for r in records)]
    order = [int(__import__("orjson").loads(value)["data"]["consent_id"].split("-")[1]) for value in consent_ids]
    assert order == list(range(20))


async def test_emit_many_writes_the_rows_emit_writes(infra, toy_settings):
    """emit_many copies the first event's envelope; its outbox rows are those of emit one by one, to the byte."""
    incoming = wrap(revocation("cause"), source="medgov/consent", region="daegu")
    payloads = [revocation(f"many-{index}", subject_seed=f"patient-{index % 2}") for index in range(5)]
    clock = ManualClock(datetime(2026, 12, 5, 9, 30, 0, 123456, tzinfo=UTC))
    rows = {}
    async with running(build_toy(toy_settings.model_copy(update={"role": "relay"}), [])) as service:
        for way in ("emit", "emit_many"):
            async with service.pool.acquire() as connection:
                transaction = connection.transaction()
                await transaction.start()
                context = HandlerContext(connection=connection, outbox=service.outbox, clock=clock, incoming=incoming)
                if way == "emit":
                    for payload in payloads:
                        await context.emit(payload)
                else:
                    await context.emit_many(payloads)
                rows[way] = [tuple(row) for row in await connection.fetch(
                    "SELECT event_id, topic, key, event_type, value, headers FROM outbox ORDER BY position"
                )]
                await transaction.rollback()

    assert [orjson.loads(row[4])["data"]["consent_id"] for row in rows["emit"]] == [f"many-{index}" for index in range(5)]
    assert rows["emit_many"] == rows["emit"]


async def test_relay_sends_neighbours_of_rejected_event(infra, toy_settings):
    """On a topic whose size limit is below the service's, the oversized event is marked failed and its neighbours go out."""
    name = f"medgov.test-{topic_tag()}-small.v1"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs={"max.message.bytes": "2000"})])
    finally:
        await admin.close()
    oversized = revocation("big-1").model_copy(
        update={"scope": ConsentScope(kind="datasets", dataset_ids=tuple(f"ds-knuh-ct-{index:04d}" for index in range(200)))}
    )

    async with running(build_toy(toy_settings.model_copy(update={"role": "relay"}), [])) as service:
        for event in (revocation("fits-1"), oversized, revocation("fits-2")):
            async with service.unit_of_work() as unit:
                await unit.emit(event, topic=name)
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL"),
            message="every outbox row sent or failed",
        )
        rows = await service.pool.fetch("SELECT sent_at IS NOT NULL AS sent, last_error FROM outbox ORDER BY position")
        # After the rejection the producer still publishes to the same partition.
        async with service.unit_of_work() as unit:
            await unit.emit(revocation("fits-3"), topic=name)
        records = await read_all(infra.kafka_bootstrap_servers, name, expected=3)

    assert [row["sent"] for row in rows] == [True, False, True]
    assert "broker rejected ConsentRevoked as too large" in rows[1]["last_error"]
    assert [orjson.loads(record.value)["data"]["consent_id"] for record in records] == ["fits-1", "fits-2", "fits-3"]
    assert all(dict(record.headers)["traceparent"] for record in records)


async def test_outbox_retention_deletes_old_sent_rows(infra, toy_topic, toy_settings, monkeypatch):
    """Only rows sent before the cut-off go, at most MAX_ROWS_PER_RUN read per run, oldest first."""
    monkeypatch.setattr(outbox_retention, "MAX_ROWS_PER_RUN", 4)
    settings = toy_settings.model_copy(update={"role": "relay", "outbox_prune_interval_s": 0})
    prune = outbox_retention.outbox_pruner("consent", keep_sent_days=1)
    async with running(build_toy(settings, [toy_topic])) as service:
        await _emit_and_send(service, toy_topic, ["rejected", "old-1", "old-2", "recent", "old-3", "old-4"])
        async with service.pool.acquire() as connection:
            await connection.execute(
                "UPDATE outbox SET sent_at = now() - interval '2 days' WHERE convert_from(value, 'UTF8') LIKE '%old-%'"
            )
            # A row edited by hand may have both times; being rejected, it stays.
            await connection.execute(
                "UPDATE outbox SET sent_at = now() - interval '2 days', failed_at = now() - interval '2 days' "
                "WHERE convert_from(value, 'UTF8') LIKE '%rejected%'"
            )
        async with service.unit_of_work() as unit:
            await prune(unit)
        after_first = await _outbox_consent_ids(service)
        async with service.unit_of_work() as unit:
            await prune(unit)
        after_second = await _outbox_consent_ids(service)

    assert after_first == ["rejected", "recent", "old-3", "old-4"]
    assert after_second == ["rejected", "recent"]


async def test_outbox_retention_runs_beside_relay(infra, toy_topic, toy_settings):
    settings = toy_settings.model_copy(update={"outbox_prune_interval_s": 0.2, "outbox_keep_sent_days": 1})
    async with running(build_toy(settings, [toy_topic])) as service:
        await _emit_and_send(service, toy_topic, ["aged", "recent"])
        await service.pool.execute("UPDATE outbox SET sent_at = now() - interval '2 days' WHERE convert_from(value, 'UTF8') LIKE '%aged%'")
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) = 1 FROM outbox"), message="the old sent row deleted"
        )
        remaining = await _outbox_consent_ids(service)

    assert remaining == ["recent"]


async def test_relay_in_a_process_of_its_own(infra, toy_topic, toy_settings):
    """A worker emits without relaying; a relay-only process publishes its outbox and serves the probes."""
    worker = build_toy(toy_settings.model_copy(update={"role": "worker"}), [toy_topic])
    relay = build_toy(toy_settings.model_copy(update={"role": "relay"}), [toy_topic])
    async with running(worker):
        async with worker.unit_of_work() as unit:
            await unit.emit(revocation("split-0"), topic=toy_topic)
        await asyncio.sleep(1.0)
        unsent_without_relay = await worker.pool.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        async with running(relay):
            records = await read_all(infra.kafka_bootstrap_servers, toy_topic, expected=1)
            checks = await relay.readiness()
        routes = {getattr(route, "path", "") for route in relay.app().routes}

    assert worker.relay is None
    assert worker.consumer is not None
    assert relay.consumer is None
    assert relay.relay is not None
    assert unsent_without_relay == 1
    assert orjson.loads(records[0].value)["data"]["consent_id"] == "split-0"
    assert set(checks) == {"database", "kafka", "relay"}
    assert {"/healthz", "/readyz", "/metrics"} <= routes


async def test_relay_forwards_trace_context_unrecorded(infra, toy_topic, toy_settings, monkeypatch):
    """With no span recorded, an event goes out with the trace context it was emitted in, or a new one."""
    monkeypatch.setattr(relay_module, "spans_recorded", lambda: False)
    emitted_in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    async with running(build_toy(toy_settings, [toy_topic])) as service:
        token = otel_context.attach(context_from_headers({"traceparent": emitted_in}))
        try:
            async with service.unit_of_work() as unit:
                await unit.emit(revocation("traced"), topic=toy_topic)
        finally:
            otel_context.detach(token)
        async with service.unit_of_work() as unit:
            await unit.emit(revocation("untraced"), topic=toy_topic)
        records = await read_all(infra.kafka_bootstrap_servers, toy_topic, expected=2)

    headers = {orjson.loads(record.value)["data"]["consent_id"]: dict(record.headers) for record in records}
    assert headers["traced"]["traceparent"] == emitted_in.encode()
    new_trace_id = headers["untraced"]["traceparent"].decode().split("-")[1]
    assert new_trace_id not in (emitted_in.split("-")[1], "0" * 32)


async def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    from aiokafka import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def test_sigkill_between_database_and_offset_commit(infra, toy_topic, toy_settings, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import asyncpg

    producer_settings = toy_settings.model_copy(update={"kafka_group_id": unique_name("toy-producer")})
    async with running(build_toy(producer_settings, [f"{toy_topic}-unused"])) as producer_side:
        async with producer_side.unit_of_work() as unit:
            sent = await unit.emit(revocation("crash-1"), topic=toy_topic)
        await read_all(infra.kafka_bootstrap_servers, toy_topic, expected=1)

    consumer_database = toy_settings.database_url.rsplit("/", 1)[0] + "/" + new_database_name("toy_consumer")
    env = {
        "MEDGOV_CONSENT_REGION": "daegu",
        "MEDGOV_CONSENT_DATABASE_URL": consumer_database,
        "MEDGOV_CONSENT_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MEDGOV_CONSENT_JWT_SECRET": "test-only",
        "MEDGOV_CONSENT_KAFKA_GROUP_ID": toy_settings.kafka_group_id,
        "TOY_TOPIC": toy_topic,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    script = Path(__file__).with_name("crash_toy.py")
    crashed = subprocess.run([sys.executable, str(script)], env={**__import__("os").environ, **env,
                             "CRASH_AFTER_DB_COMMIT": "1"}, timeout=120, capture_output=True)

    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    connection = await asyncpg.connect(consumer_database)
    try:
        assert await connection.fetchval("SELECT count(*) FROM effects WHERE event_id = $1", sent.id) == 1
        assert await committed_offset(infra.kafka_bootstrap_servers, toy_settings.kafka_group_id, toy_topic) is None

        restarted = subprocess.Popen([sys.executable, str(script)], env={**__import__("os").environ, **env})
        try:
            await wait_until(
                lambda: committed_offset(infra.kafka_bootstrap_servers, toy_settings.kafka_group_id, toy_topic),
                timeout_s=60, message="offset commit after restart",
            )
        finally:
            restarted.terminate()
            restarted.wait(timeout=30)

        assert await connection.fetchval("SELECT count(*) FROM effects WHERE event_id = $1", sent.id) == 1
        assert await connection.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", sent.id) == 1
    finally:
        await connection.close()


@pytest.mark.parametrize("stop_signal", ["SIGTERM", "SIGINT"])
async def test_stop_signal_drains_and_exits_zero(infra, toy_topic, toy_settings, stop_signal):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from medgov_shared.testing.services import free_port

    port = free_port()
    env = {
        **os.environ,
        "MEDGOV_CONSENT_REGION": "daegu",
        "MEDGOV_CONSENT_DATABASE_URL": toy_settings.database_url,
        "MEDGOV_CONSENT_KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MEDGOV_CONSENT_JWT_SECRET": "test-only",
        "MEDGOV_CONSENT_KAFKA_GROUP_ID": toy_settings.kafka_group_id,
        "MEDGOV_CONSENT_HTTP_PORT": str(port),
        "MEDGOV_CONSENT_LOG_FORMAT": "json",
        "TOY_TOPIC": toy_topic,
        "SERVE": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    script = Path(__file__).with_name("crash_toy.py")
    process = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_until(lambda: _ready(port), timeout_s=60, message="toy service ready")
        process.send_signal(getattr(signal, stop_signal))
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = output.decode()
    assert process.returncode == 0, text[-3000:]
    assert '"service exited"' in text, text[-3000:]
    assert f'"signal": "{stop_signal}"' in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]


async def _ready(port: int) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://127.0.0.1:{port}/readyz", timeout=2)).status_code == 200
    except httpx.HTTPError:
        return False


async def _forward(port: int, target: str) -> asyncio.Server:
    """Listen on `port` and pass each connection through to `target` (host:port), both ways."""
    host, target_port = target.rsplit(":", 1)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def connect(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection(host, int(target_port))
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    return await asyncio.start_server(connect, "127.0.0.1", port)


@pytest.mark.parametrize("backend", ["broker", "database"])
async def test_start_waits_for_backend(infra, toy_topic, toy_settings, backend):
    """A service started before its broker or database waits for it, then works, instead of failing its start."""
    from urllib.parse import urlsplit

    from medgov_shared.testing.services import free_port

    port = free_port()
    if backend == "broker":
        target = infra.kafka_bootstrap_servers.split(",")[0]
        settings = toy_settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{port}"})
    else:
        parts = urlsplit(toy_settings.database_url)
        target = f"{parts.hostname}:{parts.port}"
        settings = toy_settings.model_copy(
            update={"database_url": parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}").geturl()}
        )
    service = build_toy(settings, [toy_topic])
    starting = asyncio.create_task(service.start())
    await asyncio.sleep(4)
    waited = not starting.done()
    forwarder = await _forward(port, target)
    try:
        await asyncio.wait_for(starting, timeout=60)
        sent = wrap(revocation("after-wait"), source="medgov/consent", region="daegu")
        await publish(infra.kafka_bootstrap_servers, toy_topic, [sent.to_json()])
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 1 FROM effects"), message="event applied")
    finally:
        if not starting.done():
            starting.cancel()
        await service.stop()
        forwarder.close()

    assert waited, f"start ended while the {backend} was away"


# -- a BatchableHandler takes a poll batch at once -------------------------------------

MANY_CALLS: list[list[str]] = []
ONE_CALLS: list[str] = []
ECHO_TOPIC: dict[str, str] = {}


async def record_one(context, payload: ConsentRevoked) -> None:
    ONE_CALLS.append(payload.consent_id)
    await _record(context, payload)


async def record_many(items) -> None:
    MANY_CALLS.append([payload.consent_id for _, payload in items])
    for context, payload in items:
        await _record(context, payload)


async def _record(context, payload: ConsentRevoked) -> None:
    await context.connection.execute(
        "INSERT INTO effects (event_id, subject) VALUES ($1, $2)", context.incoming.id, payload.consent_id
    )
    if payload.consent_id.startswith("reject-"):
        raise RejectEvent(f"consent {payload.consent_id} is marked for rejection")
    await context.emit(revocation(f"echo-{payload.consent_id}"), topic=ECHO_TOPIC["name"])


async def echo_grant(context, payload: ConsentGranted) -> None:
    # A handler that no batch takes, so its event ends the run of revocations before it.
    await context.emit(revocation(f"echo-{payload.consent_id}"), topic=ECHO_TOPIC["name"])


def build_batching_toy(settings: ToySettings, topic: str) -> Service:
    return Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers={"ConsentRevoked": BatchableHandler(one=record_one, many=record_many), "ConsentGranted": echo_grant},
        consumes=[topic],
    )


@pytest.fixture
async def echo_topic(infra, toy_topic) -> str:
    name = f"{toy_topic}-echo"
    await create_topic(infra.kafka_bootstrap_servers, name)
    ECHO_TOPIC["name"] = name
    MANY_CALLS.clear()
    ONE_CALLS.clear()
    return name


async def test_batchable_handler_takes_batch(infra, toy_topic, echo_topic, toy_settings):
    envelopes = [wrap(revocation(f"b-{index}"), source="medgov/consent", region="daegu") for index in range(5)]
    repeated = [envelopes[0], *envelopes[:3], envelopes[2], *envelopes[3:]]
    await publish(infra.kafka_bootstrap_servers, toy_topic, [envelope.to_json() for envelope in repeated])

    async with running(build_batching_toy(toy_settings, toy_topic)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 5 FROM effects"), message="five effects")
        await asyncio.sleep(0.5)
        effects = await service.pool.fetch("SELECT subject FROM effects ORDER BY subject")
        inbox = await service.pool.fetchval("SELECT count(*) FROM inbox")
        echoed = await service.pool.fetch("SELECT event_id, value FROM outbox ORDER BY position")

    handled = [consent_id for call in MANY_CALLS for consent_id in call] + ONE_CALLS
    assert [row["subject"] for row in effects] == [f"b-{index}" for index in range(5)]
    assert inbox == 5
    assert sorted(handled) == [f"b-{index}" for index in range(5)]
    assert MANY_CALLS, "the batch handler was never given a run of events"
    assert [orjson.loads(row["value"])["data"]["consent_id"] for row in echoed] == [f"echo-b-{index}" for index in range(5)]
    assert {orjson.loads(row["value"])["causationid"] for row in echoed} == {str(envelope.id) for envelope in envelopes}


async def test_unrecorded_batch_forwards_trace(infra, toy_topic, echo_topic, toy_settings, monkeypatch):
    """Without recorded spans, a batch's events carry the incoming trace context, or a new one when there is none."""
    monkeypatch.setattr(consumer_module, "spans_recorded", lambda: False)
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, linger_ms=200)
    await producer.start()
    try:
        sent = [
            await producer.send(toy_topic, wrap(revocation(name), source="medgov/consent", region="daegu").to_json(),
                                key=b"k", headers=headers)
            for name, headers in (("t-traced", [("traceparent", incoming.encode())]), ("t-untraced", []),
                                  ("t-malformed", [("traceparent", b"00-zz-1")]))
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()

    async with running(build_batching_toy(toy_settings, toy_topic)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 3 FROM outbox"), message="three echoes")
        echoed = await service.pool.fetch("SELECT value, headers FROM outbox ORDER BY position")

    headers = {orjson.loads(row["value"])["data"]["consent_id"]: row["headers"] for row in echoed}
    assert MANY_CALLS, "the batch handler was never given a run of events"
    assert headers["echo-t-traced"] == {"traceparent": incoming}
    for name in ("echo-t-untraced", "echo-t-malformed"):
        version, trace_id, span_id, flags = headers[name]["traceparent"].split("-")
        assert (version, flags) == ("00", "00")
        assert len(trace_id) == 32
        assert trace_id not in (incoming.split("-")[1], "0" * 32)
        assert len(span_id) == 16
        assert span_id != "0" * 16
    assert headers["echo-t-untraced"]["traceparent"] != headers["echo-t-malformed"]["traceparent"]


async def test_outbox_rows_flushed_during_batch_keep_order(infra, toy_topic, echo_topic, toy_settings, monkeypatch):
    """With a bound of two staged rows, a batch inserts its events' outbox rows in several statements, in order."""
    monkeypatch.setattr(handler_context, "OUTBOX_FLUSH_ROWS", 2)
    names = ["f-0", "f-1", "f-2", "reject-f-3", "f-4", "f-5", "f-6"]
    await publish_revocations(infra.kafka_bootstrap_servers, toy_topic, names)

    async with running(build_batching_toy(toy_settings, toy_topic)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 6 FROM effects"), message="six effects")
        await asyncio.sleep(0.5)
        echoed = await service.pool.fetch("SELECT value FROM outbox ORDER BY position")
        letters = await service.pool.fetchval("SELECT count(*) FROM dead_letters")

    expected = [f"echo-{name}" for name in names if not name.startswith("reject-")]
    assert [orjson.loads(row["value"])["data"]["consent_id"] for row in echoed] == expected
    assert letters == 1


async def test_batch_flush_keeps_emission_order(infra, toy_topic, echo_topic, toy_settings, monkeypatch):
    """A batch handler's own events are inserted every two rows while it runs, and all of them once, in order."""
    monkeypatch.setattr(handler_context, "OUTBOX_FLUSH_ROWS", 2)
    names = [f"g-{index}" for index in range(7)]
    await publish_revocations(infra.kafka_bootstrap_servers, toy_topic, names)

    async with running(build_batching_toy(toy_settings, toy_topic)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 7 FROM effects"), message="seven effects")
        await asyncio.sleep(0.5)
        echoed = await service.pool.fetch("SELECT value FROM outbox ORDER BY position")

    assert any(len(call) > 2 for call in MANY_CALLS), f"no batch crossed the bound: {MANY_CALLS}"
    assert [orjson.loads(row["value"])["data"]["consent_id"] for row in echoed] == [f"echo-{name}" for name in names]


async def test_batch_flush_keeps_earlier_events_first(infra, toy_topic, echo_topic, toy_settings, monkeypatch):
    """Rows of a handler that completed go into the outbox before those of a batch that crosses the bound after it."""
    monkeypatch.setattr(handler_context, "OUTBOX_FLUSH_ROWS", 2)
    granted = ConsentGranted(
        subject=revocation("x").subject, consent_id="grant-0", institution_id="knuh", region="daegu",
        scope=ConsentScope(), channel="fhir", granted_at=datetime.now(UTC),
    )
    envelopes = [wrap(granted, source="medgov/consent", region="daegu")]
    envelopes += [wrap(revocation(f"h-{index}"), source="medgov/consent", region="daegu") for index in range(1, 4)]
    await publish(infra.kafka_bootstrap_servers, toy_topic, [envelope.to_json() for envelope in envelopes])

    async with running(build_batching_toy(toy_settings, toy_topic)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 4 FROM outbox"), message="four echoes")
        await asyncio.sleep(0.5)
        echoed = await service.pool.fetch("SELECT value FROM outbox ORDER BY position")

    assert MANY_CALLS == [["h-1", "h-2", "h-3"]]
    assert [orjson.loads(row["value"])["data"]["consent_id"] for row in echoed] == ["echo-grant-0", "echo-h-1", "echo-h-2", "echo-h-3"]


async def test_batchable_handler_failure_applies_one_by_one(infra, toy_topic, echo_topic, toy_settings):
    names = ["first", "reject-second", "third"]
    envelopes = await publish_revocations(infra.kafka_bootstrap_servers, toy_topic, names)

    async with running(build_batching_toy(toy_settings, toy_topic)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM dead_letters"), message="dead letter")
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 2 FROM effects"), message="two effects")
        effects = await service.pool.fetch("SELECT subject FROM effects ORDER BY subject")
        letters = await service.pool.fetch("SELECT event_id, reason FROM dead_letters")
        echoed = await service.pool.fetchval("SELECT count(*) FROM outbox")

    assert [row["subject"] for row in effects] == ["first", "third"]
    assert [(row["event_id"], row["reason"]) for row in letters] == [(str(envelopes[1].id), "rejected")]
    assert echoed == 2
    assert ONE_CALLS.count("reject-second") == 1


async def record_in_transaction(context: HandlerContext, payload: ConsentGranted | ConsentRevoked) -> None:
    # Handlers run in savepoints, whose rows carry their own xmin; the top-level id names the transaction.
    await context.connection.execute(
        "INSERT INTO effects (event_id, subject) VALUES ($1, $2 || '@' || pg_current_xact_id()::text)",
        context.incoming.id, payload.consent_id,
    )


def build_urgent_toy(settings: ToySettings, topic: str, urgent: list[str]) -> Service:
    return Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers={"ConsentRevoked": record_in_transaction, "ConsentGranted": record_in_transaction},
        consumes=[topic],
        urgent_event_types=urgent,
    )


def grant(consent_id: str) -> ConsentGranted:
    return ConsentGranted(
        subject=revocation("x").subject, consent_id=consent_id, institution_id="knuh", region="daegu",
        scope=ConsentScope(), channel="fhir", granted_at=datetime.now(UTC),
    )


@pytest.mark.parametrize("urgent", [["ConsentRevoked"], []], ids=["urgent", "not-urgent"])
async def test_urgent_event_commits_first(infra, toy_topic, toy_settings, urgent):
    """A revocation and the events before it commit in one transaction, the events after it in a later one."""
    events = [grant("g-0"), grant("g-1"), revocation("r-0"), grant("g-2"), grant("g-3")]
    await publish_in_one_request(infra.kafka_bootstrap_servers, toy_topic,
                                 [wrap(event, source="medgov/consent", region="daegu") for event in events])

    async with running(build_urgent_toy(toy_settings, toy_topic, urgent)) as service:
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 5 FROM effects"), message="five effects")
        rows = await service.pool.fetch("SELECT subject FROM effects")

    transaction = {consent_id: int(xact) for consent_id, xact in (row["subject"].split("@") for row in rows)}
    if urgent:
        assert transaction["g-0"] == transaction["g-1"] == transaction["r-0"]
        assert transaction["g-2"] == transaction["g-3"] > transaction["r-0"]
    else:
        assert len(set(transaction.values())) == 1
