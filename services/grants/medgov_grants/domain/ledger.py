"""The fund's double-entry ledger: accounts, postings, derived balances and pending payouts.

Sign convention: a leg's amount is positive for a debit and negative for a
credit, so the legs of every posting sum to zero and the signed balances of
all accounts sum to zero. Three kinds of account exist:

- funding:<fund_id> is where allocated money comes from; its balance is
  negative (credit-normal) and equals minus the fund's size.
- pool:<pool> is the money a pool still has; it never goes below zero.
- grantee:<pool>:<institution_id> is what one institution received from one
  pool, net of clawbacks; it never goes below zero.

Postings are append-only. A correction is a new posting (a clawback), never an
edit. Balances are sums over the postings; `Ledger` keeps a running total per
account for speed and `check_invariants` recomputes it from the postings.

Concurrency in the database version: the PostgreSQL repository keeps one row
per pool and takes it with SELECT ... FOR UPDATE before it computes the
available amount and inserts a disbursement, so two payouts from the same pool
are serialized; a CHECK (balance_krw >= 0) on that row is the backstop. This
module mirrors that rule: `post` checks every pool leg before it appends.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args

from medgov_shared.contracts.events.grants import Pool

from medgov_grants.domain.errors import (
    ConflictingPosting,
    LedgerInvariantViolated,
    PoolExhausted,
    UnbalancedPosting,
)
from medgov_grants.domain.money import require_krw

POOLS: tuple[Pool, ...] = get_args(Pool)

PayoutReason = Literal["subsidy", "tool_tranche", "milestone"]


class AccountKind(StrEnum):
    FUNDING = "funding"
    POOL = "pool"
    GRANTEE = "grantee"


@dataclass(frozen=True, order=True)
class Account:
    """A ledger account, stored and printed as its `code`, e.g. 'grantee:cataloging:knuh'."""

    kind: AccountKind
    name: str

    @classmethod
    def funding(cls, fund_id: str) -> "Account":
        return cls(AccountKind.FUNDING, fund_id)

    @classmethod
    def pool(cls, pool: Pool) -> "Account":
        _require_pool(pool)
        return cls(AccountKind.POOL, pool)

    @classmethod
    def grantee(cls, pool: Pool, institution_id: str) -> "Account":
        _require_pool(pool)
        return cls(AccountKind.GRANTEE, f"{pool}:{institution_id}")

    @classmethod
    def parse(cls, code: str) -> "Account":
        kind, _, name = code.partition(":")
        if not name or kind not in AccountKind.__members__.values():
            raise ValueError(f"invalid account code {code!r}; expected 'funding:<id>', 'pool:<pool>' or 'grantee:<pool>:<id>'")
        return cls(AccountKind(kind), name)

    @property
    def code(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def pool_name(self) -> Pool | None:
        if self.kind is AccountKind.FUNDING:
            return None
        return self.name.split(":", 1)[0]  # type: ignore[return-value]

    @property
    def institution_id(self) -> str | None:
        if self.kind is not AccountKind.GRANTEE:
            return None
        return self.name.split(":", 1)[1]

    def __str__(self) -> str:
        return self.code


def _require_pool(pool: str) -> None:
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; expected one of {', '.join(POOLS)}")


@dataclass(frozen=True)
class Leg:
    """One side of a posting: a positive amount debits the account, a negative one credits it."""

    account: Account
    amount_krw: int

    @classmethod
    def debit(cls, account: Account, amount_krw: int) -> "Leg":
        return cls(account, require_krw(amount_krw, name="debit amount_krw"))

    @classmethod
    def credit(cls, account: Account, amount_krw: int) -> "Leg":
        return cls(account, -require_krw(amount_krw, name="credit amount_krw"))


class PostingKind(StrEnum):
    ALLOCATION = "allocation"
    DISBURSEMENT = "disbursement"
    CLAWBACK = "clawback"


@dataclass(frozen=True)
class Posting:
    """An immutable journal entry whose legs sum to zero.

    `posting_id` is deterministic (derived from the award, tranche, milestone
    or fund it settles), so a replay produces the same ids and a repeated
    event cannot post twice.
    """

    posting_id: str
    kind: PostingKind
    legs: tuple[Leg, ...]
    reference_id: str
    posted_at: datetime
    institution_id: str | None = None
    cause_id: str | None = None

    def __post_init__(self) -> None:
        if not self.posting_id:
            raise UnbalancedPosting("posting_id is empty")
        if len(self.legs) < 2:
            raise UnbalancedPosting(f"posting {self.posting_id} has {len(self.legs)} leg(s); a posting needs at least two")
        for leg in self.legs:
            _check_leg(self.posting_id, leg)
        total = sum(leg.amount_krw for leg in self.legs)
        if total != 0:
            raise UnbalancedPosting(f"legs of posting {self.posting_id} sum to {total:,} KRW instead of 0")
        if len({leg.account for leg in self.legs}) != len(self.legs):
            raise UnbalancedPosting(f"posting {self.posting_id} names the same account in two legs")
        if self.posted_at.tzinfo is None:
            raise UnbalancedPosting(f"posting {self.posting_id} has a naive posted_at; give a time zone (UTC expected)")

    def amount_on(self, account: Account) -> int:
        return sum(leg.amount_krw for leg in self.legs if leg.account == account)


def _check_leg(posting_id: str, leg: Leg) -> None:
    if isinstance(leg.amount_krw, bool) or not isinstance(leg.amount_krw, int):
        raise UnbalancedPosting(f"posting {posting_id}: leg on {leg.account} has non-integer amount {leg.amount_krw!r}")
    if leg.amount_krw == 0:
        raise UnbalancedPosting(f"posting {posting_id}: leg on {leg.account} has amount 0")


def allocation_posting(
    fund_id: str, pools_krw: Mapping[Pool, int], *, at: datetime, cause_id: str | None = None
) -> Posting:
    """Build the posting that moves a fund's money into its pools (debit each pool, credit the funding account)."""
    amounts = {pool: require_krw(amount, name=f"pools_krw[{pool}]") for pool, amount in pools_krw.items()}
    legs = [Leg.debit(Account.pool(pool), amount) for pool, amount in sorted(amounts.items())]
    legs.append(Leg.credit(Account.funding(fund_id), sum(amounts.values())))
    return Posting(
        posting_id=f"alloc-{fund_id}",
        kind=PostingKind.ALLOCATION,
        legs=tuple(legs),
        reference_id=fund_id,
        posted_at=at,
        cause_id=cause_id,
    )


