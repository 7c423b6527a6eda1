"""Snapshots of the fund: what a restored fund keeps, and which snapshots are refused."""

import pickle
import sys
import zlib

from medgov_shared.contracts.institutions import get_institution

from medgov_grants.domain.fund import Fund
from medgov_grants.domain.policy import GrantsPolicy
from medgov_grants.snapshots import _CHUNK, dump_fund, load_fund, snapshot_format

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


def test_fund_larger_than_one_chunk_restores_equal(policy: GrantsPolicy, build) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)
    fund.allocate(at=T0)
    # More datasets than one pickle of the snapshot holds, at two hospitals, one of them withdrawn.
    for number in range(_CHUNK + 7):
        fund.apply(build.published(f"ds-snap-{number}", institution_id=("knuh", "dsmc")[number % 2]), at=T0, cause_id=f"evt-{number}")
    fund.apply(build.withdrawn("ds-snap-4", institution_id="knuh", at=T0), at=T0, cause_id="evt-withdrawn")

    restored = load_fund(dump_fund(fund), policy=policy, directory=get_institution)

    assert restored is not None
    assert sum(len(hospital.datasets) for hospital in restored.subsidies.values()) == _CHUNK + 7
    assert list(restored.subsidies["knuh"].datasets) == list(fund.subsidies["knuh"].datasets)
    assert restored == fund


def test_cut_short_or_padded_snapshot_refused(policy: GrantsPolicy, build) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)
    for number in range(_CHUNK + 1):
        fund.apply(build.published(f"ds-cut-{number}"), at=T0, cause_id=f"evt-{number}")
    whole = dump_fund(fund)
    stream = zlib.decompress(whole)

    assert load_fund(zlib.compress(stream[: len(stream) // 2]), policy=policy, directory=get_institution) is None
    assert load_fund(whole[:-10], policy=policy, directory=get_institution) is None
    assert load_fund(zlib.compress(stream + pickle.dumps([])), policy=policy, directory=get_institution) is None
    assert load_fund(whole, policy=policy, directory=get_institution) == fund
