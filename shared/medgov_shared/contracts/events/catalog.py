"""Events the catalog service publishes on medgov.catalog.v1, keyed by dataset id."""

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.pseudonym import Pseudonym
from medgov_shared.contracts.types import (
    DuoCode,
    EntityId,
    InstitutionId,
    LegalBasis,
    Region,
    Severity,
    UtcDatetime,
    field,
)

# Keeps one DatasetSubjectsAdded message far below Kafka's default 1 MB limit:
# a pseudonym is 75 characters, so 5,000 of them are about 400 KB of JSON.
MAX_SUBJECTS_PER_CHUNK = 5000


class _DatasetEvent(EventPayload):
    key_field: ClassVar[str] = "dataset_id"

    dataset_id: EntityId = field("Dataset id.", "ds-knuh-ct-0001")


class DatasetDescription(BaseModel):
    """Dataset metadata modelled on HealthDCAT-AP."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    title: str = field("Title (dct:title).", "흉부 CT 코호트", min_length=1)
    description: str = field("Description (dct:description).", "Chest CT studies 2019-2024")
    publisher: InstitutionId = field("Publishing institution (dct:publisher).", "knuh")
    themes: tuple[str, ...] = field("Themes (dcat:theme).", ["HEAL"])
    keywords: tuple[str, ...] = field("Keywords (dcat:keyword).", ["CT", "lung"])
    temporal_start: str | None = field("Start of temporal coverage, ISO date.", "2019-01-01", default=None)
    temporal_end: str | None = field("End of temporal coverage, ISO date.", "2024-12-31", default=None)
    access_rights: Literal["public", "restricted", "non_public"] = field("Access rights (dct:accessRights).", "restricted")
    duo_codes: tuple[DuoCode, ...] = field("Data-use terms as GA4GH DUO codes.", ["HMB", "NCU"])
    legal_basis: LegalBasis = field("Legal basis under PIPA.", "pseudonymized_research")
    contact_point: str = field("Contact point (dcat:contactPoint), an office not a patient.", "data-office@knuh.example")
    distribution_formats: tuple[str, ...] = field("Distribution formats (dcat:mediaType).", ["application/dicom"])


class DatasetFigures(BaseModel):
    """Figures the catalog extracted from the dataset's files."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    resource_counts: dict[str, int] = field("FHIR resources per type.", {"Patient": 13, "Observation": 400})
    subject_count: int = field("Distinct data subjects.", 13, ge=0)
    record_count: int = field("Records (FHIR resources plus DICOM instances).", 413, ge=0)
    condition_codes: tuple[str, ...] = field("Coded conditions (system|code).", ["http://snomed.info/sct|44054006"])
    observation_codes: tuple[str, ...] = field("Coded observations (system|code).", ["http://loinc.org|8302-2"])
    modalities: tuple[str, ...] = field("DICOM modalities.", ["CT", "MR"])
    body_parts: tuple[str, ...] = field("DICOM body parts examined.", ["CHEST"])
    study_count: int = field("DICOM studies.", 2, ge=0)
    series_count: int = field("DICOM series.", 4, ge=0)
    instance_count: int = field("DICOM instances.", 12, ge=0)
    character_sets: tuple[str, ...] = field("DICOM character sets.", ["ISO 2022 IR 149"])
    date_start: str | None = field("Earliest clinical date found, ISO date.", "2019-03-01", default=None)
    date_end: str | None = field("Latest clinical date found, ISO date.", "2024-11-30", default=None)


class DatasetRegistered(_DatasetEvent):
    """Emitted when a hospital registers a dataset (or a new version of it) and its files were read."""

    event_type: ClassVar[str] = "DatasetRegistered"

    version: int = field("Dataset version, starting at 1.", 1, ge=1)
    institution_id: InstitutionId = field("Holding institution.", "knuh")
    region: Region = field("Region of the holding institution.", "daegu")
    description: DatasetDescription = field("HealthDCAT-AP metadata.", None)
    figures: DatasetFigures = field("Extracted figures.", None)
    completeness_score: int = field("Metadata completeness, 0-100, computed deterministically.", 85, ge=0, le=100)
    registered_at: UtcDatetime = field("When the registration was accepted.", "2026-12-04T09:00:00Z")


