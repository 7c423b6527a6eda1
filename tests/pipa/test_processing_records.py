"""Records of each use of pseudonymized data: purpose, items, use, recipient and period, and how long they are kept.

For each access grant, the review service stores the purpose (DUO codes and
text), the dataset (the items), the data environment (how the data is used),
the grantee (the recipient) and the period (starts_at, expires_at, ended_at).
It keeps them in its tables and as the AccessGranted event in the
application's history. The catalog keeps what each dataset version contains
(resource types, modalities, counts). These tests check that an approved
application leaves all of that in the owning service's database, and that no
service deletes those records.

NOTE: nothing records when a recipient destroyed the data, so "kept at least
three years after destruction" cannot be computed yet. docs/security.md
describes the gap and a proposal.
"""

import re
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from medgov_shared.clock import SystemClock
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import DatasetPublished
from medgov_shared.contracts.registry import SERVICE_TOPICS
from medgov_shared.contracts.types import LegalBasis, Region
from medgov_shared.testing.infrastructure import REPO_ROOT
from medgov_shared.testing.services import http_client, running, unique_name, wait_until

from medgov_catalog.main import build_service as build_catalog
from medgov_catalog.settings import CatalogSettings
from medgov_review.main import build_service as build_review
from medgov_review.settings import ReviewSettings

from .stack import NOW, PrivateTopics, application_body, bearer, new_id

# Tables that hold the record of a use, per service.
RECORD_TABLES = {
    "review": {"applications", "access_grants", "application_events", "status_changes", "submissions"},
    "catalog": {"datasets", "dataset_versions", "dataset_files", "dataset_subjects", "compliance_flags"},
    "consent": {"consents", "revocations", "exclusions", "grants", "grant_endings", "applications", "subjects"},
    "grants": {"postings", "posting_legs", "grant_inputs"},
}
DELETING_SQL = re.compile(r"\b(?:DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|DROP\s+TABLE(?:\s+IF\s+EXISTS)?)\s+([a-z_]+)", re.I)
SYNTHEA_IMMUNIZATIONS = "synthea/bulk-export-10-patients/Immunization.000.ndjson"


def statements_that_delete(service: str) -> dict[str, set[str]]:
    """Map each table that the service's code (not its migrations) deletes from to the files doing it."""
    package = REPO_ROOT / "services" / service / f"medgov_{service}"
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for table in DELETING_SQL.findall(path.read_text(encoding="utf-8")):
            found.setdefault(table.lower(), set()).add(str(path.relative_to(REPO_ROOT)))
    return found


@pytest.mark.parametrize("service", sorted(RECORD_TABLES))
def test_no_service_code_deletes_processing_records(service: str) -> None:
    deleting = statements_that_delete(service)

    assert set(deleting) & RECORD_TABLES[service] == set(), deleting


def test_deletion_scan_finds_known_statements() -> None:
    """Check the scan itself: it finds the deletions from derived tables that do exist."""
    assert "search_entries" in statements_that_delete("catalog")
    assert "grant_mismatches" in statements_that_delete("consent")


def test_service_topics_are_kept_forever() -> None:
    retention = {topic.name: topic.retention_ms for topic in SERVICE_TOPICS}

    assert retention == {name: -1 for name in retention}


