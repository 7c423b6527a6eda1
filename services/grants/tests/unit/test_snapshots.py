"""Snapshots of the fund: what a restored fund keeps, and which snapshots are refused."""

import sys

from medgov_shared.contracts.institutions import get_institution

from medgov_grants.domain.fund import Fund
from medgov_grants.domain.policy import GrantsPolicy
from medgov_grants.snapshots import dump_fund, load_fund, snapshot_format

from .conftest import T0


def _other_directory(institution_id: str):  # type: ignore[no-untyped-def]
    return get_institution(institution_id)


def test_restored_fund_keeps_ledger(policy: GrantsPolicy, build) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)
    fund.allocate(at=T0)
    fund.apply(build.published("ds-snap-1"), at=T0, cause_id="evt-1")

    restored = load_fund(dump_fund(fund), policy=policy, directory=_other_directory)

    assert restored is not None
    assert restored.ledger.postings == fund.ledger.postings
    assert restored.ledger.balances() == fund.ledger.balances()
    assert restored.subsidies == fund.subsidies
    assert restored.directory is _other_directory


def test_dump_leaves_directory_in_place(policy: GrantsPolicy) -> None:
    fund = Fund(policy, directory=_other_directory)

    dump_fund(fund)

    assert fund.directory is _other_directory


def test_snapshot_of_other_policy_refused(policy: GrantsPolicy) -> None:
    fund = Fund(policy)
    fund.allocate(at=T0)
    data = policy.model_dump()
    data["subsidy"]["per_hospital_cap_krw"] = 1_000_000
    changed = GrantsPolicy.from_mapping(data)

    assert load_fund(dump_fund(fund), policy=changed, directory=get_institution) is None


def test_format_names_python_and_source() -> None:
    version = f"py{sys.version_info.major}.{sys.version_info.minor}"

    assert version in snapshot_format()
    assert snapshot_format() == snapshot_format()
    assert len(snapshot_format().rsplit("-", 1)[1]) == 16


def test_unreadable_snapshot_refused(policy: GrantsPolicy) -> None:
    assert load_fund(b"not a pickle", policy=policy, directory=get_institution) is None
