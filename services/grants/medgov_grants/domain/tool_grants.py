"""Anonymization-tool grants: a vendor applies, the fund administrator awards, tranches pay on delivery.

An award commits money: its unpaid tranches count against the pool, so the
sum of awards can never promise more than the pool holds. A tranche is paid
once, when the fund administrator confirms its deliverable.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from medgov_grants.domain.errors import (
    AwardExceedsPool,
    InvalidAmount,
    InvalidInput,
    InvalidState,
    InvalidTranches,
    NotAuthorized,
    NotFound,
)
from medgov_grants.domain.ids import derived_id
from medgov_grants.domain.ledger import PayoutRequest
from medgov_grants.domain.money import require_krw
from medgov_grants.domain.policy import ToolGrantPolicy

FUND_ADMIN_ROLE = "fund_admin"
APPLICANT_ROLE = "applicant"


@dataclass(frozen=True)
class Actor:
    """The authenticated caller, taken from the verified JWT: subject, roles and institution claim."""

    subject: str
    roles: frozenset[str]
    institution_id: str | None = None

    def require_role(self, role: str, action: str) -> None:
        if role not in self.roles:
            held = ", ".join(sorted(self.roles)) or "none"
            raise NotAuthorized(f"{action} needs the role {role!r}; caller {self.subject!r} has roles: {held}")


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    AWARDED = "awarded"
    REJECTED = "rejected"


@dataclass
class ToolGrantApplication:
    """A vendor's application for an anonymization-tool grant."""

    application_id: str
    vendor_id: str
    title: str
    requested_krw: int
    submitted_by: str
    submitted_at: datetime
    status: ApplicationStatus = ApplicationStatus.SUBMITTED
    decided_by: str | None = None
    decision_note: str | None = None


@dataclass(frozen=True)
class TrancheTerms:
    """One tranche as the administrator defines it in the award: what must be delivered and what it pays."""

    deliverable: str
    amount_krw: int


@dataclass
class Tranche:
    number: int
    deliverable: str
    amount_krw: int
    confirmed_at: datetime | None = None
    confirmed_by: str | None = None


@dataclass
class ToolGrantAward:
    """An awarded tool grant with its tranches; published as ToolGrantAwarded."""

    award_id: str
    application_id: str
    vendor_id: str
    amount_krw: int
    tranches: list[Tranche]
    awarded_by: str
    awarded_at: datetime
    tranche_payouts: dict[int, str] = field(default_factory=dict)

    @property
    def unconfirmed_krw(self) -> int:
        return sum(tranche.amount_krw for tranche in self.tranches if tranche.confirmed_at is None)

    def tranche(self, number: int) -> Tranche:
        for tranche in self.tranches:
            if tranche.number == number:
                return tranche
        raise NotFound(f"award {self.award_id} has no tranche {number}; tranches are numbered 1 to {len(self.tranches)}")


def submit_application(
    *,
    application_id: str,
    vendor_id: str,
    title: str,
    requested_krw: object,
    actor: Actor,
    at: datetime,
) -> ToolGrantApplication:
    """Validate and create an application; the caller must be an applicant of the vendor itself.

    The caller checks beforehand that `vendor_id` is a registered vendor.
    """
    actor.require_role(APPLICANT_ROLE, "applying for a tool grant")
    if actor.institution_id != vendor_id:
        raise NotAuthorized(
            f"caller {actor.subject!r} belongs to {actor.institution_id!r} and cannot apply on behalf of {vendor_id!r}"
        )
    if not title.strip():
        raise InvalidInput("title is empty; describe the anonymization tool")
    return ToolGrantApplication(
        application_id=application_id,
        vendor_id=vendor_id,
        title=title.strip(),
        requested_krw=require_krw(requested_krw, name="requested_krw"),
        submitted_by=actor.subject,
        submitted_at=at,
    )


