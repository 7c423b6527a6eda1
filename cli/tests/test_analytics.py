"""The analytics subscriber: aggregates from pseudonymized events, kept in its own PostgreSQL database."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from faststream.kafka import TestKafkaBroker

from medgov_cli.analytics import apply_event, build_app, figures, open_store
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.consent import ConsentGranted, ConsentRevoked, ConsentScope
from medgov_shared.contracts.events.review import ApplicationApproved
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.testing.fixtures import database_url_for, new_database_name
from medgov_shared.testing.services import unique_name

SUBMITTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def approved(application_id: str, days: float):
    payload = ApplicationApproved(application_id=application_id, applicant_institution="vendor-medvision",
                                  decision_ids=("d-1",), conditions=(), decided_at=SUBMITTED + timedelta(days=days),
                                  days_used=days)
    return wrap(payload, source="medgov/review", region="daegu", time=SUBMITTED + timedelta(days=days))


def submitted(application_id: str):
    from medgov_shared.contracts.events.review import ApplicationSubmitted

    payload = ApplicationSubmitted(
        application_id=application_id, applicant_institution="vendor-medvision", principal_investigator="PI",
        title="t", purpose_text="p", purpose_codes=("HMB",), dataset_ids=("ds-1",), requested_start="2027-01-01",
        requested_end="2027-12-31", data_environment="secure_enclave", irb_document_ref="irb://1", region="daegu",
        regions_involved=("daegu",), submitted_at=SUBMITTED,
    )
    return wrap(payload, source="medgov/review", region="daegu", time=SUBMITTED)


def consent_event(kind: str, patient: str):
    subject = pseudonymize(patient, region="daegu", key=b"k" * 32)
    common = {"subject": subject, "consent_id": f"c-{patient}", "institution_id": "knuh", "region": "daegu",
              "scope": ConsentScope()}
    if kind == "granted":
        payload = ConsentGranted(**common, channel="fhir", granted_at=SUBMITTED)
    else:
        payload = ConsentRevoked(**common, channel="dashboard", effective_at=SUBMITTED)
    return wrap(payload, source="medgov/consent", region="daegu")


@pytest.fixture
async def store(infra):
    pool = await open_store(database_url_for(infra, new_database_name("analytics")))
    yield pool
    await pool.close()


@pytest.mark.integration
async def test_figures_from_events(store):
    events = [submitted("a-1"), approved("a-1", 4.0), submitted("a-2"), approved("a-2", 6.0),
              consent_event("granted", "p1"), consent_event("granted", "p2"), consent_event("revoked", "p1")]

    async with store.acquire() as connection:
        for event in events:
            await apply_event(connection, event)
        repeated = await apply_event(connection, events[0])
    result = await figures(store)

    assert repeated is False
    assert result["applications_per_week"] == {"2026-W49": 2}
    assert result["median_decision_days"] == 5.0
    assert result["opt_out_rate"] == {"knuh": 0.5}
    rows = await store.fetch("SELECT * FROM consent_counts")
    assert "subject" not in rows[0].keys()


@pytest.mark.integration
async def test_subscriber_skips_non_cloudevents(store):
    broker_events = [submitted(f"a-{uuid.uuid4().hex[:6]}"), b"not a cloudevent"]
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker("127.0.0.1:1")  # replaced by the in-memory test broker
    build_app(broker, store, group=unique_name("analytics"))

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish(broker_events[0].to_json(), topic="medgov.review.v1")
        await test_broker.publish(broker_events[1], topic="medgov.review.v1")

    assert await store.fetchval("SELECT count(*) FROM inbox") == 1
    assert await store.fetchval("SELECT count(*) FROM applications") == 1
