"""DUO code normalization and the purpose hierarchy."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_consent.domain import duo

PURPOSES = ["NRES", "GRU", "HMB", "POA", "DS", "DS:MONDO_0005148", "DS:MONDO_0004992"]


@pytest.mark.parametrize(
    ("code", "shorthand"),
    [
        ("HMB", "HMB"),
        ("hmb", "HMB"),
        ("DUO:0000042", "GRU"),
        ("DUO_0000006", "HMB"),
        ("DUO:0000046", "NCU"),
        ("DS:MONDO_0005148", "DS:MONDO_0005148"),
        ("RS:oncology", "RS:oncology"),
    ],
)
def test_normalize(code: str, shorthand: str) -> None:
    assert duo.normalize(code) == shorthand


@pytest.mark.parametrize("code", ["DUO:0000999", "XYZ", "", "HMB:cancer"])
def test_normalize_rejects(code: str) -> None:
    with pytest.raises(duo.UnknownDuoCode):
        duo.normalize(code)


@pytest.mark.parametrize(
    ("permitted", "requested", "expected"),
    [
        ("GRU", "HMB", True),
        ("GRU", "POA", True),
        ("GRU", "DS:MONDO_0005148", True),
        ("HMB", "DS:MONDO_0005148", True),
        ("HMB", "POA", False),
        ("HMB", "GRU", False),
        ("POA", "HMB", False),
        ("DS:MONDO_0005148", "DS:MONDO_0004992", False),
        ("DS", "DS:MONDO_0005148", False),
        ("NRES", "GRU", True),
        ("GRU", "NRES", False),
    ],
)
def test_covers(permitted: str, requested: str, expected: bool) -> None:
    assert duo.covers(permitted, requested) is expected


def test_split_codes() -> None:
    purposes, modifiers = duo.split_codes(["HMB", "DUO:0000046", "IRB", "DS:MONDO_0005148"])

    assert purposes == frozenset({"HMB", "DS:MONDO_0005148"})
    assert modifiers == frozenset({"NCU", "IRB"})


def test_request_without_purpose_is_general() -> None:
    assert duo.requested_purposes(["NCU"]) == frozenset({"GRU"})


def test_purpose_condition_for_profit() -> None:
    non_commercial = duo.PurposeCondition.from_codes(["HMB", "NCU"])

    assert non_commercial.permits(frozenset({"HMB"}), for_profit=False) is True
    assert non_commercial.permits(frozenset({"HMB"}), for_profit=True) is False


def test_obligation_modifiers_do_not_restrict() -> None:
    condition = duo.PurposeCondition.from_codes(["HMB", "IRB", "PUB"])

    assert condition.excludes_for_profit is False
    assert condition.permits(frozenset({"HMB"}), for_profit=True) is True


@given(st.sampled_from(PURPOSES))
def test_covers_reflexive(purpose: str) -> None:
    assert duo.covers(purpose, purpose)


@given(st.sampled_from(PURPOSES), st.sampled_from(PURPOSES), st.sampled_from(PURPOSES))
def test_covers_transitive(first: str, second: str, third: str) -> None:
    if duo.covers(first, second) and duo.covers(second, third):
        assert duo.covers(first, third)


@given(st.sampled_from(PURPOSES), st.sampled_from(PURPOSES))
def test_overlaps_symmetric(first: str, second: str) -> None:
    assert duo.overlaps(first, second) == duo.overlaps(second, first)


@given(st.frozensets(st.sampled_from(PURPOSES), min_size=1), st.frozensets(st.sampled_from(PURPOSES), min_size=1))
def test_permit_implies_deny_reach(condition_purposes: frozenset[str], requested: frozenset[str]) -> None:
    condition = duo.PurposeCondition(purposes=condition_purposes)

    if condition.permits(requested, for_profit=False):
        assert condition.denies(requested)


@given(
    st.one_of(st.none(), st.frozensets(st.sampled_from(PURPOSES), min_size=1)),
    st.one_of(st.none(), st.frozensets(st.sampled_from(PURPOSES), min_size=1)),
    st.sampled_from(PURPOSES),
)
def test_intersect_is_meet(first: frozenset[str] | None, second: frozenset[str] | None, requested: str) -> None:
    """A purpose is within the intersection exactly when it is within both sets."""
    both = duo.intersect(first, second)

    def within(purposes: frozenset[str] | None) -> bool:
        return purposes is None or any(duo.covers(item, requested) for item in purposes)

    assert within(both) == (within(first) and within(second))
