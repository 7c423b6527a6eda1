"""DUO code normalization and the purpose hierarchy."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_consent.domain import duo

PURPOSES = ["NRES", "GRU", "HMB", "POA", "DS", "DS:MONDO_0005148", "DS:MONDO_0004992"]
# Well-formed DUO ids that duo.py does not list, as grants and dataset terms may carry them.
UNLISTED = ["DUO:0000001", "DUO:0000999"]


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


@pytest.mark.parametrize("code", ["DUO:0000999", "duo_0000999", " DUO:0000999 "])
def test_normalize_decided_keeps_unlisted_id(code: str) -> None:
    assert duo.normalize_decided(code) == "DUO:0000999"


@pytest.mark.parametrize("code", ["DUO:123", "XYZ", "", "HMB:cancer"])
def test_normalize_decided_rejects_malformed(code: str) -> None:
    with pytest.raises(duo.UnknownDuoCode):
        duo.normalize_decided(code)


def test_split_codes_rejects_unlisted_by_default() -> None:
    with pytest.raises(duo.UnknownDuoCode, match="DUO:0000999"):
        duo.split_codes(["HMB", "DUO:0000999"])


def test_unlisted_id_counts_as_purpose() -> None:
    purposes, modifiers = duo.split_codes(["NCU", "DUO:0000999"], keep_unlisted=True)

    assert purposes == frozenset({"DUO:0000999"})
    assert modifiers == frozenset({"NCU"})


@pytest.mark.parametrize(
    ("permitted", "expected"),
    [("NRES", True), ("DUO:0000999", True), ("GRU", False), ("HMB", False), ("DUO:0000001", False)],
)
def test_only_nres_covers_unlisted(permitted: str, expected: bool) -> None:
    assert duo.covers(permitted, "DUO:0000999") is expected


@pytest.mark.parametrize("denied", ["GRU", "HMB", "POA", "DS:MONDO_0005148", "NRES"])
def test_every_deny_reaches_unlisted(denied: str) -> None:
    assert duo.PurposeCondition(purposes=frozenset({denied})).denies(frozenset({"DUO:0000999"}))


def test_dataset_terms_keep_unlisted_id() -> None:
    terms = duo.PurposeCondition.from_codes(["HMB", "DUO:0000999"])

    assert terms.purposes == frozenset({"HMB", "DUO:0000999"})
    assert terms.permits(frozenset({"HMB"}), for_profit=False) is True
    assert terms.permits(frozenset({"DUO:0000001"}), for_profit=False) is False


@given(st.sampled_from(PURPOSES + UNLISTED))
def test_covers_reflexive(purpose: str) -> None:
    assert duo.covers(purpose, purpose)


@given(st.sampled_from(PURPOSES + UNLISTED), st.sampled_from(PURPOSES + UNLISTED), st.sampled_from(PURPOSES + UNLISTED))
def test_covers_transitive(first: str, second: str, third: str) -> None:
    if duo.covers(first, second) and duo.covers(second, third):
        assert duo.covers(first, third)


@given(st.sampled_from(PURPOSES + UNLISTED), st.sampled_from(PURPOSES + UNLISTED))
def test_overlaps_symmetric(first: str, second: str) -> None:
    assert duo.overlaps(first, second) == duo.overlaps(second, first)


@given(
    st.frozensets(st.sampled_from(PURPOSES + UNLISTED), min_size=1),
    st.frozensets(st.sampled_from(PURPOSES + UNLISTED), min_size=1),
)
def test_permit_implies_deny_reach(condition_purposes: frozenset[str], requested: frozenset[str]) -> None:
    condition = duo.PurposeCondition(purposes=condition_purposes)

    if condition.permits(requested, for_profit=False):
        assert condition.denies(requested)


@given(
    st.one_of(st.none(), st.frozensets(st.sampled_from(PURPOSES + UNLISTED), min_size=1)),
    st.one_of(st.none(), st.frozensets(st.sampled_from(PURPOSES + UNLISTED), min_size=1)),
    st.sampled_from(PURPOSES + UNLISTED),
)
def test_intersect_is_meet(first: frozenset[str] | None, second: frozenset[str] | None, requested: str) -> None:
    """A purpose is within the intersection exactly when it is within both sets."""
    both = duo.intersect(first, second)

    def within(purposes: frozenset[str] | None) -> bool:
        return purposes is None or any(duo.covers(item, requested) for item in purposes)

    assert within(both) == (within(first) and within(second))
