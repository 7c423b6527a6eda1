"""Revocation fan-out and acknowledgement against the real Kafka broker and PostgreSQL server."""

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.events.catalog import DatasetSubjectsAdded
from medgov_shared.contracts.registry import topic_of
from medgov_shared.service import Service
from medgov_shared.testing.services import http_client, wait_until

from .conftest import (
    Scenario,
    TopicTail,
    bearer,
    new_subject,
    outbox_events,
    wait_for_grant,
    wait_for_members,
)

pytestmark = pytest.mark.integration

MII_XML = Path("fhir") / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml"


async def prepare(service: Service, scenario: Scenario) -> None:
    await scenario.publish_dataset()
    await scenario.publish_grant()
    await wait_for_members(service, scenario.dataset_id, len(scenario.subjects))
    await wait_for_grant(service, scenario.grant_id)


async def test_revocation_reaches_grant_and_is_acknowledged(
    service: Service, scenario: Scenario, clock: ManualClock, jwt_secret: str, sample_data: Path, infra: Any
) -> None:
    patient, other = scenario.subjects
    await prepare(service, scenario)
    tail = TopicTail(infra.kafka_bootstrap_servers, "medgov.consent.v1")
    await tail.open(topic_of("consent").partitions)

    async with http_client(service) as client:
        recorded = await client.post(
            "/v1/hospital/consents/xml",
            params={"subject": patient, "consent_id": "mii-0001"},
            content=(sample_data / MII_XML).read_bytes(),
            headers={**bearer(jwt_secret, roles=["hospital"], institution="knuh"), "Content-Type": "application/fhir+xml"},
        )
        clock.advance(timedelta(hours=1))
        revoked = await client.post("/v1/me/revocations", json={}, headers=bearer(jwt_secret, roles=["patient"], subject=patient))

    assert recorded.status_code == 201, recorded.text
    assert recorded.json()["change"] == "recorded"
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revocations"] == [{"consent_id": "mii-0001", "change": "applied", "exclusions_requested": 1}]

    granted = await outbox_events(service, "ConsentGranted", patient)
    assert [event["data"]["scope"]["purpose_codes"] for event in granted] == [["HMB"]]
    revocations = await outbox_events(service, "ConsentRevoked", patient)
    assert [event["data"]["consent_id"] for event in revocations] == ["mii-0001"]
    (requested,) = await outbox_events(service, "ExclusionRequested", patient)
    assert requested["data"]["grant_id"] == scenario.grant_id
    assert requested["data"]["dataset_id"] == scenario.dataset_id
    assert requested["data"]["grantee_institution"] == "vendor-medvision"
    assert requested["data"]["holder_institution"] == "knuh"
    assert requested["subject"] == patient
    assert await outbox_events(service, "ExclusionRequested", other) == []

    records = await tail.read_until(
        lambda items: any(orjson.loads(item.value)["type"] == "ExclusionRequested" and item.key == patient.encode() for item in items)
    )
    await tail.close()
    published = [orjson.loads(item.value) for item in records if item.key == patient.encode()]
    assert "ExclusionRequested" in [event["type"] for event in published]

    exclusion_id = requested["data"]["exclusion_id"]
    async with http_client(service) as client:
        stranger = await client.post(
            f"/v1/exclusions/{exclusion_id}/acknowledgement", headers=bearer(jwt_secret, roles=["hospital"], institution="cnuh")
        )
        wrong_role = await client.post(
            f"/v1/exclusions/{exclusion_id}/acknowledgement", headers=bearer(jwt_secret, roles=["applicant"], institution="knuh")
        )
        holder = await client.post(
            f"/v1/exclusions/{exclusion_id}/acknowledgement", headers=bearer(jwt_secret, roles=["hospital"], institution="knuh")
        )
        grantee = await client.post(
            f"/v1/exclusions/{exclusion_id}/acknowledgement",
            headers=bearer(jwt_secret, roles=["applicant"], institution="vendor-medvision"),
        )
        repeated = await client.post(
            f"/v1/exclusions/{exclusion_id}/acknowledgement",
            headers=bearer(jwt_secret, roles=["applicant"], institution="vendor-medvision"),
        )
        view = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"], subject=patient))

    assert stranger.status_code == 403
    assert stranger.json()["detail"]["code"] == "not_a_party"
    assert wrong_role.status_code == 403
    assert holder.json() == {"exclusion_id": exclusion_id, "complete": False, "missing_parties": ["grantee"]}
    assert grantee.json() == {"exclusion_id": exclusion_id, "complete": True, "missing_parties": []}
    assert repeated.status_code == 200
    acknowledgements = await outbox_events(service, "ExclusionAcknowledged", patient)
    assert [(event["data"]["party"], event["data"]["complete"]) for event in acknowledgements] == [("holder", False), ("grantee", True)]
    (project,) = view.json()["projects"]
    assert project["exclusion"]["state"] == "completed"
    assert project["decision_ids"] == ["dec-irb-0042", "dec-drb-0042"]