@dataclass(frozen=True)
class PayoutRequest:
    """A request to pay `amount_krw` from `pool` to an institution; `payout_id` is also its posting id."""

    payout_id: str
    pool: Pool
    institution_id: str
    amount_krw: int
    reason: PayoutReason
    reference_id: str
    requested_at: datetime
    cause_id: str | None = None

    def __post_init__(self) -> None:
        _require_pool(self.pool)
        require_krw(self.amount_krw, name="payout amount_krw")


def disbursement_posting(request: PayoutRequest, *, at: datetime) -> Posting:
    """Build the posting that pays a request: debit the grantee account, credit the pool."""
    return Posting(
        posting_id=request.payout_id,
        kind=PostingKind.DISBURSEMENT,
        legs=(
            Leg.debit(Account.grantee(request.pool, request.institution_id), request.amount_krw),
            Leg.credit(Account.pool(request.pool), request.amount_krw),
        ),
        reference_id=request.reference_id,
        posted_at=at,
        institution_id=request.institution_id,
        cause_id=request.cause_id,
    )


def clawback_posting(
    posting_id: str,
    *,
    pool: Pool,
    institution_id: str,
    amount_krw: int,
    reference_id: str,
    at: datetime,
    cause_id: str | None = None,
) -> Posting:
    """Build the posting that returns paid money to its pool: debit the pool, credit the grantee account."""
    return Posting(
        posting_id=posting_id,
        kind=PostingKind.CLAWBACK,
        legs=(
            Leg.debit(Account.pool(pool), amount_krw),
            Leg.credit(Account.grantee(pool, institution_id), amount_krw),
        ),
        reference_id=reference_id,
        posted_at=at,
        institution_id=institution_id,
        cause_id=cause_id,
    )


class PayoutStatus(StrEnum):
    WAITING_FOR_FUNDS = "waiting_for_funds"
    HELD_SUSPENDED = "held_suspended"
    PAID = "paid"
    CANCELLED = "cancelled"


@dataclass
class PendingPayout:
    """A payout not paid yet, kept in request order; `exhaustion_reported` makes PoolExhausted fire once."""

    request: PayoutRequest
    status: PayoutStatus
    exhaustion_reported: bool = False


