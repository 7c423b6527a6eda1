"""A sample of malformed records through the real broker into a running consent service.

The service consumes a private inbound topic of an unregistered test
institution, so no other test writes to it and nothing reaches the shared
topics. Every record must end as an applied event, a deliberate skip, or a
dead letter with its reason in the headers, and the consumer must still run
after the last one.
"""

from dataclasses import replace

import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import Phase, given, settings

from medgov_shared.contracts.registry import dlq_topic, inbound_topic
from medgov_shared.messaging import dlq
from medgov_shared.testing.services import running, topic_tag, unique_name, wait_until

from medgov_consent.main import build_service
from medgov_consent.settings import ConsentSettings

from .broker import create_topic, publish, sentinel
from .budget import CASES_RUN, examples_for
from .event_strategies import FuzzRecord, malformed_records
from .parsing import CONSUMER, consumer_record

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

# Stays below the broker's default limit of about 1 MB per record, with room for the DLQ headers.
MAX_RECORD_BYTES = 900_000


def draw_sample(institution: str, count: int) -> list[FuzzRecord]:
    """Collect `count` generated records (generation only, no shrinking)."""
    sample: list[FuzzRecord] = []

    @settings(max_examples=count, phases=[Phase.generate], database=None, deadline=None)
    @given(malformed_records(institution))
    def collect(record: FuzzRecord) -> None:
        if record.value is None or len(record.value) < MAX_RECORD_BYTES:
            sample.append(record)

    collect()
    # Every record goes to the one private topic, whatever topic its event type normally uses.
    return [replace(record, topic=inbound_topic(institution)) for record in sample]


async def read_dead_letters(bootstrap: str, topic: str, expected: int) -> dict[int, dict[str, str]]:
    """Return the headers of the dead letters of `topic`, by original offset."""
    consumer = AIOKafkaConsumer(
        dlq_topic(topic), bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, fetch_max_bytes=10_000_000, max_partition_fetch_bytes=10_000_000,
    )
    await consumer.start()
    letters: dict[int, dict[str, str]] = {}
    try:
        async def enough() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    headers = dlq.headers_dict(record.headers)
                    letters[int(headers[dlq.ORIGINAL_OFFSET])] = headers
            return len(letters) >= expected

        await wait_until(enough, timeout_s=30, message=f"{expected} dead letters on {dlq_topic(topic)}")
    finally:
        await consumer.stop()
    return letters


def expected_reason(record: FuzzRecord, handled_types: set[str]) -> str | None:
    """Return the dead-letter reason the record must get, or None when it must not be dead-lettered.

    A valid command from the unregistered test institution reaches the consent
    handlers, which reject it ("rejected"); other valid events are ignored.
    """
    envelope, payload, letter = CONSUMER._parse(consumer_record(record))
    if letter is not None:
        return letter.reason
    if payload is not None and envelope is not None and envelope.type in handled_types:
        return "rejected"
    return None


async def test_malformed_records_through_running_service(infra, settings_factory) -> None:  # type: ignore[no-untyped-def]
    institution = f"t-{topic_tag()}"
    topic = inbound_topic(institution)
    bootstrap = infra.kafka_bootstrap_servers
    sample = draw_sample(institution, examples_for(quick=60, share=0.02))
    await create_topic(bootstrap, topic)
    await publish(bootstrap, topic, [record.value for record in sample] + [sentinel(institution)])
    sentinel_offset = len(sample)
    CASES_RUN["records through the broker"] += len(sample)

    settings_ = settings_factory(ConsentSettings, kafka_group_id=unique_name("fuzz-consent"), create_topics=True)
    service = build_service(settings_, consumes=[topic], consume_inbound=False)
    async with running(service):
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) > 0 FROM dead_letters WHERE kafka_offset = $1", sentinel_offset),
            timeout_s=60, message="the sentinel after the malformed records to be dead-lettered",
        )
        rows = await service.pool.fetch("SELECT kafka_offset, reason, error FROM dead_letters WHERE topic = $1", topic)
        alive = service.is_alive()

    recorded = {row["kafka_offset"]: row for row in rows}
    expected = {offset: expected_reason(record, set(service.handlers)) for offset, record in enumerate(sample)}
    expected[sentinel_offset] = "rejected"
    letters = await read_dead_letters(bootstrap, topic, expected=sum(1 for reason in expected.values() if reason))

    assert alive, "a background task of the consent service stopped"
    for offset, reason in expected.items():
        if reason is None:
            assert offset not in recorded, f"offset {offset} was dead-lettered: {recorded[offset]['error']}"
            continue
        assert recorded[offset]["reason"] == reason, (offset, sample[offset].defects if offset < len(sample) else ())
        assert recorded[offset]["error"].strip()
        assert letters[offset][dlq.REASON] == reason
        assert letters[offset][dlq.ERROR].strip()
        assert letters[offset][dlq.ORIGINAL_TOPIC] == topic
