"""Hospitals' RecordConsent and RevokeConsent commands on their inbound topics, in and out of order."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.inbound import RecordConsent, RevokeConsent
from medgov_shared.contracts.registry import inbound_topic
from medgov_shared.service import Service
from medgov_shared.testing.services import http_client, wait_until

from medgov_consent.domain.fhir_xml import parse_fhir_xml

from .conftest import (
    T0, Publisher, Scenario, bearer, new_id, new_subject, outbox_events, wait_for_grant, wait_for_members,
)

pytestmark = pytest.mark.integration


def mii_consent(sample_data: Path) -> dict[str, Any]:
    resource = parse_fhir_xml((sample_data / "fhir" / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml").read_bytes())
    resource.pop("patient")  # RecordConsent carries the pseudonym instead of the hospital's patient reference
    return resource


async def test_revocation_before_consent_is_parked(
    inbound_service: Service, scenario: Scenario, publisher: Publisher, clock: ManualClock, sample_data: Path
) -> None:
    patient = scenario.subjects[0]
    consent_id = new_id("cns-knuh")
    await scenario.publish_dataset()
    await scenario.publish_grant()
    await wait_for_members(inbound_service, scenario.dataset_id, len(scenario.subjects))
    await wait_for_grant(inbound_service, scenario.grant_id)

    revocation = RevokeConsent(
        institution_id="knuh", subject=patient, consent_id=consent_id, effective_at=T0 + timedelta(hours=2)
    )
    await publisher.send(inbound_topic("knuh"), revocation, source="medgov/hospital/knuh")
    await wait_until(
        lambda: inbound_service.pool.fetchval("SELECT count(*) FROM parked_revocations WHERE subject = $1", patient),
        timeout_s=20,
        message="revocation parked",
    )
    clock.advance(timedelta(hours=3))
    record = RecordConsent(institution_id="knuh", subject=patient, consent_id=consent_id, fhir_consent=mii_consent(sample_data))
    await publisher.send(inbound_topic("knuh"), record, source="medgov/hospital/knuh")
    await wait_until(
        lambda: outbox_events(inbound_service, "ExclusionRequested", patient), timeout_s=20, message="exclusion requested"
    )

    granted = await outbox_events(inbound_service, "ConsentGranted", patient)
    revoked = await outbox_events(inbound_service, "ConsentRevoked", patient)
    assert [event["data"]["consent_id"] for event in granted] == [consent_id]
    assert [event["data"]["consent_id"] for event in revoked] == [consent_id]
    assert revoked[0]["data"]["effective_at"] == "2027-03-02T02:00:00Z"
    assert await inbound_service.pool.fetchval("SELECT count(*) FROM parked_revocations WHERE subject = $1", patient) == 0


async def test_bad_commands_are_dead_lettered(inbound_service: Service, publisher: Publisher, consent_folder_data: Path) -> None:
    not_a_consent = RecordConsent(
        institution_id="knuh",
        subject=new_subject(),
        consent_id=new_id("cns-knuh"),
        fhir_consent=_load(consent_folder_data / "Contract-pcd-example-notThis.json"),
    )
    unknown_organization = RecordConsent(
        institution_id="knuh",
        subject=not_a_consent.subject,
        consent_id=new_id("cns-knuh"),
        fhir_consent=_load(consent_folder_data / "Consent-consent-example-notOrg.json"),
    )
    from_vendor = RecordConsent(
        institution_id="vendor-medvision",
        subject=not_a_consent.subject,
        consent_id=new_id("cns-vendor"),
        fhir_consent=_load(consent_folder_data / "Consent-consent-example-basic.json"),
    )
    sent = {
        "not_a_consent": await publisher.send(inbound_topic("knuh"), not_a_consent, source="medgov/hospital/knuh"),
        "unknown_organization": await publisher.send(inbound_topic("knuh"), unknown_organization, source="medgov/hospital/knuh"),
        "from_vendor": await publisher.send(
            inbound_topic("vendor-medvision"), from_vendor, source="medgov/hospital/vendor-medvision"
        ),
    }

    async def all_dead_lettered() -> dict[str, str]:
        rows = await inbound_service.pool.fetch(
            "SELECT event_id, reason, error FROM dead_letters WHERE event_id = ANY($1)", [str(value) for value in sent.values()]
        )
        return {row["event_id"]: f"{row['reason']}: {row['error']}" for row in rows} if len(rows) == 3 else {}

    letters = await wait_until(all_dead_lettered, timeout_s=20, message="three dead letters")

    assert letters[str(sent["not_a_consent"])].startswith("rejected: ")
    assert "(not_a_consent)" in letters[str(sent["not_a_consent"])]
    assert "(unknown_institution)" in letters[str(sent["unknown_organization"])]
    assert "Organization/f001" in letters[str(sent["unknown_organization"])]
    assert "vendor-medvision, a vendor; only hospitals" in letters[str(sent["from_vendor"])]
    assert await inbound_service.pool.fetchval("SELECT count(*) FROM consents WHERE subject = $1", not_a_consent.subject) == 0


async def test_mismatched_key_or_subject_dead_lettered(inbound_service: Service, publisher: Publisher) -> None:
    subject, other = new_subject(), new_subject()

    def revocation() -> RevokeConsent:
        return RevokeConsent(institution_id="knuh", subject=subject, consent_id=new_id("cns-knuh"), effective_at=T0)

    wrong_key = wrap(revocation(), source="medgov/hospital/knuh", region="daegu")
    wrong_subject = wrap(revocation(), source="medgov/hospital/knuh", region="daegu").model_copy(update={"subject": other})
    await publisher.producer.send_and_wait(inbound_topic("knuh"), value=wrong_key.to_json(), key=other.encode())
    await publisher.producer.send_and_wait(inbound_topic("knuh"), value=wrong_subject.to_json(), key=other.encode())

    async def both_dead_lettered() -> dict[str, str]:
        rows = await inbound_service.pool.fetch(
            "SELECT event_id, reason, error FROM dead_letters WHERE event_id = ANY($1)",
            [str(wrong_key.id), str(wrong_subject.id)],
        )
        return {row["event_id"]: f"{row['reason']}: {row['error']}" for row in rows} if len(rows) == 2 else {}

    letters = await wait_until(both_dead_lettered, timeout_s=20, message="two dead letters")

    assert letters[str(wrong_key.id)].startswith("invalid_envelope: the Kafka key is not the envelope subject")
    assert letters[str(wrong_subject.id)].startswith(f"invalid_envelope: envelope subject '{other}' is not data.subject")
    assert await inbound_service.pool.fetchval("SELECT count(*) FROM parked_revocations WHERE subject = $1", subject) == 0


async def test_dashboard_reads_each_consent_period(
    inbound_service: Service, scenario: Scenario, publisher: Publisher, sample_data: Path, jwt_secret: str
) -> None:
    patient = scenario.subjects[0]
    await scenario.publish_dataset()
    await wait_for_members(inbound_service, scenario.dataset_id, len(scenario.subjects))
    ended = _load(sample_data / "fhir" / "hl7-r4-examples" / "consent" / "Consent-consent-example-basic.json")
    ended.pop("patient")
    commands = {
        "ended": RecordConsent(institution_id="knuh", subject=patient, consent_id=new_id("cns-knuh"), fhir_consent=ended),
        "running": RecordConsent(
            institution_id="knuh", subject=patient, consent_id=new_id("cns-knuh"), fhir_consent=mii_consent(sample_data)
        ),
    }
    for command in commands.values():
        await publisher.send(inbound_topic("knuh"), command, source="medgov/hospital/knuh")
    await wait_until(
        lambda: inbound_service.pool.fetchval("SELECT count(*) = 2 FROM consents WHERE subject = $1", patient),
        timeout_s=20,
        message="both consents recorded",
    )

    async with http_client(inbound_service) as client:
        response = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"], subject=patient))

    assert response.status_code == 200, response.text
    shown = {item["consent_id"]: item for item in response.json()["consents"]}
    # The basic example's period ended on 2016-01-01; the MII consent runs to 2050-08-31 (clock at 2027-03-02).
    assert shown[commands["ended"].consent_id]["status"] == "expired"
    assert shown[commands["ended"].consent_id]["in_force"] is False
    assert shown[commands["ended"].consent_id]["period_end"] == "2016-01-01T15:00:00+00:00"
    assert shown[commands["running"].consent_id]["status"] == "in_force"
    assert shown[commands["running"].consent_id]["in_force"] is True


@pytest.fixture
def consent_folder_data(sample_data: Path) -> Path:
    return sample_data / "fhir" / "hl7-r4-examples" / "consent"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
