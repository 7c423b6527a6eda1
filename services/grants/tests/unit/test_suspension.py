from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from medgov_grants.domain.suspension import (
    FlagRef,
    SuspensionChange,
    SuspensionRegistry,
    flag_cleared_by,
    flags_raised_by_overdue_exclusion,
    flags_raised_by_violation,
)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _raise(registry: SuspensionRegistry, refs: list[FlagRef]) -> list[SuspensionChange | None]:
    return [registry.raise_flag(ref, at=T0) for ref in refs]


def test_high_violation_suspends(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()

    changes = _raise(registry, flags_raised_by_violation(build.violation("flag-1")))

    assert changes == [SuspensionChange("knuh", True, T0)]
    assert registry.is_suspended("knuh")
    assert registry.open_flags("knuh") == ["catalog:flag-1"]


def test_low_and_medium_violations_do_not_suspend(build) -> None:  # type: ignore[no-untyped-def]
    assert flags_raised_by_violation(build.violation("flag-1", severity="low")) == []
    assert flags_raised_by_violation(build.violation("flag-2", severity="medium")) == []


def test_clearing_reinstates(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    _raise(registry, flags_raised_by_violation(build.violation("flag-1")))

    change = registry.clear_flag(flag_cleared_by(build.flag_cleared("flag-1")), at=T0)

    assert change == SuspensionChange("knuh", False, T0)
    assert not registry.is_suspended("knuh")


def test_every_open_flag_must_be_cleared(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    _raise(registry, flags_raised_by_violation(build.violation("flag-1")))
    _raise(registry, flags_raised_by_overdue_exclusion(build.exclusion_overdue("exc-1", "knuh")))

    change = registry.clear_flag(flag_cleared_by(build.flag_cleared("flag-1")), at=T0)

    assert change is None
    assert registry.open_flags("knuh") == ["exclusion:exc-1:knuh"]


def test_overdue_exclusion_flags_each_missing_institution(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    _raise(registry, flags_raised_by_overdue_exclusion(build.exclusion_overdue("exc-1", "vendor-medvision", "knuh")))

    change = registry.clear_flag(flag_cleared_by(build.exclusion_acknowledged("exc-1", "vendor-medvision")), at=T0)

    assert change == SuspensionChange("vendor-medvision", False, T0)
    assert registry.is_suspended("knuh")


def test_acknowledgement_of_other_exclusion_does_not_clear(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    _raise(registry, flags_raised_by_overdue_exclusion(build.exclusion_overdue("exc-1", "knuh")))

    registry.clear_flag(flag_cleared_by(build.exclusion_acknowledged("exc-2", "knuh")), at=T0)

    assert registry.is_suspended("knuh")


def test_clearance_before_flag_leaves_it_cleared(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    registry.clear_flag(flag_cleared_by(build.flag_cleared("flag-1")), at=T0)

    changes = _raise(registry, flags_raised_by_violation(build.violation("flag-1")))

    assert changes == [None]
    assert not registry.is_suspended("knuh")


def test_repeated_flag_changes_nothing(build) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    refs = flags_raised_by_violation(build.violation("flag-1"))
    _raise(registry, refs)

    assert _raise(registry, refs) == [None]
    assert registry.open_flags("knuh") == ["catalog:flag-1"]


_institutions = st.sampled_from(["knuh", "cnuh", "vendor-medvision"])


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["raise", "clear"]), st.integers(1, 5), _institutions),
        max_size=40,
    )
)
def test_suspended_iff_some_flag_raised_and_not_cleared(steps) -> None:  # type: ignore[no-untyped-def]
    registry = SuspensionRegistry()
    owner: dict[str, str] = {}
    raised, cleared = set(), set()

    for action, number, institution in steps:
        key = f"catalog:flag-{number}"
        owner.setdefault(key, institution)
        if action == "raise":
            registry.raise_flag(FlagRef(owner[key], key), at=T0)
            raised.add(key)
        else:
            registry.clear_flag(key, at=T0)
            cleared.add(key)

    for institution in ["knuh", "cnuh", "vendor-medvision"]:
        expected = any(owner[key] == institution for key in raised - cleared)
        assert registry.is_suspended(institution) is expected