async def publish_dataset(bootstrap: str, topic: str, dataset_id: str) -> None:
    payload = DatasetPublished(
        dataset_id=dataset_id, version=1, institution_id="knuh", region=Region.DAEGU, title="Chest CT cohort",
        duo_codes=("HMB",), legal_basis=LegalBasis.PSEUDONYMIZED_RESEARCH, completeness_score=90, record_count=24,
        subject_count=2, published_at=NOW,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        envelope = wrap(payload, source="medgov/catalog", region="daegu", time=NOW)
        await producer.send_and_wait(topic, value=envelope.to_json(), key=dataset_id.encode())
    finally:
        await producer.stop()


@pytest.mark.integration
async def test_approved_application_records_use(infra, settings_factory, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    topics = await PrivateTopics(infra.kafka_bootstrap_servers).create()
    settings = settings_factory(ReviewSettings, kafka_group_id=unique_name("pipa-review"), clock_tick_interval_s=0.5)
    service = build_review(settings, SystemClock(), consumes=[topics.catalog], consume_inbound=False)
    dataset_id, application_id = new_id("ds-knuh"), new_id("app")

    async with running(service), http_client(service) as client:
        await publish_dataset(infra.kafka_bootstrap_servers, topics.catalog, dataset_id)
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM datasets WHERE dataset_id = $1", dataset_id),
                         message="dataset in the review service's projection")
        submitted = await client.post("/applications", json=application_body(application_id, [dataset_id]),
                                      headers=bearer(jwt_secret, "applicant", institution="vendor-medvision"))
        assert submitted.status_code == 201, submitted.text
        for board, role in (("IRB", "irb_reviewer"), ("DRB", "drb_reviewer")):
            for number in (3, 4, 5):
                member = f"dg-{board.lower()}-{number}"
                voted = await client.post(f"/applications/{application_id}/votes", json={"board": board, "vote": "approve"},
                                          headers=bearer(jwt_secret, role, subject_id=member))
                assert voted.status_code == 200, voted.text
        grant = await service.pool.fetchrow("SELECT * FROM access_grants WHERE application_id = $1", application_id)
        document = await service.pool.fetchval("SELECT document FROM applications WHERE application_id = $1", application_id)
        history = await client.get(f"/applications/{application_id}/events", headers=bearer(jwt_secret, "council"))

    content = orjson.loads(document)["content"] if isinstance(document, (str, bytes)) else document["content"]
    granted = [event for event in history.json()["events"] if event["type"] == "AccessGranted"]
    assert grant is not None, "no access grant was recorded"
    assert grant["dataset_id"] == dataset_id
    assert grant["starts_at"] < grant["expires_at"]
    assert content["purpose_codes"] == ["HMB"]
    assert content["purpose_text"] == "Train a nodule detector on pseudonymized chest CT"
    assert len(granted) == 1
    data = granted[0]["data"]
    assert data["purpose_codes"] == ["HMB"]
    assert data["dataset_id"] == dataset_id
    assert data["data_environment"] == "secure_enclave"
    assert data["grantee_institution"] == "vendor-medvision"
    assert data["holder_institution"] == "knuh"
    assert data["starts_at"] and data["expires_at"]


@pytest.mark.integration
async def test_catalog_keeps_version_items(infra, settings_factory, jwt_secret, sample_data: Path) -> None:  # type: ignore[no-untyped-def]
    topics = await PrivateTopics(infra.kafka_bootstrap_servers).create()
    settings = settings_factory(CatalogSettings, kafka_group_id=unique_name("pipa-catalog"), staging_root=sample_data,
                                staging_per_institution=False)
    service = build_catalog(settings, consumes=[topics.catalog], consume_inbound=False)
    dataset_id = new_id("ds-items")
    description = {
        "title": "Synthea immunization cohort", "description": "Immunizations of synthetic patients.",
        "publisher": "knuh", "themes": ["HEAL"], "keywords": ["immunization"], "access_rights": "restricted",
        "duo_codes": ["HMB"], "legal_basis": "pseudonymized_research", "contact_point": "data-office@example.org",
        "distribution_formats": ["application/fhir+ndjson"],
    }

    async with running(service), http_client(service) as client:
        registered = await client.post(
            "/datasets", json={"dataset_id": dataset_id, "description": description, "files": [SYNTHEA_IMMUNIZATIONS]},
            headers=bearer(jwt_secret, "hospital", institution="knuh"),
        )
        detail = await client.get(f"/datasets/{dataset_id}", headers=bearer(jwt_secret, "drb_reviewer"))

    assert registered.status_code == 201, registered.text
    (version,) = detail.json()["versions"]
    assert version["figures"]["resource_counts"].get("Immunization", 0) > 0
    assert version["figures"]["record_count"] > 0
    assert version["registered_at"]
