"""Failure handling of the messaging runtime against the real Kafka broker and PostgreSQL server."""

import asyncio
import contextlib
import os
import signal

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from medgov_shared.contracts.envelope import wrap
from medgov_shared.messaging import dlq
from medgov_shared.messaging.outbox import EventTooLarge
from medgov_shared.service import Service
from medgov_shared.testing.services import running, topic_tag, wait_until

from . import toy
from .test_runtime import (
    committed_offset, create_topic, grant, publish, publish_in_one_request, read_all, record_in_transaction, revocation,
)
from .toy import ToySettings, build_toy

pytestmark = pytest.mark.integration


@pytest.fixture
async def topic(infra) -> str:
    name = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, name)
    return name


@pytest.fixture
def settings(settings_factory):
    from medgov_shared.testing.services import unique_name

    return settings_factory(ToySettings, kafka_group_id=unique_name("toy"), drain_timeout_s=1.0)


def events(*consent_ids: str) -> list:
    return [wrap(revocation(consent_id), source="medgov/consent", region="daegu") for consent_id in consent_ids]


async def effect_count(service) -> int:
    return await service.pool.fetchval("SELECT count(*) FROM effects")


async def test_cancelled_handler_leaves_nothing(infra, topic, settings):
    slow, = events("slow-1")
    toy.SLOW.add("slow-1")
    await publish(infra.kafka_bootstrap_servers, topic, [slow.to_json()])

    service = build_toy(settings, [topic])
    await service.start()
    await wait_until(lambda: toy.CALLS["slow-1"] >= 1, message="slow handler to start")
    await service.stop()  # the drain timeout passes, the batch task is cancelled
    toy.SLOW.discard("slow-1")

    assert await committed_offset(infra.kafka_bootstrap_servers, settings.kafka_group_id, topic) is None
    async with running(build_toy(settings, [topic])) as restarted:
        await wait_until(lambda: effect_count(restarted), message="event applied after restart")
        rows = await restarted.pool.fetch("SELECT subject FROM effects")
    assert len(rows) == 1
    assert rows[0]["subject"] != "half-written"


async def test_offset_never_passes_failed_event(infra, topic, settings):
    batch = events("ok-a", "flaky-b", "ok-c", "ok-d")
    toy.FLAKY.add("flaky-b")
    await publish(infra.kafka_bootstrap_servers, topic, [event.to_json() for event in batch])

    async with running(build_toy(settings, [topic])) as service:
        await wait_until(lambda: toy.CALLS["flaky-b"] >= 3, message="flaky event retried")
        committed_while_failing = await committed_offset(infra.kafka_bootstrap_servers, settings.kafka_group_id, topic)
        applied_while_failing = await effect_count(service)
        toy.FLAKY.discard("flaky-b")
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 4 FROM effects"), message="all applied")
        await wait_until(
            lambda: _offset_is(infra, settings, topic, 4), message="offset committed past the batch"
        )

    assert committed_while_failing == 1
    assert applied_while_failing == 1
    assert toy.CALLS["ok-c"] == 1


async def _offset_is(infra, settings, topic, expected) -> bool:
    return await committed_offset(infra.kafka_bootstrap_servers, settings.kafka_group_id, topic) == expected


async def test_batch_retried_from_third_event(infra, topic, settings):
    batch = events("first", "second", "third", "fourth")
    toy.FLAKY.add("third")
    await publish(infra.kafka_bootstrap_servers, topic, [event.to_json() for event in batch])

    async with running(build_toy(settings, [topic])) as service:
        await wait_until(lambda: toy.CALLS["third"] >= 1, message="third event attempted")
        toy.FLAKY.discard("third")
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 4 FROM effects"), message="all applied")

    assert toy.CALLS["first"] == 1
    assert toy.CALLS["second"] == 1
    assert toy.CALLS["third"] >= 2
    assert toy.CALLS["fourth"] == 1


