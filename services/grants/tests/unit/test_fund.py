from datetime import UTC, datetime, timedelta

import pytest

from medgov_grants.domain.errors import ConflictingPosting, UnknownInstitution
from medgov_grants.domain.fund import Allocation, Fund, TransactionNotCounted
from medgov_grants.domain.ledger import (
    Account,
    PayoutStatus,
)
from medgov_grants.domain.milestones import CountResult
from medgov_grants.domain.policy import FundSplit
from medgov_shared.contracts.events.grants import FundAllocated
from medgov_shared.contracts.events.review import AccessExpired

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _types(outcomes: list) -> list[str]:
    return [type(item).__name__ for item in outcomes]


def _grant_applications(fund: Fund, build, count: int, *, holder: str = "knuh") -> list:  # type: ignore[no-untyped-def]
    outcomes = []
    for number in range(1, count + 1):
        outcomes += fund.apply(build.access_granted(f"app-{holder}-{number}", holder=holder), at=T0)
    return outcomes


def test_allocation_splits_default_fund(policy) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)

    outcomes = fund.allocate(at=T0)

    assert _types(outcomes) == ["Allocation"]
    assert outcomes[0].pools_krw == {"cataloging": 4_800_000_000, "anonymization_tools": 3_600_000_000, "milestones": 3_600_000_000}
    assert fund.ledger.balance(Account.funding("medgov-fund-2026")) == -12_000_000_000


def test_allocating_twice_changes_nothing(fund) -> None:  # type: ignore[no-untyped-def]
    assert fund.allocate(at=T0 + timedelta(days=1)) == []
    assert len(fund.ledger.postings) == 1


def test_same_fund_id_with_other_amounts_rejected(fund) -> None:  # type: ignore[no-untyped-def]
    other = FundSplit(fund_id="medgov-fund-2026", total_krw=1_000, shares_percent={"cataloging": 40, "anonymization_tools": 30, "milestones": 30})

    with pytest.raises(ConflictingPosting):
        fund.allocate(other, at=T0)
    assert fund.ledger.available("cataloging") == 4_800_000_000


def test_consumed_fund_allocated_event_allocates(policy) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)
    event = FundAllocated(
        fund_id="medgov-fund-2026",
        total_krw=12_000_000_000,
        pools_krw={"cataloging": 4_800_000_000, "anonymization_tools": 3_600_000_000, "milestones": 3_600_000_000},
        allocated_at=T0,
    )

    outcomes = fund.apply(event, at=T0)

    assert isinstance(outcomes[0], Allocation)
    assert fund.ledger.available("milestones") == 3_600_000_000


def test_published_dataset_is_paid(fund, build, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    event = build.published_sample("ds-knuh-bulk", sample_datasets["synthea-bulk-export"])

    outcomes = fund.apply(event, at=T0)

    assert _types(outcomes) == ["SubsidyChange", "Disbursed"]
    assert outcomes[1].request.amount_krw == 10_608_000
    assert fund.ledger.balance(Account.grantee("cataloging", "knuh")) == 10_608_000
    assert fund.ledger.available("cataloging") == 4_800_000_000 - 10_608_000


def test_partner_publication_earns_no_subsidy(fund, build) -> None:  # type: ignore[no-untyped-def]
    outcomes = fund.apply(build.published("ds-dgmif-1", institution_id="dgmif"), at=T0)

    assert outcomes == []
    assert fund.ledger.available("cataloging") == 4_800_000_000


def test_unknown_publisher_moves_no_money(fund, build) -> None:  # type: ignore[no-untyped-def]
    event = build.published("ds-x-1").model_copy(update={"institution_id": "nowhere"})

    with pytest.raises(UnknownInstitution, match="'nowhere'"):
        fund.apply(event, at=T0)
    assert len(fund.ledger.postings) == 1


def test_unknown_holder_rejected(fund, build) -> None:  # type: ignore[no-untyped-def]
    event = build.access_granted("app-1").model_copy(update={"holder_institution": "nowhere"})

    with pytest.raises(UnknownInstitution):
        fund.apply(event, at=T0)
    assert fund.counters == {}


def test_clawback_returns_paid_subsidy_to_pool(fund, build) -> None:  # type: ignore[no-untyped-def]
    fund.apply(build.published("ds-1"), at=T0)

    outcomes = fund.apply(build.withdrawn("ds-1", at=T0 + timedelta(days=10)), at=T0 + timedelta(days=10))

    assert _types(outcomes) == ["SubsidyChange", "Clawback"]
    assert outcomes[0].amount_krw == -10_608_000
    assert outcomes[1].posting.posting_id == "sub-ds-1-clawback"
    assert fund.ledger.balance(Account.grantee("cataloging", "knuh")) == 0
    assert fund.ledger.available("cataloging") == 4_800_000_000
    fund.ledger.check_invariants()


def test_clawback_of_unpaid_subsidy_cancels_it(policy, build) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)
    fund.apply(build.published("ds-1"), at=T0)

    outcomes = fund.apply(build.withdrawn("ds-1", at=T0 + timedelta(days=1)), at=T0 + timedelta(days=1))

    assert _types(outcomes) == ["SubsidyChange", "PayoutCancelled"]
    assert fund.ledger.postings == ()
    assert fund.ledger.payout_status("sub-ds-1-1") is PayoutStatus.CANCELLED