def award_application(
    application: ToolGrantApplication,
    *,
    amount_krw: object,
    tranches: Sequence[TrancheTerms],
    actor: Actor,
    uncommitted_krw: int,
    policy: ToolGrantPolicy,
    at: datetime,
) -> ToolGrantAward:
    """Award `application`; `uncommitted_krw` is the pool's balance minus pending payouts and unpaid tranches."""
    actor.require_role(FUND_ADMIN_ROLE, "awarding a tool grant")
    _require_submitted(application)
    amount = require_krw(amount_krw, name="amount_krw")
    if amount > policy.max_award_krw:
        raise InvalidAmount(f"amount_krw {amount:,} exceeds the maximum tool grant of {policy.max_award_krw:,} KRW")
    checked = _check_tranches(tranches, amount, policy)
    if amount > uncommitted_krw:
        raise AwardExceedsPool(
            f"award of {amount:,} KRW exceeds the {uncommitted_krw:,} KRW of the anonymization_tools pool "
            "not yet committed to other awards or pending payouts"
        )

    application.status = ApplicationStatus.AWARDED
    application.decided_by = actor.subject
    return ToolGrantAward(
        award_id=tool_award_id(application.application_id),
        application_id=application.application_id,
        vendor_id=application.vendor_id,
        amount_krw=amount,
        tranches=checked,
        awarded_by=actor.subject,
        awarded_at=at,
    )


def reject_application(application: ToolGrantApplication, *, actor: Actor, reason: str) -> None:
    actor.require_role(FUND_ADMIN_ROLE, "rejecting a tool grant application")
    _require_submitted(application)
    if not reason.strip():
        raise InvalidInput("reason is empty; say why the application is rejected")
    application.status = ApplicationStatus.REJECTED
    application.decided_by = actor.subject
    application.decision_note = reason.strip()


def confirm_delivery(award: ToolGrantAward, *, tranche_number: int, actor: Actor, at: datetime, cause_id: str | None = None) -> PayoutRequest:
    """Confirm a tranche's deliverable and return the payout request for it."""
    actor.require_role(FUND_ADMIN_ROLE, "confirming a tool delivery")
    tranche = award.tranche(tranche_number)
    if tranche.confirmed_at is not None:
        raise InvalidState(
            f"tranche {tranche_number} of award {award.award_id} was already confirmed at {tranche.confirmed_at.isoformat()}"
        )

    tranche.confirmed_at = at
    tranche.confirmed_by = actor.subject
    payout_id = derived_id(award.award_id, f"t{tranche_number}")
    award.tranche_payouts[tranche_number] = payout_id
    return PayoutRequest(
        payout_id=payout_id,
        pool="anonymization_tools",
        institution_id=award.vendor_id,
        amount_krw=tranche.amount_krw,
        reason="tool_tranche",
        reference_id=payout_id,
        requested_at=at,
        cause_id=cause_id,
    )


def tool_award_id(application_id: str) -> str:
    return derived_id("tool", application_id)


def _require_submitted(application: ToolGrantApplication) -> None:
    if application.status is not ApplicationStatus.SUBMITTED:
        raise InvalidState(f"application {application.application_id} is already {application.status}; only a submitted one can be decided")


def _check_tranches(tranches: Sequence[TrancheTerms], amount: int, policy: ToolGrantPolicy) -> list[Tranche]:
    if not tranches:
        raise InvalidTranches("an award needs at least one tranche")
    if len(tranches) > policy.max_tranches:
        raise InvalidTranches(f"{len(tranches)} tranches given; at most {policy.max_tranches} are allowed")

    checked = []
    for number, terms in enumerate(tranches, start=1):
        if not terms.deliverable.strip():
            raise InvalidTranches(f"tranche {number} has no deliverable; say what must be delivered")
        tranche_amount = require_krw(terms.amount_krw, name=f"tranche {number} amount_krw")
        checked.append(Tranche(number, terms.deliverable.strip(), tranche_amount))

    total = sum(tranche.amount_krw for tranche in checked)
    if total != amount:
        raise InvalidTranches(f"tranches sum to {total:,} KRW but the award is {amount:,} KRW; they must be equal")
    return checked
