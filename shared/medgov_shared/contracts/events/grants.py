"""Events the grants service publishes on medgov.grants.v1, keyed by institution id (fund id for the fund)."""

from typing import ClassVar, Literal

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.types import EntityId, InstitutionId, Region, UtcDatetime, field

Pool = Literal["cataloging", "anonymization_tools", "milestones"]


class FundAllocated(EventPayload):
    """Emitted once when the fund is split into its pools."""

    event_type: ClassVar[str] = "FundAllocated"
    key_field: ClassVar[str] = "fund_id"

    fund_id: EntityId = field("Fund id.", "medgov-fund-2026")
    total_krw: int = field("Fund size in KRW.", 12_000_000_000, gt=0)
    pools_krw: dict[Pool, int] = field(
        "Amount per pool in KRW.",
        {"cataloging": 4_800_000_000, "anonymization_tools": 3_600_000_000, "milestones": 3_600_000_000},
    )
    allocated_at: UtcDatetime = field("When the fund was allocated.", "2026-12-04T00:00:00Z")


class _InstitutionEvent(EventPayload):
    key_field: ClassVar[str] = "institution_id"

    institution_id: InstitutionId = field("Institution concerned.", "knuh")


class SubsidyAwarded(_InstitutionEvent):
    """Emitted when a published dataset earns its holder a cataloging subsidy."""

    event_type: ClassVar[str] = "SubsidyAwarded"

    award_id: EntityId = field("Award id.", "sub-ds-knuh-ct-0001-v1")
    dataset_id: EntityId = field("Dataset that earned it.", "ds-knuh-ct-0001")
    amount_krw: int = field("Amount in KRW; negative for a clawback.", 25_000_000)
    completeness_score: int = field("Completeness score used.", 85, ge=0, le=100)
    record_count: int = field("Record count used.", 413, ge=0)
    awarded_at: UtcDatetime = field("When it was awarded.", "2026-12-04T09:06:00Z")


class ToolGrantAwarded(_InstitutionEvent):
    """Emitted when the fund administrator awards an anonymization-tool grant to a vendor."""

    event_type: ClassVar[str] = "ToolGrantAwarded"

    award_id: EntityId = field("Award id.", "tool-0001")
    amount_krw: int = field("Total award in KRW.", 300_000_000, gt=0)
    tranches_krw: tuple[int, ...] = field("Tranches paid on delivery milestones.", [100_000_000, 200_000_000])
    awarded_by: str = field("Fund administrator who awarded it.", "admin-01")
    awarded_at: UtcDatetime = field("When it was awarded.", "2026-12-04T09:00:00Z")


class MilestoneReached(_InstitutionEvent):
    """Emitted when an institution's count of approved data transactions reaches a milestone."""

    event_type: ClassVar[str] = "MilestoneReached"

    milestone: int = field("Milestone count reached.", 10, gt=0)
    transactions_counted: int = field("Counted transactions so far.", 10, ge=0)
    reached_at: UtcDatetime = field("When it was reached.", "2026-12-20T09:00:00Z")


class GrantDisbursed(_InstitutionEvent):
    """Emitted when money leaves a pool for an institution (a ledger posting)."""

    event_type: ClassVar[str] = "GrantDisbursed"

    disbursement_id: EntityId = field("Disbursement id.", "dis-0001")
    pool: Pool = field("Pool debited.", "milestones")
    amount_krw: int = field("Amount in KRW.", 50_000_000, gt=0)
    reason: Literal["subsidy", "tool_tranche", "milestone"] = field("What was paid.", "milestone")
    reference_id: EntityId = field("Award or milestone paid.", "ms-knuh-10")
    region: Region = field("Region of the institution.", "daegu")
    disbursed_at: UtcDatetime = field("When the posting was made.", "2026-12-20T09:00:01Z")


class PoolExhausted(_InstitutionEvent):
    """Emitted when a payout would overspend its pool; the payout stays pending."""

    event_type: ClassVar[str] = "PoolExhausted"

    pool: Pool = field("Pool that lacks funds.", "cataloging")
    requested_krw: int = field("Amount requested.", 50_000_000, gt=0)
    available_krw: int = field("Amount left in the pool.", 10_000_000, ge=0)
    reference_id: EntityId = field("Pending payout.", "sub-ds-knuh-ct-0001-v1")
    detected_at: UtcDatetime = field("When it was detected.", "2026-12-20T09:00:00Z")


EVENTS: tuple[type[EventPayload], ...] = (
    FundAllocated,
    SubsidyAwarded,
    ToolGrantAwarded,
    MilestoneReached,
    GrantDisbursed,
    PoolExhausted,
)