class DatasetSubjectsAdded(_DatasetEvent):
    """Emitted in chunks after registration, listing the pseudonymized subjects a dataset contains."""

    event_type: ClassVar[str] = "DatasetSubjectsAdded"

    version: int = field("Dataset version the subjects belong to.", 1, ge=1)
    institution_id: InstitutionId = field("Holding institution.", "knuh")
    chunk_index: int = field("0-based index of this chunk.", 0, ge=0)
    chunk_count: int = field("Number of chunks for this version.", 1, ge=1)
    subjects: tuple[Pseudonym, ...] = field(
        "Subject pseudonyms in this chunk.",
        ["daegu.k1.3f1c8a7e0d2b4c6f8a1e3d5b7c9f0a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f2a"],
        max_length=MAX_SUBJECTS_PER_CHUNK,
    )


class DatasetPublished(_DatasetEvent):
    """Emitted when a registered dataset passes the PIPA scan and becomes searchable."""

    event_type: ClassVar[str] = "DatasetPublished"

    version: int = field("Published version.", 1, ge=1)
    institution_id: InstitutionId = field("Holding institution.", "knuh")
    region: Region = field("Region of the holding institution.", "daegu")
    title: str = field("Dataset title.", "흉부 CT 코호트")
    duo_codes: tuple[DuoCode, ...] = field("Data-use terms.", ["HMB"])
    legal_basis: LegalBasis = field("Legal basis under PIPA.", "pseudonymized_research")
    completeness_score: int = field("Metadata completeness, 0-100.", 85, ge=0, le=100)
    record_count: int = field("Records in this version.", 413, ge=0)
    subject_count: int = field("Subjects in this version.", 13, ge=0)
    published_at: UtcDatetime = field("When the dataset was published.", "2026-12-04T09:05:00Z")


class DatasetWithdrawn(_DatasetEvent):
    """Emitted when the holder withdraws a dataset; it stays in history with the reason."""

    event_type: ClassVar[str] = "DatasetWithdrawn"

    institution_id: InstitutionId = field("Holding institution.", "knuh")
    reason: str = field("Why the dataset was withdrawn.", "Source system retired", min_length=1)
    withdrawn_at: UtcDatetime = field("When it was withdrawn.", "2027-02-01T00:00:00Z")


class Finding(BaseModel):
    """One direct identifier found by the PIPA scan."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    file: str = field("File (relative name) where it was found.", "Patient.000.ndjson")
    location: str = field("Resource or element path inside the file.", "Patient[3].name")
    kind: str = field("Kind of identifier.", "name")


class ComplianceViolationFlagged(_DatasetEvent):
    """Emitted when a PIPA rule is broken, e.g. direct identifiers in a pseudonymized dataset."""

    event_type: ClassVar[str] = "ComplianceViolationFlagged"

    flag_id: EntityId = field("Flag id.", "flag-0001")
    institution_id: InstitutionId = field("Institution the flag is raised against.", "knuh")
    region: Region = field("Region of that institution.", "daegu")
    rule: str = field("Rule that was broken.", "direct_identifier_in_pseudonymized_dataset")
    severity: Severity = field("Severity; high suspends the institution's payouts.", "high")
    findings: tuple[Finding, ...] = field("Fields and files involved.", [])
    flagged_at: UtcDatetime = field("When the violation was found.", "2026-12-04T09:01:00Z")


class ComplianceFlagCleared(_DatasetEvent):
    """Emitted when the DRB clears a compliance flag after the cause was fixed."""

    event_type: ClassVar[str] = "ComplianceFlagCleared"

    flag_id: EntityId = field("Flag that is cleared.", "flag-0001")
    institution_id: InstitutionId = field("Institution the flag was raised against.", "knuh")
    cleared_at: UtcDatetime = field("When it was cleared.", "2026-12-20T09:00:00Z")
    note: str = field("How the cause was fixed.", "Names removed and dataset re-registered")


EVENTS: tuple[type[EventPayload], ...] = (
    DatasetRegistered,
    DatasetSubjectsAdded,
    DatasetPublished,
    DatasetWithdrawn,
    ComplianceViolationFlagged,
    ComplianceFlagCleared,
)
