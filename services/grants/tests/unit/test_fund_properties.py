"""Property-based tests of the ledger invariants under random orders and duplicates of events.

The generated events cover three hospitals, two vendors and six datasets.
They include publications of several versions, withdrawals inside and outside
the clawback window, and access grants with self-dealing and repeats. They
also include compliance flags, overdue exclusions and their clearances, and
fund allocations small enough that pools run dry. Tool-grant commands run between events and may be
rejected.
"""

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medgov_grants.domain.errors import GrantsError
from medgov_grants.domain.fund import Fund
from medgov_grants.domain.ledger import POOLS, Account, AccountKind, Disbursed, PayoutRequest, PayoutStatus
from medgov_grants.domain.milestones import MilestoneCrossed
from medgov_grants.domain.policy import FundSplit, GrantsPolicy, default_policy
from medgov_grants.domain.subsidies import SubsidyChange
from medgov_grants.domain.tool_grants import Actor, TrancheTerms
from medgov_grants.snapshots import dump_fund, load_fund

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
HOSPITALS = ("knuh", "cnuh", "jnuh")
VENDORS = ("vendor-medvision", "vendor-lunapath")
DATASETS = {f"ds-{index}": HOSPITALS[index % len(HOSPITALS)] for index in range(6)}
ADMIN = Actor("admin-01", frozenset({"fund_admin"}))
SHARES = {"cataloging": 40, "anonymization_tools": 30, "milestones": 30}

_day = st.integers(0, 120)


def _test_policy() -> GrantsPolicy:
    """Return the default policy with milestones at 2, 4 and 6 transactions and a 30,000,000 KRW cap.

    Small thresholds let sixty generated events reach milestones, and the
    lower cap makes it bind often.
    """
    data = default_policy().model_dump()
    data["milestones"] = [
        {"transactions": 2, "amount_krw": 20_000_000},
        {"transactions": 4, "amount_krw": 30_000_000},
        {"transactions": 6, "amount_krw": 40_000_000},
    ]
    data["subsidy"]["per_hospital_cap_krw"] = 30_000_000
    return GrantsPolicy.from_mapping(data)


POLICY = _test_policy()


@dataclass(frozen=True)
class Step:
    """One generated input: a consumed event (with its time) or a tool-grant command."""

    kind: str
    args: tuple
    partition: str


def _steps() -> st.SearchStrategy[Step]:
    dataset = st.sampled_from(sorted(DATASETS))
    institution = st.sampled_from(HOSPITALS + VENDORS)
    by_kind = {
        "published": st.builds(
            lambda d, v, s, r, t: Step("published", (d, v, s, r, t), d),
            dataset,
            st.integers(1, 3),
            st.integers(40, 100),
            st.integers(0, 6000),
            _day,
        ),
        "withdrawn": st.builds(lambda d, t: Step("withdrawn", (d, t), d), dataset, _day),
        "granted": st.builds(
            lambda a, h, g: Step("granted", (f"app-{a}", h, g), f"app-{a}"),
            st.integers(0, 25),
            st.sampled_from(HOSPITALS),
            st.sampled_from(VENDORS + VENDORS + HOSPITALS),
        ),
        "flagged": st.builds(
            lambda f, i, s: Step("flagged", (f"flag-{f}", i, s), f"flag-{f}"),
            st.integers(0, 3),
            institution,
            st.sampled_from(["high", "high", "low"]),
        ),
        "cleared": st.builds(lambda f: Step("cleared", (f"flag-{f}",), f"flag-{f}"), st.integers(0, 3)),
        "overdue": st.builds(lambda e, i: Step("overdue", (f"exc-{e}", i), f"exc-{e}"), st.integers(0, 2), institution),
        "acknowledged": st.builds(lambda e, i: Step("acknowledged", (f"exc-{e}", i), f"exc-{e}"), st.integers(0, 2), institution),
        # Fund sizes from 20 to 400 million KRW, so pools run dry and refill.
        "allocated": st.builds(
            lambda f, total: Step("allocated", (f"fund-{f}", total), "fund"),
            st.integers(0, 2),
            st.sampled_from([20_000_000, 60_000_000, 150_000_000, 400_000_000]),
        ),
        "tool": st.builds(
            lambda n, amount, tranches: Step("tool", (f"tga-{n}", amount, tranches), "tool"),
            st.integers(0, 3),
            st.sampled_from([-5, 0, 30_000_000, 90_000_000, 200_000_000]),
            st.integers(1, 3),
        ),
        "deliver": st.builds(lambda n, tranche: Step("deliver", (f"tga-{n}", tranche), "tool"), st.integers(0, 3), st.integers(1, 3)),
    }
    # Repeating a kind in this list raises its share of the generated steps.
    weighted_kinds = ["published"] * 4 + ["granted"] * 6 + ["withdrawn"] * 2 + ["allocated"] * 2 + ["flagged", "cleared", "overdue", "acknowledged"] + ["tool", "deliver", "deliver"]
    return st.sampled_from(weighted_kinds).flatmap(lambda kind: by_kind[kind])


