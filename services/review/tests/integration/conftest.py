"""Fixtures for the review service against the real Kafka broker and PostgreSQL server.

Each test gets its own database, consumer group and private input topics (a
stand-in for medgov.catalog.v1 and one hospital inbound topic), so it consumes
only the events it publishes itself.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.contracts.events.catalog import DatasetPublished
from medgov_shared.contracts.registry import inbound_topic
from medgov_shared.contracts.types import LegalBasis, Region
from medgov_shared.testing.services import topic_tag, unique_name, wait_until
from medgov_shared.web.auth import issue_token

from medgov_review.settings import ReviewSettings

# Friday 2026-12-04 09:00 in Korea.
T0 = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
REVIEW_TOPIC = "medgov.review.v1"


class TestTopics:
    """A private catalog topic and a private hospital inbound topic, with their dead-letter topics."""

    __test__ = False

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        tag = topic_tag()
        self.catalog = f"medgov.test-review-{tag}.catalog.v1"
        # An inbound topic of an unregistered test institution, so that only this test writes to it.
        self.hospital = f"t-{tag}"
        self.inbound = inbound_topic(self.hospital)

    @property
    def names(self) -> list[str]:
        return [self.catalog, self.inbound]

    async def create(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, 3, 1) for name in self.names] + [NewTopic(f"{name}.dlq", 1, 1) for name in self.names]
            )
        finally:
            await admin.close()

    async def publish(self, topic: str, payloads: list[EventPayload], *, source: str) -> list[Envelope]:
        envelopes = [wrap(payload, source=source, region="daegu", time=T0) for payload in payloads]
        await publish_envelopes(self.bootstrap, topic, envelopes)
        return envelopes


async def publish_envelopes(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(topic, value=envelope.to_json(), key=envelope.subject.encode())
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """Return the current end offset of every partition of `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (description,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, item["partition"]) for item in description["partitions"]]
    assert partitions, f"topic {topic} does not exist; start the service first, it creates the topics"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def read_envelopes(
    bootstrap: str, topic: str, start: dict[TopicPartition, int], subject: str, expected: int
) -> list[Envelope]:
    """Read `topic` from the given offsets until `expected` envelopes about `subject` arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found: list[Envelope] = []
    try:
        consumer.assign(list(start))
        for partition, offset in start.items():
            consumer.seek(partition, offset)

        async def enough() -> bool:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                found.extend(
                    envelope
                    for envelope in (Envelope.from_json(record.value) for record in records)
                    if envelope.subject == subject
                )
            return len(found) >= expected

        await wait_until(enough, timeout_s=20, message=f"{expected} events about {subject} on {topic}")
    finally:
        await consumer.stop()
    return found


def published(dataset_id: str, institution: str, region: Region, *codes: str) -> DatasetPublished:
    return DatasetPublished(
        dataset_id=dataset_id,
        version=1,
        institution_id=institution,
        region=region,
        title=f"{dataset_id} cohort",
        duo_codes=codes,
        legal_basis=LegalBasis.PSEUDONYMIZED_RESEARCH,
        completeness_score=90,
        record_count=413,
        subject_count=13,
        published_at=T0,
    )


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def application_body(application_id: str, dataset_ids: list[str], **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "application_id": application_id,
        "idempotency_key": unique_id("key"),
        "principal_investigator": "Dr. Kim",
        "title": "Chest CT nodule detection",
        "purpose_text": "Train a nodule detector on chest CT",
        "purpose_codes": ["HMB"],
        "dataset_ids": dataset_ids,
        "requested_start": date(2027, 1, 1).isoformat(),
        "requested_end": date(2027, 12, 31).isoformat(),
        "data_environment": "secure_enclave",
        "irb_document_ref": "irb://knuh/2026-113",
    }
    body.update(changes)
    return body


@pytest.fixture
async def topics(infra) -> TestTopics:  # type: ignore[no-untyped-def]
    created = TestTopics(infra.kafka_bootstrap_servers)
    await created.create()
    return created


@pytest.fixture
def review_settings(settings_factory) -> Callable[..., ReviewSettings]:  # type: ignore[no-untyped-def]
    """Build ReviewSettings with a fresh database and consumer group per call, and a fast clock tick."""

    def build(**overrides: object) -> ReviewSettings:
        values = {
            "kafka_group_id": unique_name("review"),
            "create_topics": True,
            "clock_tick_interval_s": 0.1,
            **overrides,
        }
        return settings_factory(ReviewSettings, **values)

    return build


@pytest.fixture
def auth(jwt_secret: str) -> Callable[..., dict[str, str]]:
    """Return the Authorization header of a token with the given roles, caller id and institution."""

    def headers(*roles: str, subject_id: str = "user-1", institution: str | None = None) -> dict[str, str]:
        token = issue_token(jwt_secret, subject_id=subject_id, roles=roles, institution=institution)
        return {"Authorization": f"Bearer {token}"}

    return headers