@dataclass(frozen=True)
class Disbursed:
    """A payout that was paid by `posting`."""

    request: PayoutRequest
    posting: Posting


@dataclass(frozen=True)
class PayoutWaiting:
    """A payout that found its pool short and waits for money; published as PoolExhausted."""

    request: PayoutRequest
    available_krw: int
    detected_at: datetime


@dataclass(frozen=True)
class PayoutHeld:
    """A payout held because its institution is suspended; it is retried when the suspension ends."""

    request: PayoutRequest


@dataclass(frozen=True)
class PayoutCancelled:
    """A pending payout dropped because the award behind it was reversed."""

    request: PayoutRequest


PayoutOutcome = Disbursed | PayoutWaiting | PayoutHeld | PayoutCancelled


@dataclass
class Ledger:
    """The journal of postings plus the queue of payouts not paid yet."""

    _postings: list[Posting] = field(default_factory=list)
    _postings_by_id: dict[str, Posting] = field(default_factory=dict)
    _balances: defaultdict[Account, int] = field(default_factory=lambda: defaultdict(int))
    _pending: dict[str, PendingPayout] = field(default_factory=dict)
    _closed: dict[str, PayoutStatus] = field(default_factory=dict)

    # Journal

    def post(self, posting: Posting) -> bool:
        """Append `posting`; return False if the same posting is already in the journal.

        Raises ConflictingPosting if the id exists with other content. Raises
        PoolExhausted if a pool would go below zero, and LedgerInvariantViolated
        if a grantee account would. The ledger is unchanged after any of them.
        """
        existing = self._postings_by_id.get(posting.posting_id)
        if existing is not None:
            if existing.legs != posting.legs or existing.kind != posting.kind:
                raise ConflictingPosting(f"posting {posting.posting_id} already exists with other legs; postings are never edited")
            return False

        self._reject_overdraft(posting)
        self._postings.append(posting)
        self._postings_by_id[posting.posting_id] = posting
        for leg in posting.legs:
            self._balances[leg.account] += leg.amount_krw
        return True

    def _reject_overdraft(self, posting: Posting) -> None:
        for leg in posting.legs:
            if leg.account.kind is AccountKind.FUNDING:
                continue
            after = self._balances[leg.account] + leg.amount_krw
            if after >= 0:
                continue
            if leg.account.kind is AccountKind.POOL:
                raise PoolExhausted(leg.account.name, -leg.amount_krw, self._balances[leg.account])
            raise LedgerInvariantViolated(
                f"posting {posting.posting_id} would take {leg.account} to {after:,} KRW; "
                "a clawback may return at most what the institution received"
            )

    @property
    def postings(self) -> tuple[Posting, ...]:
        return tuple(self._postings)

    def posting(self, posting_id: str) -> Posting | None:
        return self._postings_by_id.get(posting_id)

    def balance(self, account: Account) -> int:
        return self._balances.get(account, 0)

    def available(self, pool: Pool) -> int:
        return self.balance(Account.pool(pool))

    def balances(self) -> dict[Account, int]:
        return {account: amount for account, amount in sorted(self._balances.items()) if amount != 0}

    # Payouts

    def request_payout(self, request: PayoutRequest, *, suspended: bool, at: datetime) -> PayoutOutcome | None:
        """Pay `request` now, or queue it as held (suspended) or waiting (pool short).

        Returns None when the payout id was seen before, so a repeated event
        neither pays twice nor reports twice.
        """
        if self._known_payout(request.payout_id):
            return None
        if suspended:
            self._pending[request.payout_id] = PendingPayout(request, PayoutStatus.HELD_SUSPENDED)
            return PayoutHeld(request)
        pending = PendingPayout(request, PayoutStatus.WAITING_FOR_FUNDS)
        outcome = self._attempt(pending, at=at)
        if not isinstance(outcome, Disbursed):
            self._pending[request.payout_id] = pending
        return outcome

    def release_pending(self, *, is_suspended: Callable[[str], bool], at: datetime) -> list[PayoutOutcome]:
        """Retry every pending payout in request order; call after money returns or a suspension ends.

        A payout that does not fit is skipped and the next one is tried, so a
        small payout is not blocked behind a large one. The large one can
        therefore wait long while small ones keep arriving.
        """
        outcomes: list[PayoutOutcome] = []
        for payout_id, pending in list(self._pending.items()):
            if is_suspended(pending.request.institution_id):
                pending.status = PayoutStatus.HELD_SUSPENDED
                continue
            outcome = self._attempt(pending, at=at)
            if isinstance(outcome, Disbursed):
                del self._pending[payout_id]
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _attempt(self, pending: PendingPayout, *, at: datetime) -> Disbursed | PayoutWaiting | None:
        """Post the payout, or mark it waiting; returns None for a waiting payout already reported."""
        request = pending.request
        posting = disbursement_posting(request, at=at)
        try:
            self.post(posting)
        except PoolExhausted as exhausted:
            pending.status = PayoutStatus.WAITING_FOR_FUNDS
            if pending.exhaustion_reported:
                return None
            pending.exhaustion_reported = True
            return PayoutWaiting(request, exhausted.available_krw, at)
        self._closed[request.payout_id] = PayoutStatus.PAID
        return Disbursed(request, posting)

    def cancel_payout(self, payout_id: str) -> PayoutCancelled | None:
        """Drop a pending payout; returns None if it is not pending (paid, cancelled or unknown)."""
        pending = self._pending.pop(payout_id, None)
        if pending is None:
            return None
        self._closed[payout_id] = PayoutStatus.CANCELLED
        return PayoutCancelled(pending.request)

    def payout_status(self, payout_id: str) -> PayoutStatus | None:
        if payout_id in self._pending:
            return self._pending[payout_id].status
        return self._closed.get(payout_id)

    def pending_payouts(self, pool: Pool | None = None) -> tuple[PendingPayout, ...]:
        return tuple(item for item in self._pending.values() if pool is None or item.request.pool == pool)

    def pending_krw(self, pool: Pool) -> int:
        return sum(item.request.amount_krw for item in self.pending_payouts(pool))

    def _known_payout(self, payout_id: str) -> bool:
        return payout_id in self._pending or payout_id in self._closed

    # Invariants

    def check_invariants(self) -> None:
        """Recompute every balance from the postings and raise LedgerInvariantViolated on any inconsistency."""
        derived = derive_balances(self._postings)
        _require(derived == self.balances(), "running balances differ from the sums over postings")
        _require(sum(derived.values()) == 0, f"balances sum to {sum(derived.values()):,} KRW instead of 0")
        for account, amount in derived.items():
            _require(_sign_allowed(account, amount), f"{account} has balance {amount:,} KRW")
        _check_pool_conservation(self._postings, derived)
        _check_payouts(self)


