"""Registration of a dataset version from real sample files: figures, scan verdict and events."""

from datetime import UTC, datetime

import pytest
from medgov_shared.contracts.events.catalog import (
    ComplianceViolationFlagged,
    DatasetDescription,
    DatasetPublished,
    DatasetRegistered,
    DatasetSubjectsAdded,
)
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.types import Region

from medgov_catalog.domain.dataset import DatasetHistory, VersionRecord
from medgov_catalog.domain.files import FileLimits
from medgov_catalog.domain.inspection import inspect_dataset
from medgov_catalog.domain.registration import RegistrationRejected, flag_id, register_version

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SUBJECTS = tuple(pseudonymize(f"MRN{index}", region="daegu", key=b"k" * 32) for index in range(3))
CLEAN_FHIR = [
    "synthea/bulk-export-10-patients/Immunization.000.ndjson",
    "synthea/bulk-export-10-patients/AllergyIntolerance.000.ndjson",
]
TEN_FILES = [
    "synthea/bulk-export-10-patients/Immunization.000.ndjson",
    "synthea/bulk-export-10-patients/AllergyIntolerance.000.ndjson",
    "synthea/bulk-export-10-patients/Device.000.ndjson",
    "synthea/bulk-export-10-patients/Location.000.ndjson",
    "synthea/bulk-export-10-patients/log.ndjson",
    "fhir/hl7-r4-examples/imaging/ImagingStudy-example.json",
    "fhir/invalid-and-corner-cases/observation_invalid_multiple_choicex_provided.json",
    "fhir/hl7-r4-examples/research/Group-102.json",
    "fhir/hl7-r4-examples/other/Organization-f001.json",
    "fhir/hl7-r4-examples/imaging/Endpoint-example.json",
]


def _command(files, legal_basis="pseudonymized_research", subjects=SUBJECTS, publisher="knuh") -> RegisterDataset:
    description = DatasetDescription(
        title="Synthea 면역 기록",
        description="Immunizations and allergies of synthetic patients from a FHIR Bulk Data export, "
        "with vaccine codes and allergy categories.",
        publisher=publisher,
        themes=("HEAL",),
        keywords=("immunization", "allergy", "synthea"),
        temporal_start="1960-01-01",
        temporal_end="2024-12-31",
        access_rights="restricted",
        duo_codes=("HMB",),
        legal_basis=legal_basis,
        contact_point="data-office@knuh.example",
        distribution_formats=("application/fhir+ndjson",),
    )
    return RegisterDataset(
        institution_id="knuh", dataset_id="ds-knuh-imm-0001", description=description, files=tuple(files), subjects=subjects
    )


def _register(sample_data, command, history=None):
    inspection = inspect_dataset(sample_data, command.files, FileLimits())
    return register_version(command, history, inspection, Region.DAEGU, NOW)


def test_ten_files_two_bad_keeps_eight(sample_data):
    version = _register(sample_data, _command(TEN_FILES))

    rejected = {item.path: item.reason.value for item in version.inspection.rejected}
    assert rejected == {
        "synthea/bulk-export-10-patients/log.ndjson": "not_fhir",
        "fhir/invalid-and-corner-cases/observation_invalid_multiple_choicex_provided.json": "invalid_fhir_resource",
    }
    assert len(version.inspection.accepted) == 8
    assert version.figures.record_count == 161 + 11 + 16 + 44 + 1 + 1 + 1 + 1


def test_clean_pseudonymized_dataset_published(sample_data):
    version = _register(sample_data, _command(CLEAN_FHIR))
    events = version.events()

    assert [type(event) for event in events] == [DatasetRegistered, DatasetSubjectsAdded, DatasetPublished]
    assert events[0].figures.resource_counts == {"AllergyIntolerance": 11, "Immunization": 161}
    assert events[0].figures.subject_count == 13
    # Immunizations and allergies carry no condition or observation codes.
    assert events[0].completeness_score == 90
    assert version.completeness.missing == ("coded_content",)
    assert events[1].subjects == tuple(sorted(SUBJECTS))
    assert events[2].record_count == 172
    assert version.record() == VersionRecord(1, True, NOW)


def test_names_block_pseudonymized_dataset(sample_data):
    files = [*CLEAN_FHIR, "synthea/bulk-export-10-patients/Patient.000.ndjson"]

    events = _register(sample_data, _command(files)).events()

    assert [type(event) for event in events] == [DatasetRegistered, ComplianceViolationFlagged]
    flag = events[1]
    assert flag.rule == "direct_identifier_in_pseudonymized_dataset"
    assert flag.severity == "high"
    assert flag.flag_id == flag_id("ds-knuh-imm-0001", 1, "direct_identifier_in_pseudonymized_dataset")
    locations = {(item.file, item.location, item.kind) for item in flag.findings}
    assert (
        "synthea/bulk-export-10-patients/Patient.000.ndjson",
        "line 1: Patient.name[0] (and 19 more like it)",
        "name",
    ) in locations


def test_dicom_fileset_blocked_with_fields_named(sample_data):
    command = _command(["dicom/fileset/DICOMDIR"])

    events = _register(sample_data, command).events()

    flag = events[1]
    files = {item.file for item in flag.findings}
    assert "dicom/fileset/DICOMDIR" in files
    assert "dicom/fileset/98892003/MR700/4678" in files
    assert {item.kind for item in flag.findings} == {"name", "patient_id"}


def test_anonymous_with_subject_list_blocked(sample_data):
    events = _register(sample_data, _command(CLEAN_FHIR, legal_basis="anonymous")).events()

    rules = [event.rule for event in events if isinstance(event, ComplianceViolationFlagged)]
    assert rules == ["reidentification_link_in_anonymous_dataset"]
    assert not any(isinstance(event, DatasetSubjectsAdded) for event in events)


def test_anonymous_without_links_published(sample_data):
    events = _register(sample_data, _command(CLEAN_FHIR, legal_basis="anonymous", subjects=())).events()

    assert [type(event) for event in events] == [DatasetRegistered, DatasetPublished]


def test_anonymous_full_birth_dates_blocked(sample_data):
    files = ["fhir/hl7-r4-examples/patient/Patient-pat4.json"]

    events = _register(sample_data, _command(files, legal_basis="anonymous", subjects=())).events()

    rules = {event.rule for event in events if isinstance(event, ComplianceViolationFlagged)}
    assert rules == {"direct_identifier_in_anonymous_dataset", "quasi_identifier_in_anonymous_dataset"}


def test_consent_dataset_with_identifiers_blocked(sample_data):
    files = ["dicom/charset/chrKoreanMulti.dcm"]

    events = _register(sample_data, _command(files, legal_basis="consent")).events()

    assert events[1].rule == "direct_identifier_in_consent_dataset"


def test_second_registration_is_version_two(sample_data):
    history = DatasetHistory("ds-knuh-imm-0001", "knuh").with_version(VersionRecord(1, True, NOW))

    version = _register(sample_data, _command(CLEAN_FHIR), history)

    assert version.version == 2
    assert all(event.version == 2 for event in version.events())


def test_all_files_bad_rejects_command(sample_data):
    files = ["synthea/bulk-export-10-patients/log.ndjson", "missing/file.json"]

    with pytest.raises(RegistrationRejected) as raised:
        _register(sample_data, _command(files))

    assert "log.ndjson" in str(raised.value)
    assert "missing/file.json" in str(raised.value)


def test_publisher_must_be_sender(sample_data):
    with pytest.raises(RegistrationRejected, match="publisher is 'yumc'"):
        _register(sample_data, _command(CLEAN_FHIR, publisher="yumc"))
