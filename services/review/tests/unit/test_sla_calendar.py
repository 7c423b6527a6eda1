"""The SLA calendar: which days count, counted time between instants, and deadlines."""

from datetime import UTC, date, datetime, timedelta

import pytest

from medgov_review.domain.sla import KST, DayCount, SlaCalendar, korean_public_holidays

pytestmark = pytest.mark.timesensitive

BUSINESS = SlaCalendar(DayCount.BUSINESS)
CALENDAR = SlaCalendar(DayCount.CALENDAR)


def kst(*args: int) -> datetime:
    return datetime(*args, tzinfo=KST)  # type: ignore[misc]


def test_holidays_include_substitute_and_election_days() -> None:
    holidays_2026 = korean_public_holidays(2026)

    assert date(2026, 2, 17) in holidays_2026  # Seollal
    assert date(2026, 3, 2) in holidays_2026  # substitute for 1 March, a Sunday
    assert date(2026, 6, 3) in holidays_2026  # local election day
    assert date(2026, 9, 25) in holidays_2026  # Chuseok
    assert date(2026, 10, 5) in holidays_2026  # substitute for 3 October, a Saturday
    assert date(2026, 12, 24) not in holidays_2026


@pytest.mark.parametrize(
    ("day", "counts"),
    [
        (date(2026, 12, 4), True),  # Friday
        (date(2026, 12, 5), False),  # Saturday
        (date(2026, 12, 6), False),  # Sunday
        (date(2026, 12, 25), False),  # Christmas, a Friday
        (date(2027, 2, 9), False),  # substitute holiday for Seollal, a Tuesday
        (date(2027, 2, 10), True),
    ],
)
def test_business_calendar_counts_weekdays_without_holidays(day: date, counts: bool) -> None:
    assert BUSINESS.counts(day) is counts


def test_calendar_days_count_every_day() -> None:
    assert all(CALENDAR.counts(date(2026, 12, 20) + timedelta(days=offset)) for offset in range(14))


def test_weekend_adds_no_time() -> None:
    used = BUSINESS.counted_time(kst(2026, 12, 4, 9), kst(2026, 12, 7, 9))

    assert used == timedelta(days=1)


def test_seollal_adds_no_time() -> None:
    # Friday 13 February 2026 to Thursday 19 February: Monday to Wednesday are Seollal.
    used = BUSINESS.counted_time(kst(2026, 2, 13), kst(2026, 2, 19))

    assert used == timedelta(days=1)


def test_day_boundaries_follow_korean_time() -> None:
    # 15:00 UTC on Friday is midnight in Korea, when Saturday begins.
    friday_evening_utc = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)

    assert BUSINESS.counted_time(datetime(2026, 12, 4, 14, 0, tzinfo=UTC), friday_evening_utc) == timedelta(hours=1)
    assert BUSINESS.counted_time(friday_evening_utc, datetime(2026, 12, 5, 3, 0, tzinfo=UTC)) == timedelta(0)


def test_counted_time_of_reversed_interval_is_zero() -> None:
    assert BUSINESS.counted_time(kst(2026, 12, 8), kst(2026, 12, 7)) == timedelta(0)


def test_twenty_business_days_skip_christmas_and_new_year() -> None:
    due = BUSINESS.advance(kst(2026, 12, 4, 9), timedelta(days=20))

    assert due == kst(2027, 1, 5, 9)


def test_twenty_calendar_days_ignore_holidays() -> None:
    due = CALENDAR.advance(kst(2026, 12, 4, 9), timedelta(days=20))

    assert due == kst(2026, 12, 24, 9)


def test_start_on_saturday_counts_from_monday() -> None:
    due = BUSINESS.advance(kst(2026, 12, 5, 14), timedelta(days=1))

    assert due == kst(2026, 12, 8, 0)


def test_deadline_at_end_of_day_is_next_midnight() -> None:
    due = BUSINESS.advance(kst(2026, 12, 7, 0), timedelta(days=1))

    assert due == kst(2026, 12, 8, 0)


def test_zero_amount_returns_start() -> None:
    start = kst(2026, 12, 5, 14)

    assert BUSINESS.advance(start, timedelta(0)) == start


def test_extra_holiday_moves_deadline_by_one_day() -> None:
    declared = SlaCalendar(DayCount.BUSINESS, extra_holidays=frozenset({date(2026, 12, 31)}))

    due = declared.advance(kst(2026, 12, 4, 9), timedelta(days=20))

    assert due == kst(2027, 1, 6, 9)


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        BUSINESS.counted_time(datetime(2026, 12, 4), kst(2026, 12, 5))
    with pytest.raises(ValueError, match="naive datetime"):
        BUSINESS.advance(datetime(2026, 12, 4), timedelta(days=1))


def test_negative_amount_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        BUSINESS.advance(kst(2026, 12, 4), timedelta(hours=-1))
