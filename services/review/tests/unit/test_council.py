"""The governance council: rotating chair, terms as data, the chair on any date."""

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_shared.contracts.types import Region

from medgov_review.domain.council import CouncilRotation, NoCouncilTerm
from medgov_review.domain.governance import Governance

pytestmark = pytest.mark.timesensitive

ROTATION = (Region.DAEGU, Region.DAEJEON, Region.GWANGJU)


@pytest.mark.parametrize(
    ("day", "chair"),
    [
        (date(2026, 1, 1), Region.DAEGU),
        (date(2026, 12, 31), Region.DAEGU),
        (date(2027, 1, 1), Region.DAEJEON),
        (date(2028, 6, 30), Region.GWANGJU),
        (date(2029, 1, 1), Region.DAEGU),
        (date(2036, 3, 1), Region.DAEJEON),
    ],
)
def test_packaged_rotation_chairs(governance: Governance, day: date, chair: Region) -> None:
    assert governance.council.chair_on(day) is chair


def test_chair_at_uses_korean_date(governance: Governance) -> None:
    # 15:00 UTC on 31 December is already 1 January in Korea.
    assert governance.council.chair_at(datetime(2026, 12, 31, 14, 59, tzinfo=UTC)) is Region.DAEGU
    assert governance.council.chair_at(datetime(2026, 12, 31, 15, 0, tzinfo=UTC)) is Region.DAEJEON


def test_date_before_first_term_has_no_chair(governance: Governance) -> None:
    with pytest.raises(NoCouncilTerm, match="first term starts 2026-01-01"):
        governance.council.chair_on(date(2025, 12, 31))


def test_half_year_terms_from_mid_month() -> None:
    council = CouncilRotation(ROTATION, date(2026, 3, 15), 6)

    term = council.term_on(date(2026, 9, 14))
    following = council.term_on(date(2026, 9, 15))

    assert (term.number, term.chair_region, term.starts_on, term.ends_before) == (
        1,
        Region.DAEGU,
        date(2026, 3, 15),
        date(2026, 9, 15),
    )
    assert (following.number, following.chair_region) == (2, Region.DAEJEON)
    assert council.chair_on(date(2027, 9, 15)) is Region.DAEGU


@pytest.mark.parametrize(
    ("rotation", "start", "months", "message"),
    [
        ((), date(2026, 1, 1), 12, "rotation is empty"),
        ((Region.DAEGU, Region.DAEGU), date(2026, 1, 1), 12, "names a region twice"),
        (ROTATION, date(2026, 1, 1), 0, "term_months must be positive"),
        (ROTATION, date(2026, 1, 31), 12, "day 1-28"),
    ],
)
def test_invalid_rotation_is_rejected(rotation: tuple[Region, ...], start: date, months: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CouncilRotation(rotation, start, months)


@given(
    st.permutations(ROTATION),
    st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 28)).filter(lambda item: item.day <= 28),
    st.integers(1, 24),
    st.integers(0, 40 * 366),
)
def test_terms_tile_the_calendar(rotation: list[Region], first: date, months: int, offset: int) -> None:
    council = CouncilRotation(tuple(rotation), first, months)
    day = first + timedelta(days=offset)

    term = council.term_on(day)
    following = council.term_on(term.ends_before)

    assert term.starts_on <= day < term.ends_before
    assert term.chair_region is rotation[(term.number - 1) % len(rotation)]
    assert council.term_on(term.starts_on) == term
    assert council.term_on(term.ends_before - timedelta(days=1)) == term
    assert following.number == term.number + 1
    assert following.starts_on == term.ends_before
