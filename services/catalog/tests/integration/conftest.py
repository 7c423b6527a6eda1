"""Fixtures for catalog integration tests: private topics, a publisher, an event reader, settings and tokens."""

import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.contracts.events.catalog import DatasetDescription
from medgov_shared.testing.institutions import throwaway_hospital
from medgov_shared.testing.services import topic_tag, unique_name, wait_until
from medgov_shared.web.auth import issue_token

from medgov_catalog.settings import CatalogSettings

CATALOG_TOPIC = "medgov.catalog.v1"


class PrivateTopics:
    """A private inbound topic (for a test institution) and a private stand-in for other regions' catalog topic.

    Other tests of the session publish to the real topics, so the catalog under
    test consumes only these two. The test institution is not registered; the
    `topics` fixture registers it as a hospital.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        tag = topic_tag()
        self.institution = f"t-{tag}"
        self.inbound = f"medgov.inbound.{self.institution}.v1"
        self.catalog = f"medgov.test-catalog-{tag}.v1"

    @property
    def names(self) -> list[str]:
        return [self.inbound, self.catalog]

    async def create(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            topics = [NewTopic(name, 3, 1) for name in self.names] + [NewTopic(f"{name}.dlq", 1, 1) for name in self.names]
            await admin.create_topics(topics)
        finally:
            await admin.close()

    async def publish(self, topic: str, payloads: list[EventPayload], *, source: str, region: str = "daegu") -> list[Envelope]:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await producer.start()
        envelopes = []
        try:
            for payload in payloads:
                envelope = wrap(payload, source=source, region=region)
                await producer.send_and_wait(topic, value=envelope.to_json(), key=payload.key.encode())
                envelopes.append(envelope)
        finally:
            await producer.stop()
        return envelopes


async def read_events(bootstrap: str, topic: str, key: str, expected: int, timeout_s: float = 20) -> list[Envelope]:
    """Read `topic` from its start and return the envelopes with Kafka key `key`, once `expected` arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    found: list = []
    try:
        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batch.values():
                found.extend(record for record in records if record.key == key.encode())
            return len(found) >= expected

        await wait_until(enough, timeout_s=timeout_s, message=f"{expected} events with key {key} on {topic}")
    finally:
        await consumer.stop()
    return [Envelope.from_json(record.value) for record in found]


async def read_first_records(bootstrap: str, topic: str, timeout_s: float = 20) -> list:
    """Read `topic` from its start until at least one record arrived; return the raw records."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    records: list = []
    try:
        async def arrived() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for items in batch.values():
                records.extend(items)
            return bool(records)

        await wait_until(arrived, timeout_s=timeout_s, message=f"a record on {topic}")
    finally:
        await consumer.stop()
    return records


@pytest.fixture
async def topics(infra, register_institutions) -> PrivateTopics:
    """Private topics of a test institution that is registered as a hospital in Daegu until the test ends."""
    private = PrivateTopics(infra.kafka_bootstrap_servers)
    register_institutions(throwaway_hospital(private.institution))
    await private.create()
    return private


@pytest.fixture
async def unregistered_topics(infra) -> PrivateTopics:
    """Private topics of a test institution that the registry does not list."""
    private = PrivateTopics(infra.kafka_bootstrap_servers)
    await private.create()
    return private


@pytest.fixture
def catalog_settings(settings_factory, sample_data) -> Callable[..., CatalogSettings]:
    """Settings with the sample data as a shared staging root, unless a test overrides it."""

    def build(**overrides: object) -> CatalogSettings:
        values: dict[str, object] = {
            "staging_root": sample_data,
            "staging_per_institution": False,
            "kafka_group_id": unique_name("catalog"),
        }
        values.update(overrides)
        return settings_factory(CatalogSettings, **values)

    return build


@pytest.fixture
def token(jwt_secret) -> Callable[..., dict[str, str]]:
    def headers(roles: list[str], institution: str | None = None) -> dict[str, str]:
        value = issue_token(jwt_secret, subject_id=f"user-{uuid.uuid4().hex[:6]}", roles=roles, institution=institution)
        return {"Authorization": f"Bearer {value}"}

    return headers


@pytest.fixture
def describe() -> Callable[..., DatasetDescription]:
    return _description


def _description(publisher: str, **overrides: object) -> DatasetDescription:
    values: dict[str, object] = {
        "title": "Synthea immunization cohort",
        "description": "Immunizations and allergies of synthetic patients from a FHIR Bulk Data export, "
        "with vaccine codes and allergy categories.",
        "publisher": publisher,
        "themes": ("HEAL",),
        "keywords": ("immunization", "allergy", "synthea"),
        "temporal_start": "1960-01-01",
        "temporal_end": "2024-12-31",
        "access_rights": "restricted",
        "duo_codes": ("HMB",),
        "legal_basis": "pseudonymized_research",
        "contact_point": "data-office@example.org",
        "distribution_formats": ("application/fhir+ndjson",),
    }
    values.update(overrides)
    return DatasetDescription(**values)