class StuckOnce:
    """The service's pool, except that the first connection handed out fails as one asyncpg left mid-operation."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.failed = False

    def get_max_size(self) -> int:
        return self.pool.get_max_size()

    @contextlib.asynccontextmanager
    async def acquire(self):
        async with self.pool.acquire() as connection:
            if not self.failed:
                self.failed = True
                raise asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
            yield connection


async def test_stuck_connection_retries_batch(infra, topic, settings):
    async with running(build_toy(settings, [topic])) as service:
        stuck = StuckOnce(service.pool)
        service.consumer.pool = stuck
        await publish(infra.kafka_bootstrap_servers, topic, [event.to_json() for event in events("one", "two")])
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 2 FROM effects"), message="both applied")
        failures = dict(service.task_failures)
        letters = await service.pool.fetchval("SELECT count(*) FROM dead_letters")

    # A chaos run saw this error after a PostgreSQL restart end the consumer task; now the batch is read again.
    assert stuck.failed is True
    assert failures == {}
    assert letters == 0
    assert toy.CALLS["one"] == 1
    assert toy.CALLS["two"] == 1


async def test_bad_header_values_do_not_crash_loop(infra, topic, settings):
    good, = events("headers-1")
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=good.to_json(), key=b"k",
                                     headers=[("traceparent", b"\xff\xfe\xfa"), ("x-null", None)])
        await producer.send_and_wait(topic, value=b"\xff\xfe not utf-8", key=b"k", headers=[("tracestate", None)])
    finally:
        await producer.stop()

    async with running(build_toy(settings, [topic])) as service:
        await wait_until(lambda: effect_count(service), message="event with bad headers applied")
        letters = await read_all(infra.kafka_bootstrap_servers, f"{topic}.dlq", expected=1)
        await asyncio.sleep(0.5)
        assert service.is_alive()

    assert dlq.headers_dict(letters[0].headers)[dlq.REASON] == "invalid_envelope"


async def test_oversized_event_refused_before_outbox(infra, topic, settings):
    small_limit = settings.model_copy(update={"kafka_max_message_bytes": 2048})
    async with running(build_toy(small_limit, [topic])) as service:
        with pytest.raises(EventTooLarge, match="over the 2048-byte limit"):
            async with service.unit_of_work() as unit:
                await unit.connection.execute("INSERT INTO effects (event_id, subject) VALUES (gen_random_uuid(), 'x')")
                await unit.emit(_padded(), topic=topic)
        outbox_rows = await service.pool.fetchval("SELECT count(*) FROM outbox")
        effects = await effect_count(service)

    assert outbox_rows == 0
    assert effects == 0


def _process_tree(root: int) -> list[int]:
    """The PostgreSQL postmaster and its direct children (backends and background workers)."""
    from pathlib import Path

    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(root):
            children.append(int(status.parent.name))
    return [root, *children]


def _padded():
    from medgov_shared.contracts.events.catalog import DatasetSubjectsAdded
    from medgov_shared.contracts.pseudonym import pseudonymize

    subjects = [pseudonymize(f"p{index}", region="daegu", key=b"k" * 32) for index in range(100)]
    return DatasetSubjectsAdded(dataset_id="ds-big", version=1, institution_id="knuh", chunk_index=0,
                                chunk_count=1, subjects=subjects)


@pytest.mark.slow
async def test_pool_recovers_after_postgres_paused(infra, topic, settings):
    from medgov_shared.testing.infrastructure import launcher_runs_postgres, load_launcher

    launcher = load_launcher()
    pid = launcher.postgres_pid()
    if not launcher_runs_postgres(launcher, infra):
        pytest.skip("pausing PostgreSQL needs the server started by the local launcher, with the same MEDGOV_*_PORT variables as at `make up`")
    before, after = events("pause-before", "pause-after")
    async with running(build_toy(settings, [topic])) as service:
        await publish(infra.kafka_bootstrap_servers, topic, [before.to_json()])
        await wait_until(lambda: effect_count(service), message="first event applied")
        paused = _process_tree(pid)
        for process in paused:  # backends keep serving unless every process is stopped
            os.kill(process, signal.SIGSTOP)
        try:
            await publish(infra.kafka_bootstrap_servers, topic, [after.to_json()])
            await asyncio.sleep(3)
            offset_while_paused = await committed_offset(infra.kafka_bootstrap_servers, settings.kafka_group_id, topic)
        finally:
            for process in paused:
                os.kill(process, signal.SIGCONT)
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 2 FROM effects"), timeout_s=60,
                         message="second event applied after resume")
        await wait_until(lambda: _offset_is(infra, settings, topic, 2), timeout_s=30, message="offset 2")

    assert offset_while_paused == 1


@pytest.mark.slow
async def test_consumer_resumes_after_broker_restart(infra, topic, settings):
    from medgov_shared.testing.infrastructure import launcher_runs_kafka, load_launcher

    launcher = load_launcher()
    if not launcher_runs_kafka(launcher, infra):
        pytest.skip("restarting Kafka needs the broker started by the local launcher, with the same MEDGOV_*_PORT variables as at `make up`")
    before, after = events("broker-before", "broker-after")
    async with running(build_toy(settings, [topic])) as service:
        await publish(infra.kafka_bootstrap_servers, topic, [before.to_json()])
        await wait_until(lambda: effect_count(service), message="first event applied")

        await asyncio.to_thread(launcher.stop_kafka)
        try:
            readiness_while_down = await service.readiness()
        finally:
            await asyncio.to_thread(launcher.start_kafka)
        await publish(infra.kafka_bootstrap_servers, topic, [after.to_json()])
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 2 FROM effects"), timeout_s=90,
                         message="event applied after the broker restart")
        readiness_after = await service.readiness()

    assert readiness_while_down["kafka"].startswith("unreachable")
    assert readiness_after["kafka"] == "ok"


async def test_retry_rereads_rest_of_group(infra, settings):
    """A small poll shares one transaction across partitions; a retried event must not strand the others."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = f"medgov.test-{topic_tag()}.v1"
    await create_topic(infra.kafka_bootstrap_servers, topic, partitions=2)
    first, after_it, other = events("group-flaky", "group-after", "group-other")
    toy.FLAKY.add("group-flaky")
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        # Partition 0 has more events, so it comes first in the group and
        # partition 1's event sits after the failing one.
        await producer.send_and_wait(topic, first.to_json(), key=b"a", partition=0)
        await producer.send_and_wait(topic, after_it.to_json(), key=b"a", partition=0)
        await producer.send_and_wait(topic, other.to_json(), key=b"b", partition=1)
    finally:
        await producer.stop()

    async with running(build_toy(settings, [topic])) as service:
        await wait_until(lambda: toy.CALLS["group-flaky"] >= 2, message="flaky event retried")
        toy.FLAKY.discard("group-flaky")
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 3 FROM effects"), message="all three applied")

    reader = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers, group_id=settings.kafka_group_id,
                              enable_auto_commit=False)
    await reader.start()
    try:
        committed = [await reader.committed(TopicPartition(topic, partition)) for partition in (0, 1)]
    finally:
        await reader.stop()
    assert committed == [2, 1]
    assert toy.CALLS["group-after"] == 1
    assert toy.CALLS["group-other"] == 1


