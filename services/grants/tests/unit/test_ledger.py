from datetime import UTC, datetime

import pytest

from medgov_grants.domain.errors import ConflictingPosting, LedgerInvariantViolated, PoolExhausted, UnbalancedPosting
from medgov_grants.domain.ledger import (
    Account,
    Disbursed,
    Leg,
    Ledger,
    PayoutCancelled,
    PayoutHeld,
    PayoutRequest,
    PayoutStatus,
    PayoutWaiting,
    Posting,
    PostingKind,
    allocation_posting,
    clawback_posting,
    disbursement_posting,
)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
POOLS_100 = {"cataloging": 40, "anonymization_tools": 30, "milestones": 30}


def _ledger(pools: dict | None = None) -> Ledger:
    ledger = Ledger()
    ledger.post(allocation_posting("fund-a", pools or POOLS_100, at=T0))
    return ledger


def _request(payout_id: str, amount: int, *, pool: str = "cataloging", institution: str = "knuh") -> PayoutRequest:
    return PayoutRequest(
        payout_id=payout_id,
        pool=pool,  # type: ignore[arg-type]
        institution_id=institution,
        amount_krw=amount,
        reason="subsidy",
        reference_id=payout_id,
        requested_at=T0,
    )


def _never_suspended(_: str) -> bool:
    return False


def test_account_code_round_trip() -> None:
    account = Account.grantee("cataloging", "knuh")

    assert account.code == "grantee:cataloging:knuh"
    assert Account.parse(account.code) == account
    assert account.pool_name == "cataloging"
    assert account.institution_id == "knuh"


def test_account_rejects_unknown_pool_and_kind() -> None:
    with pytest.raises(ValueError, match="unknown pool 'travel'"):
        Account.pool("travel")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid account code"):
        Account.parse("asset:cataloging")


def test_posting_must_balance() -> None:
    legs = (Leg.debit(Account.pool("cataloging"), 100), Leg.credit(Account.funding("f"), 99))

    with pytest.raises(UnbalancedPosting, match="sum to 1 KRW instead of 0"):
        Posting("p-1", PostingKind.ALLOCATION, legs, "f", T0)


def test_posting_needs_two_legs() -> None:
    with pytest.raises(UnbalancedPosting, match="1 leg"):
        Posting("p-1", PostingKind.ALLOCATION, (Leg(Account.pool("cataloging"), 0),), "f", T0)


def test_posting_rejects_zero_and_fractional_legs() -> None:
    zero = (Leg(Account.pool("cataloging"), 0), Leg(Account.funding("f"), 0))
    fractional = (Leg(Account.pool("cataloging"), 0.5), Leg(Account.funding("f"), -0.5))  # type: ignore[arg-type]

    with pytest.raises(UnbalancedPosting, match="amount 0"):
        Posting("p-1", PostingKind.ALLOCATION, zero, "f", T0)
    with pytest.raises(UnbalancedPosting, match="non-integer amount 0.5"):
        Posting("p-2", PostingKind.ALLOCATION, fractional, "f", T0)


def test_posting_rejects_repeated_account() -> None:
    account = Account.pool("cataloging")

    with pytest.raises(UnbalancedPosting, match="same account in two legs"):
        Posting("p-1", PostingKind.ALLOCATION, (Leg(account, 5), Leg(account, -5)), "f", T0)


def test_posting_rejects_naive_time() -> None:
    legs = (Leg.debit(Account.pool("cataloging"), 5), Leg.credit(Account.funding("f"), 5))

    with pytest.raises(UnbalancedPosting, match="naive posted_at"):
        Posting("p-1", PostingKind.ALLOCATION, legs, "f", datetime(2026, 12, 4))


def test_allocation_balances_are_derived() -> None:
    ledger = _ledger()

    assert ledger.available("cataloging") == 40
    assert ledger.balance(Account.funding("fund-a")) == -100
    assert sum(ledger.balances().values()) == 0
    ledger.check_invariants()


def test_repeated_posting_is_ignored() -> None:
    ledger = _ledger()
    posting = allocation_posting("fund-a", POOLS_100, at=T0)

    added = ledger.post(posting)

    assert added is False
    assert len(ledger.postings) == 1
    assert ledger.available("cataloging") == 40


def test_reused_posting_id_with_other_legs_rejected() -> None:
    ledger = _ledger()
    other = allocation_posting("fund-a", {"cataloging": 1, "anonymization_tools": 1, "milestones": 1}, at=T0)

    with pytest.raises(ConflictingPosting, match="never edited"):
        ledger.post(other)
    assert ledger.available("cataloging") == 40


def test_overdraft_raises_and_changes_nothing() -> None:
    ledger = _ledger()
    posting = disbursement_posting(_request("p-1", 41), at=T0)

    with pytest.raises(PoolExhausted) as raised:
        ledger.post(posting)

    assert (raised.value.pool, raised.value.requested_krw, raised.value.available_krw) == ("cataloging", 41, 40)
    assert ledger.available("cataloging") == 40
    assert ledger.posting("p-1") is None