async def test_overdue_flag_raised_once(service: Service, scenario: Scenario, clock: ManualClock, jwt_secret: str) -> None:
    patient = scenario.subjects[0]
    await prepare(service, scenario)
    async with http_client(service) as client:
        given = await client.post(
            "/v1/me/consents",
            json={"scope": {"kind": "all_research"}, "institution_id": "knuh"},
            headers=bearer(jwt_secret, roles=["patient"], subject=patient),
        )
        clock.advance(timedelta(minutes=5))
        await client.post("/v1/me/revocations", json={}, headers=bearer(jwt_secret, roles=["patient"], subject=patient))
        (requested,) = await outbox_events(service, "ExclusionRequested", patient)
        await client.post(
            f"/v1/exclusions/{requested['data']['exclusion_id']}/acknowledgement",
            headers=bearer(jwt_secret, roles=["hospital"], institution="knuh"),
        )

    counted_before = REGISTRY.get_sample_value("medgov_exclusions_overdue_total")
    clock.advance(timedelta(hours=71))
    await asyncio.sleep(1.0)  # the overdue job runs every 0.2 s in these tests
    before_deadline = await outbox_events(service, "ExclusionOverdue", patient)
    clock.advance(timedelta(hours=2))
    await wait_until(lambda: outbox_events(service, "ExclusionOverdue", patient), timeout_s=10, message="ExclusionOverdue")
    clock.advance(timedelta(hours=24))
    await asyncio.sleep(1.0)

    assert given.status_code == 201, given.text
    assert before_deadline == []
    overdue = await outbox_events(service, "ExclusionOverdue", patient)
    assert len(overdue) == 1
    assert overdue[0]["data"]["missing_parties"] == ["grantee"]
    assert overdue[0]["data"]["institution_ids"] == ["vendor-medvision"]
    assert REGISTRY.get_sample_value("medgov_exclusions_overdue_total") == counted_before + 1


async def test_revocation_reaches_later_grant(service: Service, scenario: Scenario, clock: ManualClock, jwt_secret: str) -> None:
    """A grant approved after the revocation still gets an exclusion request for the revoked subject."""
    patient = scenario.subjects[0]
    await scenario.publish_dataset()
    await wait_for_members(service, scenario.dataset_id, len(scenario.subjects))
    async with http_client(service) as client:
        opted_out = await client.post(
            "/v1/me/revocations", json={"institution_id": "knuh"}, headers=bearer(jwt_secret, roles=["patient"], subject=patient)
        )
    clock.advance(timedelta(days=1))

    await scenario.publish_grant(granted_at=clock.now())
    await wait_until(lambda: outbox_events(service, "ExclusionRequested", patient), timeout_s=20, message="exclusion for new grant")

    assert opted_out.status_code == 200, opted_out.text
    assert opted_out.json()["revocations"][0]["consent_id"].startswith("optout-")
    (requested,) = await outbox_events(service, "ExclusionRequested", patient)
    assert requested["data"]["grant_id"] == scenario.grant_id


async def test_redelivered_grant_changes_nothing(service: Service, scenario: Scenario, clock: ManualClock, jwt_secret: str) -> None:
    patient = scenario.subjects[0]
    await scenario.publish_dataset()
    event_id = await scenario.publish_grant()
    await wait_for_grant(service, scenario.grant_id)
    async with http_client(service) as client:
        await client.post(
            "/v1/me/revocations", json={"institution_id": "knuh"}, headers=bearer(jwt_secret, roles=["patient"], subject=patient)
        )

    await scenario.publisher.send(scenario.topics.review, scenario.access_granted(), source="medgov/review", event_id=event_id)
    await scenario.publisher.send(scenario.topics.review, scenario.access_granted(), source="medgov/review")
    # Both carry the grant's key, so they arrive in order: once the second is in the inbox, the first was handled.
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) = 2 FROM inbox WHERE event_type = 'AccessGranted'"),
        timeout_s=20,
        message="both redeliveries consumed",
    )

    assert await service.pool.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", event_id) == 1
    assert await service.pool.fetchval("SELECT count(*) FROM grants WHERE grant_id = $1", scenario.grant_id) == 1
    assert await service.pool.fetchval("SELECT count(*) FROM exclusions WHERE subject = $1", patient) == 1
    assert len(await outbox_events(service, "ExclusionRequested", patient)) == 1


async def test_revocation_reaches_new_member(service: Service, scenario: Scenario, clock: ManualClock, jwt_secret: str) -> None:
    """A subject added to a granted dataset after revoking gets an exclusion request."""
    await prepare(service, scenario)
    latecomer = new_subject()
    async with http_client(service) as client:
        await client.post(
            "/v1/me/revocations", json={"institution_id": "knuh"}, headers=bearer(jwt_secret, roles=["patient"], subject=latecomer)
        )
    clock.advance(timedelta(days=1))

    await scenario.publisher.send(
        scenario.topics.catalog,
        DatasetSubjectsAdded(
            dataset_id=scenario.dataset_id, version=2, institution_id="knuh", chunk_index=0, chunk_count=1, subjects=(latecomer,)
        ),
        source="medgov/catalog",
    )
    await wait_until(lambda: outbox_events(service, "ExclusionRequested", latecomer), timeout_s=20, message="exclusion for new member")

    (requested,) = await outbox_events(service, "ExclusionRequested", latecomer)
    assert requested["data"]["grant_id"] == scenario.grant_id
    assert await outbox_events(service, "ExclusionRequested", scenario.subjects[0]) == []
