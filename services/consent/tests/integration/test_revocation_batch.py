"""Revocations of many subjects applied at once (revoke_many) against the real PostgreSQL server, and in a batch from Kafka."""

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.events.inbound import RevokeConsent
from medgov_shared.contracts.registry import inbound_topic
from medgov_shared.service import Service
from medgov_shared.testing.services import http_client, wait_until

from medgov_consent.commands.consents import RevocationToRecord, revoke_many
from medgov_consent.domain.errors import NotConsentRecorder
from medgov_consent.domain.history import ChangeKind, Revocation

from .conftest import Publisher, Scenario, bearer, new_id, new_subject, outbox_events, wait_for_grant, wait_for_members

pytestmark = pytest.mark.integration

MII_XML = Path("fhir") / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml"
ACKNOWLEDGE_WITHIN = timedelta(days=7)


async def record_consents(service: Service, scenario: Scenario, subjects: list[str], jwt_secret: str, sample_data: Path) -> dict[str, str]:
    """Publish the dataset and grant, record the MII consent for each of `subjects` at knuh; return subject -> consent id."""
    await scenario.publish_dataset()
    await scenario.publish_grant()
    await wait_for_members(service, scenario.dataset_id, len(scenario.subjects))
    await wait_for_grant(service, scenario.grant_id)
    consent_ids = {subject: new_id("cns-knuh") for subject in subjects}
    async with http_client(service) as client:
        for subject, consent_id in consent_ids.items():
            response = await client.post(
                "/v1/hospital/consents/xml",
                params={"subject": subject, "consent_id": consent_id},
                content=(sample_data / MII_XML).read_bytes(),
                headers={**bearer(jwt_secret, roles=["hospital"], institution="knuh"), "Content-Type": "application/fhir+xml"},
            )
            assert response.status_code == 201, response.text
    return consent_ids


async def test_revoke_many_fans_out_each_subject(
    service: Service, publisher: Publisher, topics: Any, clock: ManualClock, jwt_secret: str, sample_data: Path
) -> None:
    scenario = Scenario(publisher, topics, subjects=tuple(new_subject() for _ in range(4)))
    consenting, unknown = list(scenario.subjects[:3]), scenario.subjects[3]
    consent_ids = await record_consents(service, scenario, consenting, jwt_secret, sample_data)
    clock.advance(timedelta(hours=1))
    effective_at = clock.now()

    async with service.unit_of_work() as context:
        requests = [
            RevocationToRecord(dataclasses.replace(context), subject, Revocation(consent_ids[subject], "knuh", "fhir", effective_at))
            for subject in consenting
        ]
        # A revocation of a consent not recorded yet is parked, never dropped.
        requests.append(RevocationToRecord(dataclasses.replace(context), unknown, Revocation("cns-knuh-later", "knuh", "fhir", effective_at)))
        outcomes = await revoke_many(requests, ACKNOWLEDGE_WITHIN)

    assert [(outcome.change, outcome.exclusions_requested) for outcome in outcomes] == [(ChangeKind.APPLIED, 1)] * 3 + [(ChangeKind.PARKED, 0)]
    for subject in consenting:
        revoked = await outbox_events(service, "ConsentRevoked", subject)
        assert [event["data"]["consent_id"] for event in revoked] == [consent_ids[subject]]
        (requested,) = await outbox_events(service, "ExclusionRequested", subject)
        assert (requested["data"]["grant_id"], requested["data"]["consent_id"]) == (scenario.grant_id, consent_ids[subject])
    assert await outbox_events(service, "ExclusionRequested", unknown) == []
    pool = service.pool
    assert await pool.fetchval("SELECT count(*) FROM exclusions WHERE subject = ANY($1::text[])", consenting) == 3
    assert await pool.fetchval(
        "SELECT count(*) FROM revocations WHERE subject = ANY($1::text[]) AND fanned_out_at IS NOT NULL", consenting
    ) == 3
    assert await pool.fetchval("SELECT count(*) FROM parked_revocations WHERE subject = $1", unknown) == 1
    # Every grant reached was excluded, so the re-check finds nothing left to report.
    assert await pool.fetchval("SELECT count(*) FROM grant_mismatches WHERE subject = ANY($1::text[])", consenting) == 0

    async with service.unit_of_work() as context:
        again = [
            RevocationToRecord(dataclasses.replace(context), subject, Revocation(consent_ids[subject], "knuh", "fhir", effective_at))
            for subject in consenting
        ]
        repeated = await revoke_many(again, ACKNOWLEDGE_WITHIN)
    assert [(outcome.change, outcome.exclusions_requested) for outcome in repeated] == [(ChangeKind.DUPLICATE, 0)] * 3
    assert await pool.fetchval("SELECT count(*) FROM exclusions WHERE subject = ANY($1::text[])", consenting) == 3