def test_clawback_cannot_exceed_what_was_paid() -> None:
    ledger = _ledger()
    ledger.post(disbursement_posting(_request("p-1", 10), at=T0))
    too_much = clawback_posting("c-1", pool="cataloging", institution_id="knuh", amount_krw=11, reference_id="c-1", at=T0)

    with pytest.raises(LedgerInvariantViolated, match="at most what the institution received"):
        ledger.post(too_much)
    assert ledger.available("cataloging") == 30


def test_payout_paid_when_pool_has_money() -> None:
    ledger = _ledger()

    outcome = ledger.request_payout(_request("p-1", 40), suspended=False, at=T0)

    assert isinstance(outcome, Disbursed)
    assert ledger.available("cataloging") == 0
    assert ledger.balance(Account.grantee("cataloging", "knuh")) == 40
    assert ledger.payout_status("p-1") is PayoutStatus.PAID


def test_payout_waits_when_pool_short() -> None:
    ledger = _ledger()

    outcome = ledger.request_payout(_request("p-1", 41), suspended=False, at=T0)

    assert isinstance(outcome, PayoutWaiting)
    assert outcome.available_krw == 40
    assert ledger.payout_status("p-1") is PayoutStatus.WAITING_FOR_FUNDS
    assert ledger.pending_krw("cataloging") == 41
    assert ledger.available("cataloging") == 40


def test_payout_held_while_suspended() -> None:
    ledger = _ledger()

    outcome = ledger.request_payout(_request("p-1", 5), suspended=True, at=T0)

    assert isinstance(outcome, PayoutHeld)
    assert ledger.payout_status("p-1") is PayoutStatus.HELD_SUSPENDED
    assert ledger.available("cataloging") == 40


def test_repeated_payout_request_changes_nothing() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("p-1", 5), suspended=False, at=T0)

    again = ledger.request_payout(_request("p-1", 5), suspended=False, at=T0)

    assert again is None
    assert ledger.available("cataloging") == 35


def test_waiting_payout_paid_when_money_arrives() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("big", 50), suspended=False, at=T0)
    ledger.post(allocation_posting("fund-b", {"cataloging": 10, "anonymization_tools": 1, "milestones": 1}, at=T0))

    outcomes = ledger.release_pending(is_suspended=_never_suspended, at=T0)

    assert [type(item) for item in outcomes] == [Disbursed]
    assert ledger.available("cataloging") == 0
    assert ledger.pending_payouts() == ()
    ledger.check_invariants()


def test_exhaustion_reported_once() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("big", 50), suspended=False, at=T0)

    outcomes = ledger.release_pending(is_suspended=_never_suspended, at=T0)

    assert outcomes == []
    assert ledger.payout_status("big") is PayoutStatus.WAITING_FOR_FUNDS


def test_release_skips_payout_that_does_not_fit() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("first", 30), suspended=False, at=T0)
    ledger.request_payout(_request("large", 20), suspended=False, at=T0)
    ledger.request_payout(_request("small", 5), suspended=False, at=T0)

    assert ledger.payout_status("large") is PayoutStatus.WAITING_FOR_FUNDS
    assert ledger.payout_status("small") is PayoutStatus.PAID
    assert ledger.available("cataloging") == 5


def test_release_keeps_suspended_payout_held() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("p-1", 5), suspended=True, at=T0)

    outcomes = ledger.release_pending(is_suspended=lambda institution: institution == "knuh", at=T0)

    assert outcomes == []
    assert ledger.payout_status("p-1") is PayoutStatus.HELD_SUSPENDED


def test_cancel_pending_payout() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("p-1", 50), suspended=False, at=T0)

    cancelled = ledger.cancel_payout("p-1")

    assert isinstance(cancelled, PayoutCancelled)
    assert ledger.payout_status("p-1") is PayoutStatus.CANCELLED
    assert ledger.cancel_payout("p-1") is None
    assert ledger.request_payout(_request("p-1", 5), suspended=False, at=T0) is None


def test_paid_payout_cannot_be_cancelled() -> None:
    ledger = _ledger()
    ledger.request_payout(_request("p-1", 5), suspended=False, at=T0)

    assert ledger.cancel_payout("p-1") is None
    assert ledger.payout_status("p-1") is PayoutStatus.PAID


def test_invariant_check_detects_drift() -> None:
    ledger = _ledger()
    ledger._balances[Account.pool("cataloging")] += 1

    with pytest.raises(LedgerInvariantViolated, match="running balances differ"):
        ledger.check_invariants()


def test_invariant_check_detects_pool_conservation_break() -> None:
    ledger = _ledger()
    leak = Posting(
        "leak",
        PostingKind.DISBURSEMENT,
        (Leg.debit(Account.funding("fund-a"), 5), Leg.credit(Account.pool("cataloging"), 5)),
        "leak",
        T0,
    )
    ledger.post(leak)

    with pytest.raises(LedgerInvariantViolated, match="pool cataloging: 35 KRW held but 40 KRW allocated"):
        ledger.check_invariants()
