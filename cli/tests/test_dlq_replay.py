"""`medgov dlq replay` sends each original record once, however many services dead-lettered it."""

import os
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.messaging import dlq
from medgov_shared.testing.services import topic_tag, wait_until

pytestmark = pytest.mark.integration


def dead_letter_headers(topic: str, offset: int | None, reason: str, group: str) -> list[tuple[str, bytes]]:
    """Return the headers that send_dead_letter writes, without the original position if `offset` is None."""
    headers = [(dlq.REASON, reason.encode()), (dlq.ERROR, b"test error"), (dlq.ORIGINAL_TOPIC, topic.encode()),
               (dlq.CONSUMER_GROUP, group.encode())]
    if offset is not None:
        headers += [(dlq.ORIGINAL_PARTITION, b"0"), (dlq.ORIGINAL_OFFSET, str(offset).encode())]
    return headers


async def create_topics(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, letters: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in letters:
            await producer.send_and_wait(topic, value, key=b"knuh", headers=headers)
    finally:
        await producer.stop()


async def read_records(bootstrap: str, topic: str, expected: int) -> list:
    """Read `topic` from its start until `expected` records arrived, and for one more second so that extra ones show."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    found: list = []
    try:
        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            found.extend(record for records in batch.values() for record in records)
            return len(found) >= expected

        await wait_until(enough, timeout_s=20, message=f"{expected} records on {topic}")
        batch = await consumer.getmany(timeout_ms=1000)
        found.extend(record for records in batch.values() for record in records)
    finally:
        await consumer.stop()
    return found


async def read_values(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    return [record.value for record in await read_records(bootstrap, topic, expected)]


@pytest.fixture
async def inbound(infra) -> str:
    """Create a new inbound topic and its dead-letter topic; return the inbound topic's name."""
    name = f"medgov.inbound.t-{topic_tag()}.v1"
    await create_topics(infra.kafka_bootstrap_servers, [name, f"{name}.dlq"])
    return name


def run_replay(bootstrap: str, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medgov_cli.main", "dlq", "replay", *arguments], capture_output=True, text=True,
        timeout=60, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
    )


async def test_replay_sends_each_original_once(infra, inbound):
    bootstrap = infra.kafka_bootstrap_servers
    # Review, catalog and consent each dead-letter the record at offset 5, and catalog writes its
    # dead letter a second time after a crash. The record at offset 6 has one dead letter, and
    # the last dead letter carries no original partition and offset.
    await publish(bootstrap, f"{inbound}.dlq", [
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "review")),
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "catalog")),
        (b"offset-6", dead_letter_headers(inbound, 6, "rejected", "consent")),
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "consent")),
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "catalog")),
        (b"no-position", dead_letter_headers(inbound, None, "invalid_payload", "review")),
    ])

    result = run_replay(bootstrap, f"{inbound}.dlq")
    values = await read_values(bootstrap, inbound, expected=3)

    assert result.returncode == 0, result.stderr
    assert f"replayed 3 record(s) from {inbound}.dlq; skipped 3 duplicate dead letter(s)" in result.stderr
    assert sorted(values) == [b"no-position", b"offset-5", b"offset-6"]


async def test_replay_of_a_replay_sent_once(infra, inbound):
    bootstrap = infra.kafka_bootstrap_servers
    first = dead_letter_headers(inbound, 5, "rejected", "consent")
    # An earlier replay put the record at offset 9, where consent rejected it again.
    again = [*dead_letter_headers(inbound, 9, "rejected", "consent"), (dlq.REPLAY_OF, f"{inbound}:0:5".encode())]
    await publish(bootstrap, f"{inbound}.dlq", [(b"offset-5", first), (b"offset-5", again)])

    result = run_replay(bootstrap, f"{inbound}.dlq")
    records = await read_records(bootstrap, inbound, expected=1)

    assert result.returncode == 0, result.stderr
    assert f"replayed 1 record(s) from {inbound}.dlq; skipped 1 duplicate dead letter(s)" in result.stderr
    assert [record.value for record in records] == [b"offset-5"]
    assert dict(records[0].headers)[dlq.REPLAY_OF] == f"{inbound}:0:5".encode()


async def test_replay_by_reason_skips_duplicates(infra, inbound):
    bootstrap = infra.kafka_bootstrap_servers
    # The handlers of review and catalog failed on the record at offset 5, and consent rejected it.
    await publish(bootstrap, f"{inbound}.dlq", [
        (b"offset-5", dead_letter_headers(inbound, 5, "handler_failed", "review")),
        (b"offset-5", dead_letter_headers(inbound, 5, "rejected", "consent")),
        (b"offset-5", dead_letter_headers(inbound, 5, "handler_failed", "catalog")),
    ])

    result = run_replay(bootstrap, f"{inbound}.dlq", "--reason", "handler_failed")
    values = await read_values(bootstrap, inbound, expected=1)

    assert result.returncode == 0, result.stderr
    assert f"replayed 1 record(s) from {inbound}.dlq; skipped 1 duplicate dead letter(s)" in result.stderr
    assert values == [b"offset-5"]


async def test_replay_absent_reason_rejected(infra, inbound):
    bootstrap = infra.kafka_bootstrap_servers
    await publish(bootstrap, f"{inbound}.dlq", [
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "review")),
        (b"offset-6", dead_letter_headers(inbound, 6, "rejected", "consent")),
    ])

    result = run_replay(bootstrap, f"{inbound}.dlq", "--reason", "invalid_paylod")

    assert result.returncode == 2, result.stderr
    assert f"no dead letter in {inbound}.dlq has reason 'invalid_paylod'; reasons there: invalid_payload, rejected" in result.stderr


async def test_show_names_the_group_of_each_copy(infra, inbound):
    bootstrap = infra.kafka_bootstrap_servers
    await publish(bootstrap, f"{inbound}.dlq", [
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "medgov-review")),
        (b"offset-5", dead_letter_headers(inbound, 5, "invalid_payload", "medgov-consent")),
    ])

    result = subprocess.run(
        [sys.executable, "-m", "medgov_cli.main", "dlq", "show", f"{inbound}.dlq"], capture_output=True, text=True,
        timeout=60, env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "COLUMNS": "200"},
    )

    assert result.returncode == 0, result.stderr
    assert "medgov-review" in result.stdout
    assert "medgov-consent" in result.stdout
