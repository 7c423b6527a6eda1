"""PIPA scan: which values are found, how they are classed, and what each legal basis allows."""

import copy
import json

import pydicom
import pytest
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.types import LegalBasis, Severity

from medgov_catalog.domain.pipa_dicom import scan_dicom_dataset
from medgov_catalog.domain.pipa_fhir import scan_fhir_resource
from medgov_catalog.domain.pipa_scan import (
    MAX_FINDINGS_PER_EVENT,
    IdentifierCategory,
    IdentifierFinding,
    IdentifierKind,
    Rule,
    judge,
    subject_list_findings,
    summarize_for_event,
)

PSEUDONYM = pseudonymize("MRN-0001", region="daegu", key=b"k" * 32)
DIRECT = IdentifierCategory.DIRECT
QUASI = IdentifierCategory.QUASI
LINK = IdentifierCategory.LINK


def _kinds(findings) -> set[tuple[str, str, str]]:
    return {(finding.location, finding.kind.value, finding.category.value) for finding in findings}


def _load(sample_data, relative):
    return json.loads((sample_data / relative).read_text(encoding="utf-8"))


def test_patient_example_fields_reported(sample_data):
    patient = _load(sample_data, "fhir/hl7-r4-examples/patient/Patient-example.json")

    found = _kinds(scan_fhir_resource(patient, "p.json", "Patient"))

    assert ("Patient.name[0]", "name", "direct") in found
    assert ("Patient.telecom[1]", "telecom", "direct") in found
    assert ("Patient.address[0]", "address", "direct") in found
    assert ("Patient.identifier[0]", "medical_record_number", "direct") in found
    assert ("Patient.contact[0].name", "name", "direct") in found
    assert ("Patient.birthDate", "birth_date", "quasi") in found
    assert ("Patient.text.div", "name", "direct") in found
    # telecom[0] has a use but no value, so nothing identifying is there.
    assert not any(location == "Patient.telecom[0]" for location, _, _ in found)


def test_pseudonymized_patient_has_only_link():
    patient = {
        "resourceType": "Patient",
        "id": "x",
        "identifier": [{"system": "urn:medgov:pseudonym", "value": PSEUDONYM}],
        "birthDate": "1971",
        "gender": "female",
        "address": [{"state": "대구광역시", "country": "KR"}],
    }

    found = _kinds(scan_fhir_resource(patient, "p.json", "Patient"))

    assert found == {("Patient.identifier[0]", "pseudonym", "link")}


def test_korean_patient_identifiers():
    patient = {
        "resourceType": "Patient",
        "name": [{"text": "김영희"}],
        "telecom": [{"system": "phone", "value": "010-5432-9876"}],
        "identifier": [{"system": "urn:kr:rrn", "value": "711111-2345678"}],
        "address": [{"text": "대구광역시 동구 효동로 112 (효목동)", "postalCode": "41170"}],
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>김영희 환자</div>"},
    }

    found = _kinds(scan_fhir_resource(patient, "kr.json", "Patient"))

    assert ("Patient.identifier[0]", "resident_registration_number", "direct") in found
    assert ("Patient.name[0]", "name", "direct") in found
    assert ("Patient.address[0]", "address", "direct") in found
    assert ("Patient.text.div", "name", "direct") in found


def test_partial_address_is_quasi():
    patient = {"resourceType": "Patient", "address": [{"city": "Daegu", "postalCode": "41170"}]}

    found = _kinds(scan_fhir_resource(patient, "p.json", "Patient"))

    assert found == {
        ("Patient.address[0].postalCode", "postal_code", "quasi"),
        ("Patient.address[0]", "address_part", "quasi"),
    }


def test_rrn_in_any_resource_text():
    note = {"resourceType": "Observation", "note": [{"text": "주민번호 800101-1234567 확인"}]}

    found = _kinds(scan_fhir_resource(note, "o.json", "Observation"))

    assert found == {("Observation.note[0].text", "resident_registration_number", "direct")}