def test_payout_before_allocation_waits(policy, build) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)

    waiting = fund.apply(build.published("ds-1"), at=T0)
    allocated = fund.allocate(at=T0 + timedelta(hours=1))

    assert _types(waiting) == ["SubsidyChange", "PayoutWaiting"]
    assert waiting[1].available_krw == 0
    assert _types(allocated) == ["Allocation", "Disbursed"]
    assert allocated[1].posting.posted_at == T0 + timedelta(hours=1)


def test_exhausted_pool_pays_after_clawback(shrink_policy, build) -> None:  # type: ignore[no-untyped-def]
    # 40% of 50,000,000 KRW leaves 20,000,000 KRW for subsidies: room for one 10,608,000 KRW award, not two.
    fund = Fund(shrink_policy(50_000_000))
    fund.allocate(at=T0)
    fund.apply(build.published("ds-1"), at=T0)

    waiting = fund.apply(build.published("ds-2", institution_id="cnuh"), at=T0)
    released = fund.apply(build.withdrawn("ds-1", at=T0 + timedelta(days=1)), at=T0 + timedelta(days=1))

    assert _types(waiting) == ["SubsidyChange", "PayoutWaiting"]
    assert (waiting[1].request.amount_krw, waiting[1].available_krw) == (10_608_000, 9_392_000)
    assert _types(released) == ["SubsidyChange", "Clawback", "Disbursed"]
    assert released[2].request.institution_id == "cnuh"
    assert fund.ledger.available("cataloging") == 9_392_000
    fund.ledger.check_invariants()


def test_tenth_transaction_pays_milestone(fund, build) -> None:  # type: ignore[no-untyped-def]
    outcomes = _grant_applications(fund, build, 10)

    assert _types(outcomes) == ["MilestoneCrossed", "Disbursed"]
    assert outcomes[1].request.payout_id == "ms-knuh-10"
    assert fund.ledger.balance(Account.grantee("milestones", "knuh")) == 50_000_000


def test_self_dealing_reported_not_counted(fund, build) -> None:  # type: ignore[no-untyped-def]
    outcomes = fund.apply(build.access_granted("app-1", holder="knuh", grantee="knuh"), at=T0)

    assert outcomes == [TransactionNotCounted("app-1", "knuh", CountResult.SELF_DEALING)]


def test_suspended_milestone_held_until_cleared(fund, build) -> None:  # type: ignore[no-untyped-def]
    fund.apply(build.violation("flag-1"), at=T0)

    held = _grant_applications(fund, build, 10)
    released = fund.apply(build.flag_cleared("flag-1"), at=T0 + timedelta(days=2))

    assert _types(held) == ["MilestoneCrossed", "PayoutHeld"]
    assert _types(released) == ["SuspensionChange", "Disbursed"]
    assert released[1].posting.posted_at == T0 + timedelta(days=2)


def test_suspension_does_not_hold_other_institutions(fund, build) -> None:  # type: ignore[no-untyped-def]
    fund.apply(build.violation("flag-1", institution_id="cnuh"), at=T0)

    outcomes = fund.apply(build.published("ds-1"), at=T0)

    assert _types(outcomes) == ["SubsidyChange", "Disbursed"]


def test_clawback_during_suspension_cancels_held_subsidy(fund, build) -> None:  # type: ignore[no-untyped-def]
    fund.apply(build.violation("flag-1"), at=T0)
    fund.apply(build.published("ds-1"), at=T0)

    outcomes = fund.apply(build.withdrawn("ds-1", at=T0 + timedelta(days=1)), at=T0 + timedelta(days=1))
    cleared = fund.apply(build.flag_cleared("flag-1"), at=T0 + timedelta(days=2))

    assert _types(outcomes) == ["SubsidyChange", "PayoutCancelled"]
    assert _types(cleared) == ["SuspensionChange"]
    assert fund.ledger.available("cataloging") == 4_800_000_000


def test_unrelated_event_types_ignored(fund, build) -> None:  # type: ignore[no-untyped-def]
    event = AccessExpired(application_id="app-1", grant_id="grant-1", expired_at=T0)

    assert fund.apply(event, at=T0) == []


def test_same_events_rebuild_same_ledger(policy, build, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    events = [
        build.published_sample("ds-bulk", sample_datasets["synthea-bulk-export"]),
        build.published_sample("ds-dicom", sample_datasets["dicom-fileset"], institution_id="cnuh", completeness_score=73),
        build.violation("flag-9", institution_id="cnuh"),
        *(build.access_granted(f"app-{n}", holder="cnuh", grantee="vendor-lunapath") for n in range(12)),
        build.withdrawn("ds-bulk", at=T0 + timedelta(days=5)),
        build.flag_cleared("flag-9", institution_id="cnuh"),
    ]

    first, second = Fund(policy), Fund(policy)
    for fund in (first, second):
        fund.allocate(at=T0)
        for offset, event in enumerate(events):
            fund.apply(event, at=T0 + timedelta(minutes=offset), cause_id=f"evt-{offset}")

    assert first.ledger.postings == second.ledger.postings
    assert first.ledger.balances() == second.ledger.balances()
    assert first.ledger.balance(Account.grantee("milestones", "cnuh")) == 50_000_000
    assert first.ledger.balance(Account.grantee("cataloging", "cnuh")) == 4_102_000

