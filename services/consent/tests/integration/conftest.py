"""Fixtures of the consent service's integration tests: its own topics, a running service, and event builders.

Each test gets its own review and catalog topics, database and consumer group,
so events of other tests and other services never reach it.
"""

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import (
    DatasetDescription,
    DatasetFigures,
    DatasetPublished,
    DatasetRegistered,
    DatasetSubjectsAdded,
)
from medgov_shared.contracts.events.review import AccessGranted, ApplicationApproved, ApplicationSubmitted
from medgov_shared.contracts.institutions import get_institution
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.messaging.topics import start_groups_at_end
from medgov_shared.service import Service
from medgov_shared.testing.services import running, topic_tag, unique_name, wait_until
from medgov_shared.web.auth import issue_token

from medgov_consent.main import build_service
from medgov_consent.settings import ConsentSettings

T0 = datetime(2027, 3, 2, 0, 0, tzinfo=UTC)
PSEUDONYM_KEY = b"consent-integration-tests-key-32b!"


def new_subject() -> str:
    return pseudonymize(uuid.uuid4().hex, region="daegu", key=PSEUDONYM_KEY)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass
class Topics:
    review: str
    catalog: str


@pytest.fixture
async def topics(infra: Any) -> Topics:
    prefix = f"medgov.test-consent-{topic_tag()}"
    names = Topics(review=f"{prefix}.review.v1", catalog=f"{prefix}.catalog.v1")
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 2, 1) for name in (names.review, names.catalog)]
            + [NewTopic(f"{name}.dlq", 1, 1) for name in (names.review, names.catalog)]
        )
    finally:
        await admin.close()
    return names