def test_pseudonym_with_rrn_shaped_digits_not_rrn():
    # This pseudonym's hex digest contains "4206185232986", which has the shape of an RRN.
    pseudonym = "daegu.k1.6f808f43ec54c366b474d5c86a1bd4206185232986cfc304dc1e183d79b7d7ca"
    patient = {"resourceType": "Patient", "identifier": [{"value": pseudonym}]}

    found = _kinds(scan_fhir_resource(patient, "p.json", "Patient"))

    assert found == {("Patient.identifier[0]", "pseudonym", "link")}


def test_person_reference_display_is_name():
    consent = {
        "resourceType": "Consent",
        "patient": {"reference": "Patient/f001", "display": "P. van de Heuvel"},
        "organization": [{"reference": "Organization/f001", "display": "Burgers University Medical Center"}],
    }

    found = _kinds(scan_fhir_resource(consent, "c.json", "Consent"))

    assert found == {("Consent.patient.display", "name", "direct")}


def test_urn_reference_to_bundle_patient_recognised():
    observation = {"resourceType": "Observation", "subject": {"reference": "urn:uuid:1", "display": "Bob"}}

    found = _kinds(scan_fhir_resource(observation, "b.json", "Bundle.entry[1]", frozenset({"urn:uuid:1"})))

    assert found == {("Bundle.entry[1].subject.display", "name", "direct")}


def test_practitioner_not_scanned(sample_data):
    practitioner = _load(sample_data, "fhir/hl7-r4-examples/other/Practitioner-f001.json")

    assert scan_fhir_resource(practitioner, "pr.json", "Practitioner") == []


def test_contained_patient_scanned():
    report = {
        "resourceType": "DiagnosticReport",
        "contained": [{"resourceType": "Patient", "id": "p", "name": [{"family": "Kim"}]}],
    }

    found = _kinds(scan_fhir_resource(report, "r.json", "DiagnosticReport"))

    assert found == {("DiagnosticReport.contained[0].name[0]", "name", "direct")}


def test_dicom_pseudonymized_patient_id_is_link(sample_data):
    dataset = pydicom.dcmread(sample_data / "dicom/single/MR_small.dcm")
    dataset.PatientID = PSEUDONYM
    dataset.PatientName = ""

    found = _kinds(scan_dicom_dataset(dataset, "mr.dcm"))

    assert found == {("PatientID (0010,0020)", "pseudonym", "link")}


def test_dicom_private_tag_repeating_patient_id(sample_data):
    dataset = pydicom.dcmread(sample_data / "dicom/single/MR_small.dcm")
    block = dataset.private_block(0x0029, "ACME_SITE", create=True)
    block.add_new(0x10, "LO", f"scan of {dataset.PatientID}")
    block.add_new(0x11, "LO", "harmless protocol text")

    found = _kinds(scan_dicom_dataset(dataset, "mr.dcm"))

    assert ("(0029,1010) ACME_SITE Private tag data", "private_tag", "direct") in found
    assert not any(location.startswith("(0029,1011)") for location, _, _ in found)


def test_dicom_rrn_in_comments_and_old_age(sample_data):
    dataset = pydicom.dcmread(sample_data / "dicom/single/MR_small.dcm")
    dataset.PatientComments = "RRN 800101-1234567"
    dataset.PatientAge = "093Y"

    found = _kinds(scan_dicom_dataset(dataset, "mr.dcm"))

    assert ("PatientComments (0010,4000)", "resident_registration_number", "direct") in found
    assert ("PatientAge (0010,1010)", "age_over_89", "quasi") in found


def test_dicom_numbers_not_taken_for_rrn(sample_data):
    dataset = pydicom.dcmread(sample_data / "dicom/fileset/98892001/CT2N/6293")

    kinds = {finding.kind for finding in scan_dicom_dataset(dataset, "ct")}

    assert IdentifierKind.RESIDENT_REGISTRATION_NUMBER not in kinds


