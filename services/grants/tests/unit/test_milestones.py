from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medgov_grants.domain.milestones import CountResult, DataTransaction, TransactionCounter
from medgov_grants.domain.policy import GrantsPolicy, default_policy

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _transaction(build, application_id: str, **kwargs) -> DataTransaction:  # type: ignore[no-untyped-def]
    return DataTransaction.from_access_granted(build.access_granted(application_id, **kwargs), at=T0)


def test_tenth_application_reaches_first_milestone(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")
    for number in range(1, 10):
        assert counter.record(_transaction(build, f"app-{number}"), policy.milestones) == (CountResult.COUNTED, [])

    result, crossed = counter.record(_transaction(build, "app-10"), policy.milestones)

    assert result is CountResult.COUNTED
    assert [(item.milestone.transactions, item.transactions_counted, item.milestone_id) for item in crossed] == [
        (10, 10, "ms-knuh-10")
    ]
    assert crossed[0].milestone.amount_krw == 50_000_000


def test_second_dataset_of_same_application_not_counted(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")
    counter.record(_transaction(build, "app-1", dataset_id="ds-knuh-ct-0001"), policy.milestones)

    result, _ = counter.record(_transaction(build, "app-1", dataset_id="ds-knuh-mr-0002"), policy.milestones)

    assert result is CountResult.DUPLICATE
    assert counter.count == 1


def test_redelivered_grant_not_counted(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")
    transaction = _transaction(build, "app-1", grant_id="grant-1")
    counter.record(transaction, policy.milestones)

    assert counter.record(transaction, policy.milestones) == (CountResult.DUPLICATE, [])
    assert counter.count == 1


def test_self_dealing_not_counted(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")

    result, crossed = counter.record(_transaction(build, "app-1", grantee="knuh"), policy.milestones)

    assert (result, crossed, counter.count) == (CountResult.SELF_DEALING, [], 0)


def test_counter_rejects_other_holder(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")

    with pytest.raises(ValueError, match="holder 'cnuh'"):
        counter.record(_transaction(build, "app-1", holder="cnuh"), policy.milestones)


def test_milestone_added_later_is_reached_on_next_count(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")
    for number in range(1, 13):
        counter.record(_transaction(build, f"app-{number}"), policy.milestones)
    data = default_policy().model_dump()
    data["milestones"] = [{"transactions": 5, "amount_krw": 1_000_000}, *data["milestones"]["milestones"]]
    extended = GrantsPolicy.from_mapping(data).milestones

    _, crossed = counter.record(_transaction(build, "app-13"), extended)

    assert [item.milestone.transactions for item in crossed] == [5]


def test_all_three_milestones_over_100_applications(build, policy) -> None:  # type: ignore[no-untyped-def]
    counter = TransactionCounter("knuh")
    reached = []

    for number in range(1, 101):
        reached += counter.record(_transaction(build, f"app-{number}"), policy.milestones)[1]

    assert [(item.milestone.transactions, item.transactions_counted) for item in reached] == [(10, 10), (50, 50), (100, 100)]


@settings(max_examples=200, deadline=None)
@given(
    grants=st.lists(
        st.tuples(st.integers(1, 60), st.sampled_from(["vendor-medvision", "vendor-lunapath", "knuh"])),
        max_size=150,
    ),
)
def test_count_is_distinct_applications(build, grants) -> None:  # type: ignore[no-untyped-def]
    table = default_policy().milestones
    counter = TransactionCounter("knuh")
    crossed = []
    # A given application always has the same grantee, as in the review service.
    grantee_of = {}

    for application, grantee in grants:
        grantee_of.setdefault(application, grantee)
        transaction = _transaction(build, f"app-{application}", grantee=grantee_of[application])
        crossed += counter.record(transaction, table)[1]

    counted = {application for application, grantee in grantee_of.items() if grantee != "knuh"}
    assert counter.count == len(counted)
    assert sorted(item.milestone.transactions for item in crossed) == [
        item.transactions for item in table.milestones if item.transactions <= len(counted)
    ]
    assert all(item.transactions_counted == item.milestone.transactions for item in crossed)
