"""Events the consent service publishes on medgov.consent.v1, keyed by subject pseudonym."""

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.pseudonym import Pseudonym
from medgov_shared.contracts.types import DuoCode, EntityId, InstitutionId, Region, UtcDatetime, field

_SUBJECT_EXAMPLE = "daegu.k1.3f1c8a7e0d2b4c6f8a1e3d5b7c9f0a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f2a"


class ConsentScope(BaseModel):
    """Coverage of a consent or revocation; an empty list means 'all' for that dimension."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: Literal["all_research", "purposes", "datasets", "institutions"] = field("Scope kind.", "all_research", default="all_research")
    purpose_codes: tuple[DuoCode, ...] = field("Purposes covered (DUO).", [], default=())
    dataset_ids: tuple[EntityId, ...] = field("Datasets covered.", [], default=())
    institution_ids: tuple[InstitutionId, ...] = field("Hospitals covered.", [], default=())


class _SubjectEvent(EventPayload):
    key_field: ClassVar[str] = "subject"

    subject: Pseudonym = field("Pseudonym of the data subject.", _SUBJECT_EXAMPLE)


class ConsentGranted(_SubjectEvent):
    """Emitted when a subject's consent is recorded, from a FHIR Consent or the patient's dashboard."""

    event_type: ClassVar[str] = "ConsentGranted"

    consent_id: EntityId = field("Consent record id.", "cns-0001")
    institution_id: InstitutionId = field("Hospital that recorded the consent.", "knuh")
    region: Region = field("Region of that hospital.", "daegu")
    scope: ConsentScope = field("What the consent covers.", None)
    period_start: UtcDatetime | None = field("Start of validity.", "2026-01-01T00:00:00Z", default=None)
    period_end: UtcDatetime | None = field("End of validity.", "2050-12-31T00:00:00Z", default=None)
    channel: Literal["fhir", "dashboard"] = field("Where the consent came from.", "fhir")
    granted_at: UtcDatetime = field("When it took effect.", "2026-12-04T09:00:00Z")


class ConsentRevoked(_SubjectEvent):
    """Emitted when a subject revokes consent; takes effect at `effective_at`."""

    event_type: ClassVar[str] = "ConsentRevoked"

    consent_id: EntityId = field("Consent record being revoked.", "cns-0001")
    institution_id: InstitutionId = field("Hospital where the consent was recorded.", "knuh")
    region: Region = field("Region of that hospital.", "daegu")
    scope: ConsentScope = field("What the revocation covers.", None)
    channel: Literal["fhir", "dashboard"] = field("Where the revocation came from.", "dashboard")
    effective_at: UtcDatetime = field("When the revocation takes effect.", "2026-12-05T10:00:00Z")


class _ExclusionEvent(_SubjectEvent):
    exclusion_id: EntityId = field("Exclusion id, one per (grant, dataset, subject).", "exc-0001")
    grant_id: EntityId = field("Affected access grant.", "grant-0001")
    dataset_id: EntityId = field("Dataset holding the subject's records.", "ds-knuh-ct-0001")


class ExclusionRequested(_ExclusionEvent):
    """Emitted per affected (grant, dataset, subject) when a revocation reaches an active grant."""

    event_type: ClassVar[str] = "ExclusionRequested"

    consent_id: EntityId = field("Revoked consent.", "cns-0001")
    grantee_institution: InstitutionId = field("Grant holder that must exclude the subject.", "vendor-medvision")
    holder_institution: InstitutionId = field("Data holder that must exclude the subject.", "knuh")
    requested_at: UtcDatetime = field("When the exclusion was requested.", "2026-12-05T10:00:00Z")
    acknowledge_by: UtcDatetime = field("Deadline for both acknowledgements.", "2026-12-08T10:00:00Z")


class ExclusionAcknowledged(_ExclusionEvent):
    """Emitted when the grantee or the data holder confirms the subject was excluded."""

    event_type: ClassVar[str] = "ExclusionAcknowledged"

    party: Literal["grantee", "holder"] = field("Which party acknowledged.", "grantee")
    party_institution: InstitutionId = field("Acknowledging institution.", "vendor-medvision")
    acknowledged_at: UtcDatetime = field("When it acknowledged.", "2026-12-06T10:00:00Z")
    complete: bool = field("True once both parties have acknowledged.", False)


class ExclusionOverdue(_ExclusionEvent):
    """Emitted once when an acknowledgement is missing at the deadline; it is a compliance flag."""

    event_type: ClassVar[str] = "ExclusionOverdue"

    missing_parties: tuple[Literal["grantee", "holder"], ...] = field("Parties that did not acknowledge.", ["grantee"])
    institution_ids: tuple[InstitutionId, ...] = field("Institutions that did not acknowledge.", ["vendor-medvision"])
    acknowledge_by: UtcDatetime = field("Deadline that passed.", "2026-12-08T10:00:00Z")
    detected_at: UtcDatetime = field("When the overdue state was detected.", "2026-12-08T10:00:05Z")


EVENTS: tuple[type[EventPayload], ...] = (
    ConsentGranted,
    ConsentRevoked,
    ExclusionRequested,
    ExclusionAcknowledged,
    ExclusionOverdue,
)
