"""Commands hospitals publish on their own inbound topic medgov.inbound.<institution_id>.v1.

Each command names the institution that sends it; a service rejects (dead-letters)
a command whose `institution_id` differs from the institution in the topic name.
"""

from datetime import date
from typing import Any, ClassVar

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.catalog import DatasetDescription
from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.pseudonym import Pseudonym
from medgov_shared.contracts.types import (
    DataEnvironment,
    DuoCode,
    EntityId,
    InstitutionId,
    UtcDatetime,
    field,
)

_SUBJECT_EXAMPLE = "daegu.k1.3f1c8a7e0d2b4c6f8a1e3d5b7c9f0a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f2a"


class _InboundCommand(EventPayload):
    institution_id: InstitutionId = field("Sending institution; must match the topic.", "knuh")
    sequence: int | None = field("Per-source sequence number, for loss checks.", 1, default=None, ge=0)


class RegisterDataset(_InboundCommand):
    """Sent by a hospital to register a dataset whose files it placed in its staging area."""

    event_type: ClassVar[str] = "RegisterDataset"
    key_field: ClassVar[str] = "dataset_id"

    dataset_id: EntityId = field("Dataset id chosen by the hospital.", "ds-knuh-ct-0001")
    description: DatasetDescription = field("HealthDCAT-AP metadata.", None)
    files: tuple[str, ...] = field(
        "File paths relative to the institution's staging area.", ["dicom/fileset/DICOMDIR"], min_length=1
    )
    subjects: tuple[Pseudonym, ...] = field("Pseudonyms of the subjects in the dataset.", [_SUBJECT_EXAMPLE])


class RecordConsent(_InboundCommand):
    """Sent by a hospital to record a patient's FHIR R4 Consent (with the patient reference removed)."""

    event_type: ClassVar[str] = "RecordConsent"
    key_field: ClassVar[str] = "subject"

    subject: Pseudonym = field("Pseudonym of the patient.", _SUBJECT_EXAMPLE)
    consent_id: EntityId = field("Hospital's consent id.", "cns-knuh-0001")
    fhir_consent: dict[str, Any] = field("FHIR R4 Consent resource as JSON.", {"resourceType": "Consent"})


class RevokeConsent(_InboundCommand):
    """Sent by a hospital when a patient revokes consent at the hospital."""

    event_type: ClassVar[str] = "RevokeConsent"
    key_field: ClassVar[str] = "subject"

    subject: Pseudonym = field("Pseudonym of the patient.", _SUBJECT_EXAMPLE)
    consent_id: EntityId = field("Consent being revoked.", "cns-knuh-0001")
    scope: ConsentScope | None = field("Part revoked; absent means the whole consent.", None, default=None)
    effective_at: UtcDatetime = field("When the revocation takes effect.", "2026-12-05T10:00:00Z")


class SubmitApplication(_InboundCommand):
    """Sent on behalf of an applicant to submit a data-access application."""

    event_type: ClassVar[str] = "SubmitApplication"
    key_field: ClassVar[str] = "application_id"

    application_id: EntityId = field("Application id chosen by the applicant.", "app-2026-0001")
    idempotency_key: str = field("Key that makes a repeated submission return the first result.", "sub-7f1c")
    applicant_institution: InstitutionId | None = field("Institution of the applicant.", "vendor-medvision", default=None)
    principal_investigator: str | None = field("Principal investigator.", "Dr. Kim", default=None)
    title: str | None = field("Project title.", "Chest CT nodule detection", default=None)
    purpose_text: str | None = field("Purpose in words.", "Train a nodule detector", default=None)
    purpose_codes: tuple[DuoCode, ...] = field("Purpose as DUO codes.", ["HMB"], default=())
    dataset_ids: tuple[EntityId, ...] = field("Requested datasets.", ["ds-knuh-ct-0001"], default=())
    requested_start: date | None = field("First day requested.", "2027-01-01", default=None)
    requested_end: date | None = field("Last day requested.", "2027-12-31", default=None)
    data_environment: DataEnvironment | None = field("Data environment.", "secure_enclave", default=None)
    irb_document_ref: str | None = field("IRB documents reference.", "irb://knuh/2026-113", default=None)


EVENTS: tuple[type[EventPayload], ...] = (RegisterDataset, RecordConsent, RevokeConsent, SubmitApplication)