def _event(build, step: Step):  # type: ignore[no-untyped-def]
    args = step.args
    match step.kind:
        case "published":
            dataset_id, version, score, records, day = args
            return build.published(dataset_id, institution_id=DATASETS[dataset_id], version=version, completeness_score=score, record_count=records, at=T0 + timedelta(days=day))
        case "withdrawn":
            dataset_id, day = args
            return build.withdrawn(dataset_id, institution_id=DATASETS[dataset_id], at=T0 + timedelta(days=day))
        case "granted":
            application_id, holder, grantee = args
            return build.access_granted(application_id, holder=holder, grantee=grantee, grant_id=f"grant-{application_id}-{holder}")
        case "flagged":
            flag_id, institution, severity = args
            return build.violation(flag_id, institution_id=institution, severity=severity)
        case "cleared":
            return build.flag_cleared(args[0])
        case "overdue":
            return build.exclusion_overdue(*args)
        case "acknowledged":
            return build.exclusion_acknowledged(*args)
    raise AssertionError(f"not an event step: {step.kind}")


COMMANDS = {"allocated", "tool", "deliver"}


def _run(fund: Fund, build, step: Step, at: datetime) -> list:  # type: ignore[no-untyped-def]
    """Apply one step; a command may be rejected, but then it must leave the ledger as it was.

    Events are never rejected here: every generated institution is registered.
    """
    if step.kind not in COMMANDS:
        return fund.apply(_event(build, step), at=at, cause_id=f"{step.kind}:{step.args}")

    before = (fund.ledger.postings, fund.ledger.pending_payouts())
    try:
        return _command(fund, step, at)
    except GrantsError:
        assert (fund.ledger.postings, fund.ledger.pending_payouts()) == before
        return []


def _command(fund: Fund, step: Step, at: datetime) -> list:
    if step.kind == "allocated":
        fund_id, total = step.args
        return fund.allocate(FundSplit(fund_id=fund_id, total_krw=total, shares_percent=SHARES), at=at)
    if step.kind == "tool":
        return _tool_grant(fund, step, at)
    application_id, tranche = step.args
    return fund.confirm_tranche_delivery(award_id=f"tool-{application_id}", tranche_number=tranche, actor=ADMIN, at=at)


def _tool_grant(fund: Fund, step: Step, at: datetime) -> list:
    application_id, amount, tranche_count = step.args
    vendor = VENDORS[int(application_id[-1]) % len(VENDORS)]
    applicant = Actor(f"dev-{vendor}", frozenset({"applicant"}), vendor)
    fund.submit_tool_application(application_id=application_id, vendor_id=vendor, title="Tool", requested_krw=max(amount, 1), actor=applicant, at=at)
    share, rest = divmod(amount, tranche_count)
    tranches = [TrancheTerms(f"deliverable {n}", share) for n in range(tranche_count)]
    tranches[-1] = TrancheTerms("final deliverable", share + rest)
    return fund.award_tool_grant(application_id=application_id, amount_krw=amount, tranches=tranches, actor=ADMIN, at=at)


def _requests_made(outcomes: list) -> list[str]:
    ids = []
    for outcome in outcomes:
        if isinstance(outcome, SubsidyChange) and not outcome.is_clawback:
            ids.append(outcome.award_id)
        elif isinstance(outcome, MilestoneCrossed):
            ids.append(outcome.milestone_id)
        elif isinstance(getattr(outcome, "request", None), PayoutRequest):
            ids.append(outcome.request.payout_id)
    return ids


def _assert_invariants(fund: Fund, requested: set[str], outcomes: list) -> None:
    ledger = fund.ledger
    ledger.check_invariants()

    for outcome in outcomes:
        if isinstance(outcome, Disbursed):
            assert not fund.suspensions.is_suspended(outcome.request.institution_id), outcome.request.payout_id

    for pool in POOLS:
        assert ledger.available(pool) >= 0
    for payout_id in requested:
        # Not lost: every payout ever requested is paid, pending, or cancelled by its clawback.
        assert ledger.payout_status(payout_id) is not None, payout_id
    for pending in ledger.pending_payouts():
        assert ledger.posting(pending.request.payout_id) is None
        if pending.status is PayoutStatus.HELD_SUSPENDED:
            assert fund.suspensions.is_suspended(pending.request.institution_id)
    for book in fund.subsidies.values():
        kept = [item for item in book.datasets.values() if not item.clawed_back]
        assert book.awarded_krw == min(fund.policy.subsidy.per_hospital_cap_krw, sum(item.target_krw for item in kept))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_steps(), min_size=10, max_size=80), repeats=st.lists(st.integers(0, 79), max_size=20))
def test_invariants_under_orders_and_duplicates(build, steps, repeats) -> None:  # type: ignore[no-untyped-def]
    # Duplicates are re-deliveries of steps already taken, inserted at random later positions.
    sequence = list(steps)
    for index in repeats:
        if index < len(steps):
            sequence.insert(min(len(sequence), index + 1 + index % 7), steps[index])
    fund = Fund(POLICY)
    requested: set[str] = set()

    for offset, step in enumerate(sequence):
        outcomes = _run(fund, build, step, T0 + timedelta(minutes=offset))
        requested.update(_requests_made(outcomes))
        _assert_invariants(fund, requested, outcomes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_steps().filter(lambda step: step.kind not in {"tool", "deliver"}), min_size=10, max_size=80))