@pytest.fixture
def consent_settings(settings_factory: Callable[..., Any]) -> ConsentSettings:
    return settings_factory(
        ConsentSettings,
        kafka_group_id=unique_name("consent-it"),
        overdue_check_interval_s=0.2,
        due_revocation_check_interval_s=0.2,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def service(consent_settings: ConsentSettings, topics: Topics, clock: ManualClock) -> AsyncIterator[Service]:
    built = build_service(consent_settings, clock, consumes=[topics.review, topics.catalog], consume_inbound=False)
    async with running(built) as started:
        yield started


@pytest.fixture
async def inbound_service(consent_settings: ConsentSettings, topics: Topics, clock: ManualClock) -> AsyncIterator[Service]:
    # The inbound topics are shared by every test; start at their end instead of replaying them.
    options = {"bootstrap_servers": consent_settings.kafka_bootstrap_servers}
    await start_groups_at_end(options, [consent_settings.consumer_group])
    built = build_service(consent_settings, clock, consumes=[topics.review, topics.catalog], consume_inbound=True)
    async with running(built) as started:
        yield started


class Publisher:
    """Publishes envelopes as another service or a hospital would."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)

    async def send(
        self, topic: str, payload: EventPayload, *, source: str, at: datetime = T0, event_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        envelope = wrap(payload, source=source, region="daegu", time=at, event_id=event_id)
        await self.producer.send_and_wait(topic, value=envelope.to_json(), key=payload.key.encode())
        return envelope.id


@pytest.fixture
async def publisher(infra: Any) -> AsyncIterator[Publisher]:
    sender = Publisher(infra.kafka_bootstrap_servers)
    await sender.producer.start()
    try:
        yield sender
    finally:
        await sender.producer.stop()


@dataclass
class Scenario:
    """A dataset at a hospital with some subjects, and an approved grant on it."""

    publisher: Publisher
    topics: Topics
    holder: str = "knuh"
    grantee: str = "vendor-medvision"
    dataset_id: str = field(default_factory=lambda: new_id("ds-knuh-ct"))
    application_id: str = field(default_factory=lambda: new_id("app"))
    grant_id: str = field(default_factory=lambda: new_id("grant"))
    subjects: tuple[str, ...] = field(default_factory=lambda: (new_subject(), new_subject()))

    async def publish_dataset(self, *, legal_basis: str = "pseudonymized_research", duo_codes: tuple[str, ...] = ("HMB",), version: int = 1) -> None:
        region = get_institution(self.holder).region
        source = "medgov/catalog"
        await self.publisher.send(self.topics.catalog, self.registered(version), source=source)
        await self.publisher.send(
            self.topics.catalog,
            DatasetSubjectsAdded(
                dataset_id=self.dataset_id, version=version, institution_id=self.holder, chunk_index=0, chunk_count=1,
                subjects=self.subjects,
            ),
            source=source,
        )
        await self.publisher.send(
            self.topics.catalog,
            DatasetPublished(
                dataset_id=self.dataset_id, version=version, institution_id=self.holder, region=region, title="흉부 CT 코호트",
                duo_codes=duo_codes, legal_basis=legal_basis, completeness_score=85, record_count=24,
                subject_count=len(self.subjects), published_at=T0,
            ),
            source=source,
        )

    def registered(self, version: int) -> DatasetRegistered:
        return DatasetRegistered(
            dataset_id=self.dataset_id,
            version=version,
            institution_id=self.holder,
            region=get_institution(self.holder).region,
            description=DatasetDescription(
                title="흉부 CT 코호트", description="Chest CT studies", publisher=self.holder, themes=("HEAL",),
                keywords=("CT",), access_rights="restricted", duo_codes=("HMB",), legal_basis="pseudonymized_research",
                contact_point="data-office@knuh.example", distribution_formats=("application/dicom",),
            ),
            figures=DatasetFigures(
                resource_counts={}, subject_count=len(self.subjects), record_count=24, condition_codes=(),
                observation_codes=(), modalities=("CT",), body_parts=("CHEST",), study_count=2, series_count=2,
                instance_count=24, character_sets=(), date_start="2019-03-01", date_end="2024-11-30",
            ),
            completeness_score=85,
            registered_at=T0,
        )

    async def publish_grant(self, *, purposes: tuple[str, ...] = ("HMB",), granted_at: datetime = T0, event_id: uuid.UUID | None = None) -> uuid.UUID:
        source = "medgov/review"
        await self.publisher.send(
            self.topics.review,
            ApplicationSubmitted(
                application_id=self.application_id, applicant_institution=self.grantee, principal_investigator="Dr. Kim",
                title="흉부 CT 결절 검출 모델", purpose_text="폐결절 검출 AI 학습", purpose_codes=purposes,
                dataset_ids=(self.dataset_id,), requested_start=date(2027, 3, 1), requested_end=date(2027, 12, 31),
                data_environment="secure_enclave", irb_document_ref="irb://knuh/2027-001", region="daegu",
                regions_involved=("daegu",), submitted_at=granted_at - timedelta(days=15),
            ),
            source=source,
        )
        await self.publisher.send(
            self.topics.review,
            ApplicationApproved(
                application_id=self.application_id, applicant_institution=self.grantee,
                decision_ids=("dec-irb-0042", "dec-drb-0042"), conditions=("Secure enclave only",),
                decided_at=granted_at, days_used=12.0,
            ),
            source=source,
        )
        return await self.publisher.send(self.topics.review, self.access_granted(purposes), source=source, at=granted_at, event_id=event_id)

    def access_granted(self, purposes: tuple[str, ...] = ("HMB",)) -> AccessGranted:
        return AccessGranted(
            application_id=self.application_id, grant_id=self.grant_id, grantee_institution=self.grantee,
            dataset_id=self.dataset_id, dataset_ids=(self.dataset_id,), holder_institution=self.holder,
            data_environment="secure_enclave", purpose_codes=purposes, conditions=("Secure enclave only",),
            starts_at=T0, expires_at=T0 + timedelta(days=300), region="daegu",
        )


@pytest.fixture
def scenario(publisher: Publisher, topics: Topics) -> Scenario:
    return Scenario(publisher, topics)


async def wait_for_grant(service: Service, grant_id: str) -> None:
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) FROM grants WHERE grant_id = $1", grant_id),
        timeout_s=20,
        message=f"grant {grant_id} projected",
    )


async def wait_for_members(service: Service, dataset_id: str, count: int) -> None:
    async def projected() -> bool:
        members = await service.pool.fetchval("SELECT count(*) FROM dataset_subjects WHERE dataset_id = $1", dataset_id)
        published = await service.pool.fetchval(
            "SELECT legal_basis IS NOT NULL FROM datasets WHERE dataset_id = $1", dataset_id
        )
        return members == count and bool(published)

    await wait_until(projected, timeout_s=20, message=f"dataset {dataset_id} projected")


async def outbox_events(service: Service, event_type: str, subject: str | None = None) -> list[dict[str, Any]]:
    rows = await service.pool.fetch(
        "SELECT key, value FROM outbox WHERE event_type = $1 ORDER BY position", event_type
    )
    events = [orjson.loads(row["value"]) for row in rows]
    return [event for event in events if subject is None or event["subject"] == subject]


def bearer(secret: str, *, roles: list[str], institution: str | None = None, subject: str | None = None) -> dict[str, str]:
    token = issue_token(secret, subject_id=new_id("user"), roles=roles, institution=institution, patient_subject=subject)
    return {"Authorization": f"Bearer {token}"}


class TopicTail:
    """Reads what arrives on a topic after the tail was opened."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        self.records: list[Any] = []

    async def open(self, partition_count: int) -> None:
        await self.consumer.start()
        partitions = [TopicPartition(self.topic, number) for number in range(partition_count)]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)

    async def read_until(self, predicate: Callable[[list[Any]], bool], *, timeout_s: float = 20) -> list[Any]:
        async def enough() -> bool:
            batches = await self.consumer.getmany(timeout_ms=200)
            for records in batches.values():
                self.records.extend(records)
            return predicate(self.records)

        await wait_until(enough, timeout_s=timeout_s, message=f"records on {self.topic}")
        return self.records

    async def close(self) -> None:
        await self.consumer.stop()
