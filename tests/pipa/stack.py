"""Running the review and consent services on private topics, and publishing events to them as the other services would."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import (
    DatasetDescription,
    DatasetFigures,
    DatasetPublished,
    DatasetRegistered,
    DatasetSubjectsAdded,
)
from medgov_shared.contracts.events.review import AccessGranted
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.types import LegalBasis, Region
from medgov_shared.service import Service
from medgov_shared.testing.services import topic_tag, wait_until
from medgov_shared.web.auth import issue_token

SUBJECT_KEY = b"pipa-predicate-tests-pseudonym-k!"
NOW = datetime.now(UTC).replace(microsecond=0)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_subject() -> str:
    return pseudonymize(uuid.uuid4().hex, region="daegu", key=SUBJECT_KEY)


def bearer(secret: str, *roles: str, subject_id: str = "user-1", institution: str | None = None,
           patient_subject: str | None = None) -> dict[str, str]:
    token = issue_token(secret, subject_id=subject_id, roles=roles, institution=institution,
                        patient_subject=patient_subject)
    return {"Authorization": f"Bearer {token}"}


class PrivateTopics:
    """A stand-in for medgov.catalog.v1 and medgov.review.v1 that only this test writes to."""

    def __init__(self, bootstrap: str) -> None:
        tag = topic_tag()
        self.bootstrap = bootstrap
        self.catalog = f"medgov.test-pipa-{tag}.catalog.v1"
        self.review = f"medgov.test-pipa-{tag}.review.v1"

    @property
    def names(self) -> list[str]:
        return [self.catalog, self.review]

    async def create(self) -> "PrivateTopics":
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(name, 1, 1) for name in self.names] + [NewTopic(f"{name}.dlq", 1, 1) for name in self.names]
            )
        finally:
            await admin.close()
        return self

    async def publish(self, topic: str, payloads: list[EventPayload], *, source: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for payload in payloads:
                envelope = wrap(payload, source=source, region="daegu", time=NOW)
                await producer.send_and_wait(topic, value=envelope.to_json(), key=payload.key.encode())
        finally:
            await producer.stop()


def dataset_events(dataset_id: str, subjects: tuple[str, ...], legal_basis: LegalBasis,
                   duo_codes: tuple[str, ...] = ("HMB",)) -> list[EventPayload]:
    """The catalog's events for one published version of a knuh dataset with these subjects."""
    description = DatasetDescription(
        title="흉부 CT 코호트", description="Chest CT studies", publisher="knuh", themes=("HEAL",), keywords=("CT",),
        access_rights="restricted", duo_codes=duo_codes, legal_basis=legal_basis,
        contact_point="data-office@knuh.example", distribution_formats=("application/dicom",),
    )
    figures = DatasetFigures(
        resource_counts={"ImagingStudy": 2}, subject_count=len(subjects), record_count=24, condition_codes=(),
        observation_codes=(), modalities=("CT",), body_parts=("CHEST",), study_count=2, series_count=2,
        instance_count=24, character_sets=(), date_start="2019-03-01", date_end="2024-11-30",
    )
    return [
        DatasetRegistered(dataset_id=dataset_id, version=1, institution_id="knuh", region=Region.DAEGU,
                          description=description, figures=figures, completeness_score=85, registered_at=NOW),
        DatasetSubjectsAdded(dataset_id=dataset_id, version=1, institution_id="knuh", chunk_index=0, chunk_count=1,
                             subjects=subjects),
        DatasetPublished(dataset_id=dataset_id, version=1, institution_id="knuh", region=Region.DAEGU,
                         title=description.title, duo_codes=duo_codes, legal_basis=legal_basis, completeness_score=85,
                         record_count=24, subject_count=len(subjects), published_at=NOW),
    ]


def access_granted(dataset_id: str, purposes: tuple[str, ...], grantee: str = "vendor-medvision") -> AccessGranted:
    return AccessGranted(
        application_id=new_id("app"), grant_id=new_id("grant"), grantee_institution=grantee, dataset_id=dataset_id,
        dataset_ids=(dataset_id,), holder_institution="knuh", data_environment="secure_enclave",
        purpose_codes=purposes, conditions=("Secure enclave only",), starts_at=NOW,
        expires_at=NOW + timedelta(days=300), region=Region.DAEGU,
    )


async def wait_for_dataset_members(consent: Service, dataset_id: str, count: int) -> None:
    async def projected() -> bool:
        members = await consent.pool.fetchval("SELECT count(*) FROM dataset_subjects WHERE dataset_id = $1", dataset_id)
        published = await consent.pool.fetchval("SELECT legal_basis IS NOT NULL FROM datasets WHERE dataset_id = $1",
                                                dataset_id)
        return members == count and bool(published)

    await wait_until(projected, timeout_s=20, message=f"dataset {dataset_id} in the consent service's projection")


def application_body(application_id: str, dataset_ids: list[str], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "application_id": application_id,
        "idempotency_key": new_id("key"),
        "principal_investigator": "Dr. Kim",
        "title": "Chest CT nodule detection",
        "purpose_text": "Train a nodule detector on pseudonymized chest CT",
        "purpose_codes": ["HMB"],
        "dataset_ids": dataset_ids,
        "requested_start": (NOW.date() + timedelta(days=30)).isoformat(),
        "requested_end": (NOW.date() + timedelta(days=395)).isoformat(),
        "data_environment": "secure_enclave",
        "irb_document_ref": "irb://knuh/2026-113",
    }
    body.update(changes)
    return body