async def test_revoke_many_rejects_repeat_and_foreign(
    service: Service, publisher: Publisher, topics: Any, jwt_secret: str, sample_data: Path
) -> None:
    scenario = Scenario(publisher, topics)
    subject, other = scenario.subjects
    consent_ids = await record_consents(service, scenario, [subject, other], jwt_secret, sample_data)
    now = service.clock.now()

    async with service.unit_of_work() as context:
        twice = [RevocationToRecord(context, subject, Revocation(consent_ids[subject], "knuh", "fhir", now))] * 2
        with pytest.raises(ValueError, match="each subject once"):
            await revoke_many(twice, ACKNOWLEDGE_WITHIN)

    with pytest.raises(NotConsentRecorder, match="only that hospital can revoke it"):
        async with service.unit_of_work() as context:
            await revoke_many(
                [
                    RevocationToRecord(context, other, Revocation(consent_ids[other], "knuh", "fhir", now)),
                    RevocationToRecord(context, subject, Revocation(consent_ids[subject], "dsmc", "fhir", now)),
                ],
                ACKNOWLEDGE_WITHIN,
            )
    # The refusal rolled back the whole unit of work, the other subject's revocation included.
    assert await service.pool.fetchval("SELECT count(*) FROM revocations WHERE subject = ANY($1::text[])", [subject, other]) == 0


async def test_batched_revocations_dead_letter_foreign_one(
    inbound_service: Service, publisher: Publisher, topics: Any, jwt_secret: str, sample_data: Path
) -> None:
    scenario = Scenario(publisher, topics, subjects=tuple(new_subject() for _ in range(5)))
    consent_ids = await record_consents(inbound_service, scenario, list(scenario.subjects), jwt_secret, sample_data)
    now = inbound_service.clock.now()
    foreign = scenario.subjects[0]
    sent = {}
    for subject in scenario.subjects:
        # dsmc did not record the first subject's consent, so it may not revoke it.
        institution = "dsmc" if subject == foreign else "knuh"
        revocation = RevokeConsent(institution_id=institution, subject=subject, consent_id=consent_ids[subject], effective_at=now)
        sent[subject] = await publisher.send(inbound_topic(institution), revocation, source=f"medgov/hospital/{institution}")

    applied = list(scenario.subjects[1:])
    await wait_until(
        lambda: inbound_service.pool.fetchval("SELECT count(*) = 4 FROM exclusions WHERE subject = ANY($1::text[])", applied),
        timeout_s=30,
        message="four revocations fanned out",
    )
    letter = await wait_until(
        lambda: inbound_service.pool.fetchrow("SELECT reason, error FROM dead_letters WHERE event_id = $1", str(sent[foreign])),
        timeout_s=30,
        message="the foreign revocation dead-lettered",
    )
    assert letter["reason"] == "rejected"
    assert "(not_consent_recorder)" in letter["error"]
    assert await inbound_service.pool.fetchval("SELECT count(*) FROM revocations WHERE subject = $1", foreign) == 0