def test_dicom_empty_name_not_reported(sample_data):
    dataset = pydicom.dcmread(sample_data / "dicom/single/MR_small.dcm")
    dataset.PatientName = "^^"
    dataset.PatientID = ""

    assert scan_dicom_dataset(dataset, "mr.dcm") == []


def _finding(kind, category, file="f.json", location="x"):
    return IdentifierFinding(file, location, kind, category)


NAME = _finding(IdentifierKind.NAME, DIRECT)
BIRTH = _finding(IdentifierKind.BIRTH_DATE, QUASI)
PSEUDO = _finding(IdentifierKind.PSEUDONYM, LINK)


@pytest.mark.parametrize(
    ("basis", "findings", "expected_rules"),
    [
        (LegalBasis.PSEUDONYMIZED_RESEARCH, [BIRTH, PSEUDO], []),
        (LegalBasis.PSEUDONYMIZED_RESEARCH, [NAME, BIRTH], [Rule.DIRECT_IDENTIFIER_IN_PSEUDONYMIZED_DATASET]),
        (LegalBasis.CONSENT, [BIRTH, PSEUDO], []),
        (LegalBasis.CONSENT, [NAME], [Rule.DIRECT_IDENTIFIER_IN_CONSENT_DATASET]),
        (LegalBasis.ANONYMOUS, [], []),
        (LegalBasis.ANONYMOUS, [BIRTH], [Rule.QUASI_IDENTIFIER_IN_ANONYMOUS_DATASET]),
        (LegalBasis.ANONYMOUS, [PSEUDO], [Rule.REIDENTIFICATION_LINK_IN_ANONYMOUS_DATASET]),
        (
            LegalBasis.ANONYMOUS,
            [NAME, BIRTH, PSEUDO],
            [
                Rule.DIRECT_IDENTIFIER_IN_ANONYMOUS_DATASET,
                Rule.QUASI_IDENTIFIER_IN_ANONYMOUS_DATASET,
                Rule.REIDENTIFICATION_LINK_IN_ANONYMOUS_DATASET,
            ],
        ),
    ],
)
def test_judge_rules_per_legal_basis(basis, findings, expected_rules):
    verdict = judge(basis, findings)

    assert [violation.rule for violation in verdict.violations] == expected_rules
    assert verdict.publishable is (not expected_rules)


def test_direct_identifier_severity_high():
    verdict = judge(LegalBasis.PSEUDONYMIZED_RESEARCH, [NAME])

    assert verdict.violations[0].severity == Severity.HIGH
    assert verdict.violations[0].findings == (NAME,)


def test_subject_list_blocks_anonymous_only():
    links = subject_list_findings(3)

    assert not judge(LegalBasis.ANONYMOUS, links).publishable
    assert judge(LegalBasis.PSEUDONYMIZED_RESEARCH, links).publishable
    assert subject_list_findings(0) == ()


def test_summary_collapses_repeated_paths():
    findings = [_finding(IdentifierKind.NAME, DIRECT, "Patient.ndjson", f"line {n}: Patient.name[0]") for n in range(1, 200_001)]

    summary = summarize_for_event(findings)

    assert len(summary) == 1
    assert summary[0].location == "line 1: Patient.name[0] (and 199999 more like it)"
    assert summary[0].kind == "name"


def test_summary_caps_distinct_findings():
    findings = [_finding(IdentifierKind.NAME, DIRECT, f"file-{n}.json", "Patient.name[0]") for n in range(1200)]

    summary = summarize_for_event(findings)

    assert len(summary) == MAX_FINDINGS_PER_EVENT
    assert summary[-1].kind == "omitted"
    assert summary[-1].location == "701 more findings not listed here"


def test_scan_does_not_modify_resource(sample_data):
    bundle_patient = _load(sample_data, "fhir/hl7-r4-examples/patient/Patient-f201.json")
    before = copy.deepcopy(bundle_patient)

    scan_fhir_resource(bundle_patient, "p.json", "Patient")

    assert bundle_patient == before
