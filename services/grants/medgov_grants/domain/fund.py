"""The fund: applies consumed events and administrator commands to the ledger and the grant books.

Each method returns the outcomes it caused, in order: awards, milestones,
payouts paid, held or waiting, clawbacks and suspension changes. The service
turns them into outgoing events. Every timestamp a method records is the
`at` it is given (the time of the triggering event or command), never the
wall clock, so replaying the same events in the same order rebuilds the same
ledger to the won.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.catalog import (
    ComplianceFlagCleared,
    ComplianceViolationFlagged,
    DatasetPublished,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.consent import ExclusionAcknowledged, ExclusionOverdue
from medgov_shared.contracts.events.grants import FundAllocated, Pool
from medgov_shared.contracts.events.review import AccessGranted
from medgov_shared.contracts.institutions import Institution, get_institution

from medgov_grants.domain.errors import IneligibleInstitution, InvalidState, NotFound, UnknownInstitution
from medgov_grants.domain.ledger import (
    Account,
    Disbursed,
    Ledger,
    PayoutCancelled,
    PayoutHeld,
    PayoutOutcome,
    PayoutRequest,
    PayoutWaiting,
    Posting,
    allocation_posting,
    clawback_posting,
)
from medgov_grants.domain.milestones import CountResult, DataTransaction, MilestoneCrossed, TransactionCounter
from medgov_grants.domain.policy import FundSplit, GrantsPolicy
from medgov_grants.domain.subsidies import HospitalSubsidies, SubsidyChange
from medgov_grants.domain.suspension import (
    FlagRef,
    SuspensionChange,
    SuspensionRegistry,
    flag_cleared_by,
    flags_raised_by_overdue_exclusion,
    flags_raised_by_violation,
)
from medgov_grants.domain.tool_grants import (
    FUND_ADMIN_ROLE,
    Actor,
    ToolGrantApplication,
    ToolGrantAward,
    TrancheTerms,
    award_application,
    confirm_delivery,
    reject_application,
    submit_application,
)

InstitutionDirectory = Callable[[str], Institution]


@dataclass(frozen=True)
class Allocation:
    """A fund split into its pools; published as FundAllocated."""

    fund_id: str
    total_krw: int
    pools_krw: dict[Pool, int]
    allocated_at: datetime
    posting: Posting


@dataclass(frozen=True)
class Clawback:
    """Money of a reversed subsidy returned to the cataloging pool (only what had been paid)."""

    change: SubsidyChange
    posting: Posting


@dataclass(frozen=True)
class TransactionNotCounted:
    """An AccessGranted that did not count towards a milestone, with the reason."""

    application_id: str
    holder_institution: str
    result: CountResult


Outcome = (
    Allocation
    | SubsidyChange
    | Clawback
    | ToolGrantAward
    | MilestoneCrossed
    | TransactionNotCounted
    | SuspensionChange
    | Disbursed
    | PayoutWaiting
    | PayoutHeld
    | PayoutCancelled
)


@dataclass
class Fund:
    """All grants state held in memory: the reference model of the service and the engine of replays."""

    policy: GrantsPolicy
    directory: InstitutionDirectory = get_institution
    ledger: Ledger = field(default_factory=Ledger)
    suspensions: SuspensionRegistry = field(default_factory=SuspensionRegistry)
    subsidies: dict[str, HospitalSubsidies] = field(default_factory=dict)
    counters: dict[str, TransactionCounter] = field(default_factory=dict)
    applications: dict[str, ToolGrantApplication] = field(default_factory=dict)
    awards: dict[str, ToolGrantAward] = field(default_factory=dict)
    allocations: dict[str, Allocation] = field(default_factory=dict)

    # Fund

    def allocate(self, split: FundSplit | None = None, *, at: datetime, cause_id: str | None = None) -> list[Outcome]:
        """Split a fund into pools; allocating the same fund again changes nothing."""
        split = split or self.policy.fund
        return self._allocate(split.fund_id, split.pools_krw(), at=at, cause_id=cause_id)

    def _allocate(self, fund_id: str, pools_krw: dict[Pool, int], *, at: datetime, cause_id: str | None) -> list[Outcome]:
        posting = allocation_posting(fund_id, pools_krw, at=at, cause_id=cause_id)
        if not self.ledger.post(posting):
            return []
        allocation = Allocation(fund_id, sum(pools_krw.values()), dict(pools_krw), at, posting)
        self.allocations[fund_id] = allocation
        return [allocation, *self._release(at)]

    # Cataloging subsidies

    def on_dataset_published(self, event: DatasetPublished, *, at: datetime, cause_id: str | None = None) -> list[Outcome]:
        """Award the publishing hospital its subsidy; a publisher that is not a hospital earns none."""
        if not self._is_hospital(event.institution_id):
            return []
        book = self.subsidies.setdefault(event.institution_id, HospitalSubsidies(event.institution_id))
        changes = book.publish(event, self.policy.subsidy)
        return self._settle_subsidies(book, changes, at=at, cause_id=cause_id)

    def on_dataset_withdrawn(self, event: DatasetWithdrawn, *, at: datetime, cause_id: str | None = None) -> list[Outcome]:
        """Claw back the dataset's subsidy if the withdrawal falls within the clawback window."""
        if not self._is_hospital(event.institution_id):
            return []
        book = self.subsidies.setdefault(event.institution_id, HospitalSubsidies(event.institution_id))
        changes = book.withdraw(event, self.policy.subsidy)
        return self._settle_subsidies(book, changes, at=at, cause_id=cause_id)

    def _settle_subsidies(
        self, book: HospitalSubsidies, changes: list[SubsidyChange], *, at: datetime, cause_id: str | None
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for change in changes:
            outcomes.append(change)
            if change.is_clawback:
                outcomes.extend(self._reverse_subsidy(book, change, at=at, cause_id=cause_id))
            else:
                outcomes.extend(self._pay(_subsidy_payout(change, at=at, cause_id=cause_id), at=at))
        return outcomes

    def _reverse_subsidy(
        self, book: HospitalSubsidies, change: SubsidyChange, *, at: datetime, cause_id: str | None
    ) -> list[Outcome]:
        """Cancel the dataset's unpaid awards and return its paid ones to the pool in one posting."""
        outcomes: list[Outcome] = []
        paid_krw = 0
        for award_id in book.datasets[change.dataset_id].award_ids:
            cancelled = self.ledger.cancel_payout(award_id)
            if cancelled is not None:
                outcomes.append(cancelled)
            disbursement = self.ledger.posting(award_id)
            if disbursement is not None:
                paid_krw += disbursement.amount_on(Account.grantee("cataloging", change.institution_id))

        if paid_krw > 0:
            posting = clawback_posting(
                change.award_id,
                pool="cataloging",
                institution_id=change.institution_id,
                amount_krw=paid_krw,
                reference_id=change.award_id,
                at=at,
                cause_id=cause_id,
            )
            self.ledger.post(posting)
            outcomes.append(Clawback(change, posting))
            outcomes.extend(self._release(at))
        return outcomes

    # Milestones

    def on_access_granted(self, event: AccessGranted, *, at: datetime, cause_id: str | None = None) -> list[Outcome]:
        """Count the grant for its data holder and pay every milestone it reaches."""
        self._require_known(event.holder_institution)
        self._require_known(event.grantee_institution)
        transaction = DataTransaction.from_access_granted(event, at=at)
        counter = self.counters.setdefault(event.holder_institution, TransactionCounter(event.holder_institution))
        result, crossed = counter.record(transaction, self.policy.milestones)
        if result is not CountResult.COUNTED:
            return [TransactionNotCounted(event.application_id, event.holder_institution, result)]

        outcomes: list[Outcome] = []
        for milestone in crossed:
            outcomes.append(milestone)
            outcomes.extend(self._pay(_milestone_payout(milestone, cause_id=cause_id), at=at))
        return outcomes

    # Suspension

    def on_compliance_flagged(self, event: ComplianceViolationFlagged, *, at: datetime) -> list[Outcome]:
        return self._raise_flags(flags_raised_by_violation(event), at=at)

    def on_exclusion_overdue(self, event: ExclusionOverdue, *, at: datetime) -> list[Outcome]:
        return self._raise_flags(flags_raised_by_overdue_exclusion(event), at=at)

    def on_flag_cleared(self, event: ComplianceFlagCleared | ExclusionAcknowledged, *, at: datetime) -> list[Outcome]:
        """Clear a flag; a reinstated institution's held payouts are paid if the pool allows."""
        change = self.suspensions.clear_flag(flag_cleared_by(event), at=at)
        if change is None:
            return []
        return [change, *self._release(at)]

    def _raise_flags(self, refs: list[FlagRef], *, at: datetime) -> list[Outcome]:
        changes = [self.suspensions.raise_flag(ref, at=at) for ref in refs]
        return [change for change in changes if change is not None]

    # Anonymization-tool grants

    def submit_tool_application(
        self, *, application_id: str, vendor_id: str, title: str, requested_krw: object, actor: Actor, at: datetime
    ) -> ToolGrantApplication:
        """Record a vendor's application; resubmitting the same id by the same vendor returns the first one."""
        vendor = self._require_known(vendor_id)
        if vendor.kind != "vendor":
            raise IneligibleInstitution(f"{vendor_id!r} is a {vendor.kind}; tool grants go to AI vendors only")
        application = submit_application(
            application_id=application_id, vendor_id=vendor_id, title=title, requested_krw=requested_krw, actor=actor, at=at
        )
        existing = self.applications.get(application_id)
        if existing is not None:
            if existing.vendor_id != vendor_id:
                raise InvalidState(f"application id {application_id!r} is taken by another vendor; choose a new id")
            return existing
        self.applications[application_id] = application
        return application

    def award_tool_grant(
        self,
        *,
        application_id: str,
        amount_krw: object,
        tranches: Sequence[TrancheTerms],
        actor: Actor,
        at: datetime,
    ) -> list[Outcome]:
        actor.require_role(FUND_ADMIN_ROLE, "awarding a tool grant")
        award = award_application(
            self._application(application_id),
            amount_krw=amount_krw,
            tranches=tranches,
            actor=actor,
            uncommitted_krw=self.uncommitted_krw("anonymization_tools"),
            policy=self.policy.tool_grants,
            at=at,
        )
        self.awards[award.award_id] = award
        return [award]

    def reject_tool_application(self, *, application_id: str, reason: str, actor: Actor) -> ToolGrantApplication:
        actor.require_role(FUND_ADMIN_ROLE, "rejecting a tool grant application")
        application = self._application(application_id)
        reject_application(application, actor=actor, reason=reason)
        return application

    def confirm_tranche_delivery(
        self, *, award_id: str, tranche_number: int, actor: Actor, at: datetime, cause_id: str | None = None
    ) -> list[Outcome]:
        actor.require_role(FUND_ADMIN_ROLE, "confirming a tool delivery")
        award = self.awards.get(award_id)
        if award is None:
            raise NotFound(f"tool grant award {award_id!r} not found")
        request = confirm_delivery(award, tranche_number=tranche_number, actor=actor, at=at, cause_id=cause_id)
        return self._pay(request, at=at)

    def uncommitted_krw(self, pool: Pool) -> int:
        """Return the pool's balance minus pending payouts and, for tool grants, unconfirmed tranches."""
        committed = self.ledger.pending_krw(pool)
        if pool == "anonymization_tools":
            committed += sum(award.unconfirmed_krw for award in self.awards.values())
        return self.ledger.available(pool) - committed

    def _application(self, application_id: str) -> ToolGrantApplication:
        application = self.applications.get(application_id)
        if application is None:
            raise NotFound(f"tool grant application {application_id!r} not found")
        return application

    # Events

    def apply(self, payload: EventPayload, *, at: datetime, cause_id: str | None = None) -> list[Outcome]:
        """Apply one consumed event; types the grants service does not act on return no outcome."""
        match payload:
            case FundAllocated():
                return self._allocate(payload.fund_id, dict(payload.pools_krw), at=at, cause_id=cause_id)
            case DatasetPublished():
                return self.on_dataset_published(payload, at=at, cause_id=cause_id)
            case DatasetWithdrawn():
                return self.on_dataset_withdrawn(payload, at=at, cause_id=cause_id)
            case AccessGranted():
                return self.on_access_granted(payload, at=at, cause_id=cause_id)
            case ComplianceViolationFlagged():
                return self.on_compliance_flagged(payload, at=at)
            case ExclusionOverdue():
                return self.on_exclusion_overdue(payload, at=at)
            case ComplianceFlagCleared() | ExclusionAcknowledged():
                return self.on_flag_cleared(payload, at=at)
        return []

    # Payouts

    def _pay(self, request: PayoutRequest, *, at: datetime) -> list[Outcome]:
        suspended = self.suspensions.is_suspended(request.institution_id)
        outcome = self.ledger.request_payout(request, suspended=suspended, at=at)
        return [] if outcome is None else [outcome]

    def _release(self, at: datetime) -> list[PayoutOutcome]:
        return self.ledger.release_pending(is_suspended=self.suspensions.is_suspended, at=at)

    # Institutions

    def _require_known(self, institution_id: str) -> Institution:
        try:
            return self.directory(institution_id)
        except KeyError as error:
            raise UnknownInstitution(f"institution {institution_id!r} is not registered in institutions.yaml") from error

    def _is_hospital(self, institution_id: str) -> bool:
        return self._require_known(institution_id).kind == "hospital"


def _subsidy_payout(change: SubsidyChange, *, at: datetime, cause_id: str | None) -> PayoutRequest:
    return PayoutRequest(
        payout_id=change.award_id,
        pool="cataloging",
        institution_id=change.institution_id,
        amount_krw=change.amount_krw,
        reason="subsidy",
        reference_id=change.award_id,
        requested_at=at,
        cause_id=cause_id,
    )


def _milestone_payout(milestone: MilestoneCrossed, *, cause_id: str | None) -> PayoutRequest:
    return PayoutRequest(
        payout_id=milestone.milestone_id,
        pool="milestones",
        institution_id=milestone.institution_id,
        amount_krw=milestone.milestone.amount_krw,
        reason="milestone",
        reference_id=milestone.milestone_id,
        requested_at=milestone.reached_at,
        cause_id=cause_id,
    )
