"""Events the review service publishes on medgov.review.v1, keyed by application id."""

from datetime import date
from typing import ClassVar, Literal

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.types import (
    Board,
    DataEnvironment,
    DuoCode,
    EntityId,
    InstitutionId,
    Region,
    UtcDatetime,
    Vote,
    field,
)


class _ApplicationEvent(EventPayload):
    key_field: ClassVar[str] = "application_id"

    application_id: EntityId = field("Application id.", "app-2026-0001")


class ApplicationSubmitted(_ApplicationEvent):
    """Emitted when an applicant's submission passes screening and the joint review can start."""

    event_type: ClassVar[str] = "ApplicationSubmitted"

    applicant_institution: InstitutionId = field("Institution of the applicant.", "vendor-medvision")
    principal_investigator: str = field("Principal investigator (researcher, not a patient).", "Dr. Kim", min_length=1)
    title: str = field("Project title.", "Chest CT nodule detection", min_length=1)
    purpose_text: str = field("Purpose of the data use in words.", "Train a nodule detector", min_length=1)
    purpose_codes: tuple[DuoCode, ...] = field("Purpose coded with GA4GH DUO terms.", ["HMB"], min_length=1)
    dataset_ids: tuple[EntityId, ...] = field("Requested datasets.", ["ds-knuh-ct-0001"], min_length=1)
    requested_start: date = field("First day of the requested period.", "2027-01-01")
    requested_end: date = field("Last day of the requested period.", "2027-12-31")
    data_environment: DataEnvironment = field("Where the data will be used.", "secure_enclave")
    irb_document_ref: str = field("Reference to the IRB documents.", "irb://knuh/2026-113", min_length=1)
    region: Region = field("Home region of the application.", "daegu")
    regions_involved: tuple[Region, ...] = field("Regions whose datasets are requested.", ["daegu"])
    submitted_at: UtcDatetime = field("When the complete submission was received.", "2026-12-04T09:00:00Z")


class ReviewStarted(_ApplicationEvent):
    """Emitted when the IRB and DRB start their parallel review and the decision clock starts."""

    event_type: ClassVar[str] = "ReviewStarted"

    boards: tuple[Board, ...] = field("Boards reviewing in parallel.", ["IRB", "DRB"])
    started_at: UtcDatetime = field("When the clock started.", "2026-12-04T09:00:00Z")
    due_at: UtcDatetime = field("Decision deadline under the configured calendar.", "2027-01-05T09:00:00Z")
    window_days: int = field("Length of the decision window in days.", 20, gt=0)
    calendar: Literal["business", "calendar"] = field("How days are counted.", "business")


class _BoardDecision(_ApplicationEvent):
    decision_id: EntityId = field("Id of the board decision.", "dec-irb-0001")
    board: Board = field("Board that decided.", "IRB")
    decision: Vote = field("Board outcome once quorum is reached.", "approve")
    votes_approve: int = field("Approving votes.", 3, ge=0)
    votes_reject: int = field("Rejecting votes.", 0, ge=0)
    votes_revise: int = field("Votes asking for revision.", 0, ge=0)
    quorum: int = field("Votes required for a decision.", 3, gt=0)
    conditions: tuple[str, ...] = field("Conditions attached by the board.", ["No re-identification attempts"])
    reasons: tuple[str, ...] = field("Reasons given, mostly for reject or revise.", [])
    region: Region = field("Region of the deciding board.", "daegu")
    decided_at: UtcDatetime = field("When quorum was reached.", "2026-12-10T09:00:00Z")


class IrbDecisionRecorded(_BoardDecision):
    """Emitted when the IRB reaches quorum on an application."""

    event_type: ClassVar[str] = "IrbDecisionRecorded"


class DrbDecisionRecorded(_BoardDecision):
    """Emitted when the DRB reaches quorum on an application."""

    event_type: ClassVar[str] = "DrbDecisionRecorded"


class RevisionRequested(_ApplicationEvent):
    """Emitted when screening finds missing items or a board requests revision, and the clock stops."""

    event_type: ClassVar[str] = "RevisionRequested"

    requested_by: Literal["screening", "IRB", "DRB"] = field("Who asked for the revision.", "screening")
    missing_items: tuple[str, ...] = field("Every missing or incomplete item.", ["irb_document_ref"])
    comments: tuple[str, ...] = field("Reviewer comments.", [])
    requested_at: UtcDatetime = field("When the clock stopped.", "2026-12-05T09:00:00Z")
    region: Region | None = field("Region of the board that asked; absent for screening.", "daegu", default=None)


