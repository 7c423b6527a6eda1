import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_grants.domain.errors import PolicyError
from medgov_grants.domain.policy import GrantsPolicy, default_policy


def _policy_data() -> dict:
    return default_policy().model_dump()


def test_default_fund_split(policy: GrantsPolicy) -> None:
    pools = policy.fund.pools_krw()

    assert pools == {"cataloging": 4_800_000_000, "anonymization_tools": 3_600_000_000, "milestones": 3_600_000_000}
    assert sum(pools.values()) == 12_000_000_000


def test_split_remainder_goes_to_largest_share() -> None:
    data = _policy_data()
    data["fund"]["total_krw"] = 100_000_002

    pools = GrantsPolicy.from_mapping(data).fund.pools_krw()

    assert pools == {"cataloging": 40_000_002, "anonymization_tools": 30_000_000, "milestones": 30_000_000}


@given(total=st.integers(min_value=1, max_value=10**15), first=st.integers(0, 100), second=st.integers(0, 100))
def test_split_never_loses_a_won(total: int, first: int, second: int) -> None:
    if first + second > 100:
        first, second = 100 - second, 100 - first
    data = _policy_data()
    data["fund"]["total_krw"] = total
    data["fund"]["shares_percent"] = {"cataloging": first, "anonymization_tools": second, "milestones": 100 - first - second}

    pools = GrantsPolicy.from_mapping(data).fund.pools_krw()

    assert sum(pools.values()) == total
    assert all(amount >= 0 for amount in pools.values())


def test_shares_must_sum_to_100() -> None:
    data = _policy_data()
    data["fund"]["shares_percent"]["milestones"] = 20

    with pytest.raises(PolicyError, match="shares_percent.*sums to 90"):
        GrantsPolicy.from_mapping(data)


def test_every_pool_needs_a_share() -> None:
    data = _policy_data()
    del data["fund"]["shares_percent"]["milestones"]

    with pytest.raises(PolicyError, match="lacks pools \\['milestones'\\]"):
        GrantsPolicy.from_mapping(data)


def test_fractional_fund_size_rejected() -> None:
    data = _policy_data()
    data["fund"]["total_krw"] = 1.5

    with pytest.raises(PolicyError, match="fund.total_krw"):
        GrantsPolicy.from_mapping(data)


def test_milestones_must_ascend() -> None:
    data = _policy_data()
    data["milestones"] = [{"transactions": 50, "amount_krw": 1}, {"transactions": 10, "amount_krw": 1}]

    with pytest.raises(PolicyError, match="unique and ascending"):
        GrantsPolicy.from_mapping(data)


def test_subsidy_formula_on_bulk_export(policy: GrantsPolicy, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    records = sample_datasets["synthea-bulk-export"].record_count

    amount = policy.subsidy.amount_for(85, records)

    # (5,000,000 + 20,000 * 374) * 85 / 100 = 10,608,000
    assert records == 374
    assert amount == 10_608_000


def test_subsidy_rounds_down_to_unit(policy: GrantsPolicy, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    records = sample_datasets["dicom-fileset"].record_count

    amount = policy.subsidy.amount_for(73, records)

    # (5,000,000 + 20,000 * 31) * 73 / 100 = 4,102,600, rounded down to 4,102,000
    assert records == 31
    assert amount == 4_102_000


def test_subsidy_zero_below_min_completeness(policy: GrantsPolicy) -> None:
    assert policy.subsidy.amount_for(policy.subsidy.min_completeness - 1, 1000) == 0
    assert policy.subsidy.amount_for(policy.subsidy.min_completeness, 1000) > 0


def test_subsidy_zero_without_records(policy: GrantsPolicy) -> None:
    assert policy.subsidy.amount_for(100, 0) == 0


def test_subsidy_counts_records_up_to_limit(policy: GrantsPolicy) -> None:
    limit = policy.subsidy.max_records_counted

    assert policy.subsidy.amount_for(100, limit) == policy.subsidy.amount_for(100, limit * 10)
    assert policy.subsidy.amount_for(100, limit) == 105_000_000


@given(
    score=st.integers(0, 100),
    records=st.integers(0, 50_000),
    more_score=st.integers(0, 10),
    more_records=st.integers(0, 5_000),
)
def test_subsidy_monotone_and_bounded(score: int, records: int, more_score: int, more_records: int) -> None:
    subsidy = default_policy().subsidy
    better_score = min(100, score + more_score)

    amount = subsidy.amount_for(score, records)

    assert amount == subsidy.amount_for(score, records)
    assert amount <= subsidy.amount_for(better_score, records + more_records)
    assert amount % subsidy.rounding_unit_krw == 0
    assert 0 <= amount <= subsidy.amount_for(100, subsidy.max_records_counted)


def test_milestones_reached_by_count(policy: GrantsPolicy) -> None:
    assert [item.transactions for item in policy.milestones.reached_by(9)] == []
    assert [item.transactions for item in policy.milestones.reached_by(50)] == [10, 50]
    assert [item.transactions for item in policy.milestones.reached_by(1000)] == [10, 50, 100]