def derive_balances(postings: Iterable[Posting]) -> dict[Account, int]:
    """Sum the legs of `postings` per account, leaving out accounts at zero."""
    totals: defaultdict[Account, int] = defaultdict(int)
    for posting in postings:
        for leg in posting.legs:
            totals[leg.account] += leg.amount_krw
    return {account: amount for account, amount in sorted(totals.items()) if amount != 0}


def _sign_allowed(account: Account, amount: int) -> bool:
    if account.kind is AccountKind.FUNDING:
        return amount <= 0
    return amount >= 0


def _check_pool_conservation(postings: list[Posting], balances: Mapping[Account, int]) -> None:
    """Check that each pool's balance plus what its grantees hold equals what was allocated to it."""
    allocated: defaultdict[str, int] = defaultdict(int)
    for posting in postings:
        if posting.kind is PostingKind.ALLOCATION:
            for leg in posting.legs:
                if leg.account.kind is AccountKind.POOL:
                    allocated[leg.account.name] += leg.amount_krw
    for pool in POOLS:
        held = sum(amount for account, amount in balances.items() if account.pool_name == pool)
        _require(held == allocated[pool], f"pool {pool}: {held:,} KRW held but {allocated[pool]:,} KRW allocated")


def _check_payouts(ledger: Ledger) -> None:
    disbursements = {p.posting_id for p in ledger.postings if p.kind is PostingKind.DISBURSEMENT}
    paid = {payout_id for payout_id, status in ledger._closed.items() if status is PayoutStatus.PAID}
    _require(disbursements == paid, "disbursement postings and paid payouts differ")
    for payout_id in ledger._pending:
        _require(payout_id not in disbursements, f"payout {payout_id} is pending but has a disbursement posting")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise LedgerInvariantViolated(message)