async def test_rest_waits_for_failing_urgent(infra, topic, settings):
    """Events after an urgent one that must be retried are neither applied before it nor skipped."""
    envelopes = [wrap(grant("g-0"), source="medgov/consent", region="daegu"), *events("flaky-r"),
                 wrap(grant("g-1"), source="medgov/consent", region="daegu")]
    toy.FLAKY.add("flaky-r")
    await publish_in_one_request(infra.kafka_bootstrap_servers, topic, envelopes)

    service = Service(
        settings=settings, migrations=toy.MIGRATIONS, consumes=[topic], urgent_event_types=["ConsentRevoked"],
        handlers={"ConsentRevoked": toy.record_revocation, "ConsentGranted": record_in_transaction},
    )
    async with running(service):
        await wait_until(lambda: toy.CALLS["flaky-r"] >= 2, message="urgent event retried")
        applied_while_failing = await service.pool.fetch("SELECT subject FROM effects")
        toy.FLAKY.discard("flaky-r")
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) = 3 FROM effects"), message="all applied")
        rows = await service.pool.fetch("SELECT event_id, applied_at FROM effects")

    applied_at = {row["event_id"]: row["applied_at"] for row in rows}
    assert [row["subject"].split("@")[0] for row in applied_while_failing] == ["g-0"]
    assert applied_at[envelopes[0].id] < applied_at[envelopes[1].id] < applied_at[envelopes[2].id]