def test_redelivering_every_event_changes_nothing(build, steps) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(POLICY)
    for offset, step in enumerate(steps):
        _run(fund, build, step, T0 + timedelta(minutes=offset))
    postings, pending = fund.ledger.postings, fund.ledger.pending_payouts()

    for offset, step in enumerate(steps):
        outcomes = _run(fund, build, step, T0 + timedelta(days=1, minutes=offset))
        assert [type(item).__name__ for item in outcomes if type(item).__name__ != "TransactionNotCounted"] == []

    assert fund.ledger.postings == postings
    assert [item.request for item in fund.ledger.pending_payouts()] == [item.request for item in pending]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_steps(), min_size=10, max_size=80))
def test_same_sequence_replays_to_same_ledger(build, steps) -> None:  # type: ignore[no-untyped-def]
    live, replayed = Fund(POLICY), Fund(POLICY)

    for fund in (live, replayed):
        for offset, step in enumerate(steps):
            _run(fund, build, step, T0 + timedelta(minutes=offset))

    assert live.ledger.postings == replayed.ledger.postings
    assert live.ledger.balances() == replayed.ledger.balances()
    assert [item.request for item in live.ledger.pending_payouts()] == [item.request for item in replayed.ledger.pending_payouts()]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_steps(), min_size=10, max_size=80), cut=st.integers(0, 80))
def test_snapshot_then_tail_equals_full_replay(build, steps, cut) -> None:  # type: ignore[no-untyped-def]
    cut = min(cut, len(steps))
    full, head = Fund(POLICY), Fund(POLICY)
    times = [T0 + timedelta(minutes=offset) for offset in range(len(steps))]
    for step, at in zip(steps, times):
        _run(full, build, step, at)
    for step, at in zip(steps[:cut], times[:cut]):
        _run(head, build, step, at)

    restored = load_fund(dump_fund(head), policy=POLICY, directory=head.directory)
    assert restored is not None
    for step, at in zip(steps[cut:], times[cut:]):
        _run(restored, build, step, at)

    assert restored.ledger.postings == full.ledger.postings
    assert restored.ledger.balances() == full.ledger.balances()
    assert restored.ledger.pending_payouts() == full.ledger.pending_payouts()
    assert restored.suspensions == full.suspensions
    assert restored.awards == full.awards
    restored.ledger.check_invariants()


_ample_event = _steps().filter(lambda step: step.kind not in {"tool", "deliver", "allocated"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_ample_event, min_size=10, max_size=80), shuffle=st.randoms(use_true_random=False))
def test_balances_independent_of_interleaving(build, steps, shuffle) -> None:  # type: ignore[no-untyped-def]
    # With the full 12 billion KRW fund no pool runs dry, and with every flag
    # cleared at the end nothing stays held, so only the per-partition order
    # (kept here, as Kafka keeps it) may influence the balances.
    closing = _clear_everything(steps)
    other_order = _interleave(steps, shuffle)
    funds = []

    for order in (steps, other_order):
        fund = Fund(POLICY)
        fund.allocate(at=T0)
        for offset, step in enumerate(order + closing):
            _run(fund, build, step, T0 + timedelta(minutes=offset))
        funds.append(fund)

    first, second = funds
    assert first.ledger.balances() == second.ledger.balances()
    assert first.ledger.pending_payouts() == second.ledger.pending_payouts() == ()
    for account, amount in first.ledger.balances().items():
        if account.kind is AccountKind.GRANTEE:
            assert amount == second.ledger.balance(Account.parse(account.code))


def _clear_everything(steps: list[Step]) -> list[Step]:
    closing = [Step("cleared", (f"flag-{n}",), f"flag-{n}") for n in range(4)]
    for step in steps:
        if step.kind == "overdue":
            closing.append(Step("acknowledged", step.args, step.partition))
    return closing


def _interleave(steps: list[Step], shuffle: random.Random) -> list[Step]:
    """Return another merge of the per-partition queues, each queue keeping its order."""
    queues: dict[str, list[Step]] = {}
    for step in steps:
        queues.setdefault(step.partition, []).append(step)
    merged = []
    while any(queues.values()):
        queue = shuffle.choice([queue for queue in queues.values() if queue])
        merged.append(queue.pop(0))
    return merged


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_steps(), min_size=10, max_size=80))
def test_pending_payouts_paid_when_money_arrives(build, steps) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(POLICY)
    for offset, step in enumerate(steps):
        _run(fund, build, step, T0 + timedelta(minutes=offset))

    end = T0 + timedelta(days=365)
    for step in _clear_everything(steps):
        _run(fund, build, step, end)
    fund.allocate(FundSplit(fund_id="top-up", total_krw=100_000_000_000, shares_percent=SHARES), at=end)

    assert fund.ledger.pending_payouts() == ()
    fund.ledger.check_invariants()