class ApplicationApproved(_ApplicationEvent):
    """Emitted when both boards (of every region involved) approve."""

    event_type: ClassVar[str] = "ApplicationApproved"

    applicant_institution: InstitutionId = field("Institution of the applicant.", "vendor-medvision")
    decision_ids: tuple[EntityId, ...] = field("Board decisions behind the approval.", ["dec-irb-0001", "dec-drb-0001"])
    conditions: tuple[str, ...] = field("Conditions of both boards, merged.", ["Federated training only"])
    decided_at: UtcDatetime = field("When the last board approved.", "2026-12-18T09:00:00Z")
    days_used: float = field("Days of the window used, in the configured calendar.", 10.0, ge=0)


class ApplicationRejected(_ApplicationEvent):
    """Emitted when either board rejects."""

    event_type: ClassVar[str] = "ApplicationRejected"

    applicant_institution: InstitutionId = field("Institution of the applicant.", "vendor-medvision")
    decision_ids: tuple[EntityId, ...] = field("Board decisions behind the rejection.", ["dec-drb-0002"])
    reasons: tuple[str, ...] = field("Reasons given by the rejecting board.", ["Purpose not covered by consent"])
    decided_at: UtcDatetime = field("When the rejecting board decided.", "2026-12-18T09:00:00Z")
    days_used: float = field("Days of the window used.", 8.0, ge=0)


class ReviewSlaWarning(_ApplicationEvent):
    """Emitted once each when 50, 75 and 90 percent of the decision window are used."""

    event_type: ClassVar[str] = "ReviewSlaWarning"

    threshold_percent: Literal[50, 75, 90] = field("Share of the window used.", 75)
    days_used: float = field("Days used so far.", 15.0, ge=0)
    days_left: float = field("Days left before the deadline.", 5.0)
    due_at: UtcDatetime = field("Current deadline.", "2027-01-05T09:00:00Z")


class ReviewSlaBreached(_ApplicationEvent):
    """Emitted exactly once when the deadline passes without a decision; escalates to the council."""

    event_type: ClassVar[str] = "ReviewSlaBreached"

    due_at: UtcDatetime = field("Deadline that passed.", "2027-01-05T09:00:00Z")
    region: Region = field("Region of the applicant, whose council handles the escalation.", "daegu")
    council_chair_region: Region = field("Region chairing the governance council at the deadline.", "daejeon")
    breached_at: UtcDatetime = field("When the breach was detected.", "2027-01-05T09:00:01Z")


class _GrantEvent(_ApplicationEvent):
    grant_id: EntityId = field("Access grant id.", "grant-0001")


class AccessGranted(_GrantEvent):
    """Emitted per requested dataset when an application is approved."""

    event_type: ClassVar[str] = "AccessGranted"

    grantee_institution: InstitutionId = field("Institution receiving access.", "vendor-medvision")
    dataset_id: EntityId = field("Dataset this grant covers.", "ds-knuh-ct-0001")
    dataset_ids: tuple[EntityId, ...] = field("All datasets of the approved application.", ["ds-knuh-ct-0001"])
    holder_institution: InstitutionId = field("Institution holding the dataset.", "knuh")
    data_environment: DataEnvironment = field("Where the data may be used.", "federated_learning")
    purpose_codes: tuple[DuoCode, ...] = field("Approved purpose (DUO).", ["HMB"])
    conditions: tuple[str, ...] = field("Conditions of the approval.", ["Federated training only"])
    starts_at: UtcDatetime = field("Start of access.", "2027-01-01T00:00:00Z")
    expires_at: UtcDatetime = field("End of access.", "2027-12-31T23:59:59Z")
    region: Region = field("Region that granted access.", "daegu")


class AccessRevoked(_GrantEvent):
    """Emitted when the DRB revokes a grant before it expires."""

    event_type: ClassVar[str] = "AccessRevoked"

    reason: str = field("Why the DRB revoked the grant.", "Breach of conditions", min_length=1)
    revoked_at: UtcDatetime = field("When the revocation took effect.", "2027-03-01T00:00:00Z")


class AccessExpired(_GrantEvent):
    """Emitted when a grant reaches its expiry."""

    event_type: ClassVar[str] = "AccessExpired"

    expired_at: UtcDatetime = field("Expiry that passed.", "2027-12-31T23:59:59Z")


EVENTS: tuple[type[EventPayload], ...] = (
    ApplicationSubmitted,
    ReviewStarted,
    IrbDecisionRecorded,
    DrbDecisionRecorded,
    RevisionRequested,
    ApplicationApproved,
    ApplicationRejected,
    ReviewSlaWarning,
    ReviewSlaBreached,
    AccessGranted,
    AccessRevoked,
    AccessExpired,
)
