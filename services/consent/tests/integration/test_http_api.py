"""The HTTP API on the running service: access per role, specific errors for bad input, re-check findings, public figures."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.service import Service
from medgov_shared.testing.services import http_client, wait_until

from medgov_consent.commands import recheck

from .conftest import PSEUDONYM_KEY, Publisher, Scenario, Topics, bearer, new_subject, wait_for_grant, wait_for_members

pytestmark = pytest.mark.integration

CONSENT_FOLDER = Path("fhir") / "hl7-r4-examples" / "consent"


async def test_patient_sees_only_own_records(service: Service, publisher: Publisher, topics: Topics, jwt_secret: str) -> None:
    mine = Scenario(publisher, topics)
    theirs = Scenario(publisher, topics, holder="cnuh", grantee="vendor-lunapath")
    for scenario in (mine, theirs):
        await scenario.publish_dataset()
        await scenario.publish_grant()
    await wait_for_members(service, theirs.dataset_id, len(theirs.subjects))
    await wait_for_grant(service, theirs.grant_id)
    await wait_for_grant(service, mine.grant_id)
    patient = mine.subjects[0]

    async with http_client(service) as client:
        own = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"], subject=patient))
        other_patient = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"], subject=theirs.subjects[0]))
        no_token = await client.get("/v1/me")
        hospital = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["hospital"], institution="knuh"))
        no_subject = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"]))
        stranger = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"], subject=new_subject()))

    body = own.json()
    assert own.status_code == 200
    assert body["subject"] == patient
    assert [item["dataset_id"] for item in body["datasets"]] == [mine.dataset_id]
    assert [item["grant_id"] for item in body["projects"]] == [mine.grant_id]
    assert theirs.dataset_id not in own.text
    assert theirs.grant_id not in own.text
    assert mine.subjects[1] not in own.text
    assert mine.dataset_id not in other_patient.text
    assert no_token.status_code == 401
    assert hospital.status_code == 403
    assert no_subject.status_code == 403
    assert no_subject.json()["detail"]["code"] == "no_subject"
    assert stranger.status_code == 404
    assert stranger.json()["detail"]["code"] == "unknown_subject"


async def test_project_details_for_patient(service: Service, scenario: Scenario, jwt_secret: str) -> None:
    await scenario.publish_dataset()
    await scenario.publish_grant()
    await wait_for_grant(service, scenario.grant_id)

    async with http_client(service) as client:
        response = await client.get("/v1/me", headers=bearer(jwt_secret, roles=["patient"], subject=scenario.subjects[0]))

    assert response.status_code == 200, response.text
    (project,) = response.json()["projects"]
    assert project["title"] == "흉부 CT 결절 검출 모델"
    assert project["purpose_text"] == "폐결절 검출 AI 학습"
    assert project["purposes"] == ["HMB"]
    assert project["applicant"]["name_ko"] == "메드비전 AI"
    assert project["decision_ids"] == ["dec-irb-0042", "dec-drb-0042"]
    assert project["data_environment"] == "secure_enclave"
    assert project["active"] is True
    assert project["state"] == "active"
    assert project["exclusion"] is None


async def test_hospital_upload_errors(service: Service, jwt_secret: str, sample_data: Path) -> None:
    folder = sample_data / CONSENT_FOLDER
    knuh = bearer(jwt_secret, roles=["hospital"], institution="knuh")
    subject = new_subject()

    def upload(name: str) -> dict[str, object]:
        return {"subject": subject, "consent_id": "cns-knuh-0001", "fhir_consent": json.loads((folder / name).read_text())}

    async with http_client(service) as client:
        contract = await client.post("/v1/hospital/consents", json=upload("Contract-pcd-example-notThis.json"), headers=knuh)
        organization = await client.post("/v1/hospital/consents", json=upload("Consent-consent-example-Out.json"), headers=knuh)
        record = await client.post("/v1/hospital/consents", json=upload("Consent-consent-example-notThis.json"), headers=knuh)
        malformed = await client.post(
            "/v1/hospital/consents",
            json={**upload("Consent-consent-example-basic.json"), "fhir_consent": {"resourceType": "Consent", "status": 7}},
            headers=knuh,
        )
        basic = upload("Consent-consent-example-basic.json")
        identified = {**basic["fhir_consent"], "identifier": [{"value": "900101-1234567"}]}  # an RRN
        with_rrn = await client.post("/v1/hospital/consents", json={**basic, "fhir_consent": identified}, headers=knuh)
        mii = (sample_data / "fhir" / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml").read_bytes()
        with_rrn_xml = await client.post(
            "/v1/hospital/consents/xml",
            params={"subject": subject, "consent_id": "cns-knuh-0004"},
            content=mii.replace(b"<status ", b'<identifier><value value="900101-1234567"/></identifier><status ', 1),
            headers={**knuh, "Content-Type": "application/fhir+xml"},
        )
        dashed = {**basic["fhir_consent"], "identifier": [{"value": "900101－1234567"}]}  # a full-width hyphen
        with_dashed_rrn = await client.post("/v1/hospital/consents", json={**basic, "fhir_consent": dashed}, headers=knuh)
        spaced = {**basic["fhir_consent"], "identifier": [{"value": "900101 - 1234567"}]}
        with_spaced_rrn = await client.post("/v1/hospital/consents", json={**basic, "fhir_consent": spaced}, headers=knuh)
        bad_boolean = b'<extension url="http://example.org/b"><valueBoolean value="900101&#9;1234567"/></extension><status '
        quoted_rrn_xml = await client.post(
            "/v1/hospital/consents/xml",
            params={"subject": subject, "consent_id": "cns-knuh-0005"},
            content=mii.replace(b"<status ", bad_boolean, 1),
            headers={**knuh, "Content-Type": "application/fhir+xml"},
        )
        wrong_media = await client.post(
            "/v1/hospital/consents/xml",
            params={"subject": subject, "consent_id": "cns-knuh-0002"},
            content=b"<Consent/>",
            headers={**knuh, "Content-Type": "text/plain"},
        )
        oversized_xml = await client.post(
            "/v1/hospital/consents/xml",
            params={"subject": subject, "consent_id": "cns-knuh-0003"},
            content=b"<Consent>" + b" " * 1_048_576 + b"</Consent>",
            headers={**knuh, "Content-Type": "application/fhir+xml"},
        )
        padded = upload("Consent-consent-example-basic.json")
        padded["fhir_consent"]["text"] = {"status": "generated", "div": "x" * 1_048_576}
        oversized_json = await client.post("/v1/hospital/consents", json=padded, headers=knuh)
        vendor = await client.post(
            "/v1/hospital/consents",
            json=upload("Consent-consent-example-basic.json"),
            headers=bearer(jwt_secret, roles=["hospital"], institution="vendor-medvision"),
        )
        bad_pseudonym = await client.post(
            "/v1/hospital/consents", json={**upload("Consent-consent-example-basic.json"), "subject": "patient-17"}, headers=knuh
        )
        daejeon_subject = pseudonymize("patient-17", region="daejeon", key=PSEUDONYM_KEY)
        other_region = await client.post(
            "/v1/hospital/consents", json={**upload("Consent-consent-example-basic.json"), "subject": daejeon_subject}, headers=knuh
        )
        other_region_revocation = await client.post(
            "/v1/hospital/revocations", json={"subject": daejeon_subject, "consent_id": "cns-knuh-0001"}, headers=knuh
        )
        accepted = await client.post("/v1/hospital/consents", json=upload("Consent-consent-example-basic.json"), headers=knuh)
        taken = await client.post(
            "/v1/hospital/consents",
            json=upload("Consent-consent-example-basic.json"),
            headers=bearer(jwt_secret, roles=["hospital"], institution="yumc"),
        )
        # cnuh is a Daejeon hospital, and this installation serves Daegu.
        other_region_hospital = await client.post(
            "/v1/hospital/consents",
            json={**upload("Consent-consent-example-basic.json"), "consent_id": "cns-cnuh-0001"},
            headers=bearer(jwt_secret, roles=["hospital"], institution="cnuh"),
        )
        other_region_opt_out = await client.post(
            "/v1/hospital/revocations", json={"subject": subject, "consent_id": "cns-cnuh-0002"},
            headers=bearer(jwt_secret, roles=["hospital"], institution="cnuh"),
        )
        foreign_revocation = await client.post(
            "/v1/hospital/revocations", json={"subject": subject, "consent_id": "cns-knuh-0001"},
            headers=bearer(jwt_secret, roles=["hospital"], institution="dsmc"),
        )

    assert contract.status_code == 422
    assert contract.json()["detail"]["code"] == "not_a_consent"
    assert organization.json()["detail"] == {
        "code": "unknown_institution",
        "message": organization.json()["detail"]["message"],
        "path": "provision.actor[0].reference",
    }
    assert "Organization/f001" in organization.json()["detail"]["message"]
    assert record.json()["detail"]["code"] == "no_usable_scope"
    assert malformed.json()["detail"]["code"] == "malformed_fhir"
    for response in (with_rrn, with_rrn_xml, with_dashed_rrn, with_spaced_rrn):
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["code"] == "personal_data"
        assert "fhir_consent.identifier[0].value" in response.json()["detail"]["message"]
        assert "900101" not in response.text
    # The XML reader rejects the value before the check runs; its message must not quote the number.
    assert quoted_rrn_xml.json()["detail"]["code"] == "malformed_fhir"
    assert "[RRN removed]" in quoted_rrn_xml.json()["detail"]["message"]
    assert "1234567" not in quoted_rrn_xml.text
    assert wrong_media.status_code == 415
    assert oversized_xml.status_code == 413
    assert oversized_xml.json()["detail"]["code"] == "body_too_large"
    assert "at most 1048576 bytes" in oversized_xml.json()["detail"]["message"]
    assert oversized_json.status_code == 413
    assert "more than the limit of 1048576 bytes" in oversized_json.json()["detail"]
    assert vendor.status_code == 403
    assert vendor.json()["detail"]["code"] == "unknown_institution"
    assert bad_pseudonym.status_code == 422
    for response in (other_region, other_region_revocation):
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["code"] == "subject_of_other_region"
        assert "this installation serves daegu" in response.json()["detail"]["message"]
    assert accepted.status_code == 201
    assert accepted.json()["change"] == "recorded"
    assert taken.status_code == 422
    assert taken.json()["detail"]["code"] == "consent_id_taken"
    for response in (other_region_hospital, other_region_opt_out):
        assert response.status_code == 422
        assert response.json()["detail"]["code"] == "institution_of_other_region"
        assert "cnuh is a hospital of region daejeon; this installation serves daegu" in response.json()["detail"]["message"]
    assert foreign_revocation.status_code == 403
    assert foreign_revocation.json()["detail"]["code"] == "not_consent_recorder"


async def test_hospital_upload_extreme_values(service: Service, jwt_secret: str, sample_data: Path) -> None:
    knuh = bearer(jwt_secret, roles=["hospital"], institution="knuh")
    subject = new_subject()
    basic = json.loads((sample_data / CONSENT_FOLDER / "Consent-consent-example-basic.json").read_text())
    mii = (sample_data / "fhir" / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml").read_bytes()
    nested = b"<provision><type value=\"deny\"/>" * 60 + b"</provision>" * 60
    xml_headers = {**knuh, "Content-Type": "application/fhir+xml"}

    async with http_client(service) as client:
        deep_xml = await client.post(
            "/v1/hospital/consents/xml", params={"subject": subject, "consent_id": "cns-knuh-0101"},
            content=mii.replace(b"</provision>\n</Consent>", nested + b"</provision>\n</Consent>", 1), headers=xml_headers,
        )
        far_date = {**basic, "provision": {"period": {"start": "2020-01-01", "end": "9999-12-31"}}}
        far_end = await client.post(
            "/v1/hospital/consents", json={"subject": subject, "consent_id": "cns-knuh-0102", "fhir_consent": far_date}, headers=knuh
        )
        year_zero = await client.post(
            "/v1/hospital/revocations",
            json={"subject": subject, "consent_id": "cns-knuh-0102", "effective_at": "0001-01-01T00:00:00+09:00"},
            headers=knuh,
        )

    assert deep_xml.status_code == 422, deep_xml.text
    assert deep_xml.json()["detail"]["code"] == "malformed_fhir"
    assert "nests deeper than 64 levels" in deep_xml.json()["detail"]["message"]
    assert far_end.status_code == 422, far_end.text
    assert far_end.json()["detail"]["code"] == "malformed_fhir"
    assert far_end.json()["detail"]["path"] == "provision.period.end"
    assert year_zero.status_code == 422, year_zero.text
    assert "falls outside years 1 to 9999 in UTC" in year_zero.text


async def test_dashboard_input_errors(service: Service, jwt_secret: str, scenario: Scenario) -> None:
    await scenario.publish_dataset()
    await wait_for_members(service, scenario.dataset_id, len(scenario.subjects))
    patient = bearer(jwt_secret, roles=["patient"], subject=scenario.subjects[0])

    async with http_client(service) as client:
        empty_purposes = await client.post("/v1/me/consents", json={"scope": {"kind": "purposes"}, "institution_id": "knuh"}, headers=patient)
        unknown_hospital = await client.post(
            "/v1/me/consents", json={"scope": {"kind": "all_research"}, "institution_id": "snuh"}, headers=patient
        )
        vendor_as_hospital = await client.post(
            "/v1/me/consents", json={"scope": {"kind": "all_research"}, "institution_id": "vendor-medvision"}, headers=patient
        )
        other_region_hospital = await client.post(
            "/v1/me/consents", json={"scope": {"kind": "all_research"}, "institution_id": "cnuh"}, headers=patient
        )
        no_hospital = await client.post("/v1/me/consents", json={"scope": {"kind": "all_research"}}, headers=patient)
        unknown_consent = await client.post("/v1/me/revocations", json={"consent_id": "cns-nope"}, headers=patient)
        opt_out_without_hospital = await client.post("/v1/me/revocations", json={}, headers=patient)

    assert empty_purposes.status_code == 422
    assert empty_purposes.json()["detail"]["code"] == "no_usable_scope"
    assert unknown_hospital.json()["detail"]["code"] == "unknown_institution"
    assert vendor_as_hospital.json()["detail"]["code"] == "unknown_institution"
    assert other_region_hospital.status_code == 422
    assert other_region_hospital.json()["detail"]["code"] == "institution_of_other_region"
    assert no_hospital.status_code == 422
    assert no_hospital.json()["detail"]["message"].startswith("institution_id: missing; give the id of the hospital")
    assert unknown_consent.status_code == 404
    assert unknown_consent.json()["detail"]["code"] == "unknown_consent"
    assert opt_out_without_hospital.status_code == 422
    assert opt_out_without_hospital.json()["detail"]["path"] == "institution_id"


# A chunk of one member makes the re-check read the dataset in two passes.
@pytest.mark.parametrize("chunk", [recheck.RECHECK_CHUNK, 1])
async def test_terms_change_lists_mismatches(
    service: Service, scenario: Scenario, clock: ManualClock, jwt_secret: str, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(recheck, "RECHECK_CHUNK", chunk)
    consenting, silent = scenario.subjects
    await scenario.publish_dataset()
    await scenario.publish_grant()
    await wait_for_grant(service, scenario.grant_id)
    async with http_client(service) as client:
        await client.post(
            "/v1/me/consents",
            json={"scope": {"kind": "all_research"}, "institution_id": "knuh"},
            headers=bearer(jwt_secret, roles=["patient"], subject=consenting),
        )
    clock.advance(timedelta(days=1))

    await scenario.publish_dataset(legal_basis="consent", version=2)
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) FROM grant_mismatches WHERE grant_id = $1", scenario.grant_id),
        timeout_s=20,
        message="mismatch listed",
    )
    async with http_client(service) as client:
        listed = await client.get("/v1/mismatches", headers=bearer(jwt_secret, roles=["drb_reviewer"]))
        forbidden = await client.get("/v1/mismatches", headers=bearer(jwt_secret, roles=["applicant"], institution="vendor-medvision"))

    mine = [item for item in listed.json()["mismatches"] if item["grant_id"] == scenario.grant_id]
    assert [item["subject"] for item in mine] == [silent]
    assert "legal basis 'consent'" in mine[0]["reason"]
    assert forbidden.status_code == 403

    # Terms that rule the whole grant out: one finding without a subject, however many passes.
    clock.advance(timedelta(days=1))
    await scenario.publish_dataset(duo_codes=("POA",), version=3)
    await wait_until(
        lambda: service.pool.fetchval(
            "SELECT count(*) FROM grant_mismatches WHERE grant_id = $1 AND subject = ''", scenario.grant_id
        ),
        timeout_s=20,
        message="grant-wide mismatch listed",
    )
    rows = await service.pool.fetch("SELECT subject, reason FROM grant_mismatches WHERE grant_id = $1", scenario.grant_id)
    # The table stores "no subject" as an empty string.
    assert [(row["subject"], "not within the terms POA" in row["reason"]) for row in rows] == [("", True)]


async def test_public_opt_out_rates(service: Service, clock: ManualClock, jwt_secret: str) -> None:
    patients = [new_subject() for _ in range(6)]
    async with http_client(service) as client:
        for patient in patients:
            await client.post(
                "/v1/me/consents",
                json={"scope": {"kind": "all_research"}, "institution_id": "dsmc"},
                headers=bearer(jwt_secret, roles=["patient"], subject=patient),
            )
        clock.advance(timedelta(days=1))
        await client.post("/v1/me/revocations", json={}, headers=bearer(jwt_secret, roles=["patient"], subject=patients[0]))
        await client.post(
            "/v1/me/consents",
            json={"scope": {"kind": "all_research"}, "institution_id": "yumc"},
            headers=bearer(jwt_secret, roles=["patient"], subject=patients[1]),
        )
        response = await client.get("/v1/public/opt-out-rates", params={"months": 2})

    body = response.json()
    cells = {(cell["institution"]["id"], cell["month"]): cell for cell in body["cells"]}
    assert body["months"] == ["2027-02", "2027-03"]
    assert cells[("dsmc", "2027-03")]["subjects"] == 6
    assert cells[("dsmc", "2027-03")]["opted_out"] == 1
    assert cells[("dsmc", "2027-02")]["suppressed"] is True
    assert cells[("yumc", "2027-03")]["suppressed"] is True
    assert cells[("yumc", "2027-03")]["rate"] is None
