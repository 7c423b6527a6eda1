"""The SLA clock: stops and resumes, the deadline, and which alerts are due."""

from datetime import timedelta

import pytest

from medgov_review.domain.sla import (
    KST,
    DayCount,
    SlaAlert,
    SlaCalendar,
    SlaClock,
    alerts_due,
    as_days,
    next_alert_at,
)

from .test_sla_calendar import kst

pytestmark = pytest.mark.timesensitive

BUSINESS = SlaCalendar(DayCount.BUSINESS)
WINDOW = timedelta(days=20)


def test_new_clock_is_due_after_window() -> None:
    clock = SlaClock(started_at=kst(2026, 12, 4, 9), window_days=20)

    assert clock.due_at(BUSINESS) == kst(2027, 1, 5, 9)
    assert clock.running


def test_stop_freezes_used_time() -> None:
    clock = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=20).stop(kst(2026, 12, 8, 9))

    assert clock.used(kst(2026, 12, 8, 9), BUSINESS) == timedelta(days=1)
    assert clock.used(kst(2026, 12, 20, 9), BUSINESS) == timedelta(days=1)
    assert not clock.running


def test_deadline_is_unknown_while_stopped() -> None:
    clock = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=20).stop(kst(2026, 12, 8, 9))

    assert clock.due_at(BUSINESS) is None


def test_resume_moves_deadline_by_business_days_stopped() -> None:
    started = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=20)
    original_due = started.due_at(BUSINESS)
    # Stopped Tuesday 09:00 to Thursday 09:00 of the same week: two business days.
    clock = started.stop(kst(2026, 12, 8, 9)).resume(kst(2026, 12, 10, 9))

    due = clock.due_at(BUSINESS)

    assert original_due == kst(2027, 1, 6, 9)
    assert due == kst(2027, 1, 8, 9)
    assert clock.used(due, BUSINESS) == WINDOW


def test_stop_over_weekend_moves_nothing() -> None:
    started = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=20)
    clock = started.stop(kst(2026, 12, 12, 0)).resume(kst(2026, 12, 14, 0))

    assert clock.due_at(BUSINESS) == started.due_at(BUSINESS)


def test_deadline_passed_before_stop_stays_known() -> None:
    clock = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=2).stop(kst(2026, 12, 15, 9))

    assert clock.due_at(BUSINESS) == kst(2026, 12, 9, 9)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda clock: clock.resume(kst(2026, 12, 8)), "only a stopped clock"),
        (lambda clock: clock.stop(kst(2026, 12, 6)), "before the clock last started"),
        (lambda clock: clock.stop(kst(2026, 12, 8)).stop(kst(2026, 12, 9)), "already stopped"),
        (lambda clock: clock.stop(kst(2026, 12, 8)).resume(kst(2026, 12, 7, 12)), "before the stop"),
    ],
)
def test_invalid_stops_are_rejected(action, message: str) -> None:  # type: ignore[no-untyped-def]
    clock = SlaClock(started_at=kst(2026, 12, 7), window_days=20)

    with pytest.raises(ValueError, match=message):
        action(clock)


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window_days must be positive"):
        SlaClock(started_at=kst(2026, 12, 7), window_days=0)


def test_alert_thresholds_are_shares_of_window() -> None:
    assert [as_days(alert.threshold(WINDOW)) for alert in SlaAlert] == [10.0, 15.0, 18.0, 20.0]


def test_alerts_due_lists_unfired_reached_alerts_in_order() -> None:
    assert alerts_due(timedelta(days=9.99), WINDOW, ()) == ()
    assert alerts_due(timedelta(days=10), WINDOW, ()) == (SlaAlert.WARNING_50,)
    assert alerts_due(timedelta(days=16), WINDOW, {SlaAlert.WARNING_50}) == (SlaAlert.WARNING_75,)


def test_alerts_due_after_outage_returns_all_at_once() -> None:
    due = alerts_due(timedelta(days=25), WINDOW, ())

    assert due == (SlaAlert.WARNING_50, SlaAlert.WARNING_75, SlaAlert.WARNING_90, SlaAlert.BREACH)


def test_fired_alerts_are_not_due_again() -> None:
    assert alerts_due(timedelta(days=25), WINDOW, set(SlaAlert)) == ()


def test_next_alert_at_is_first_unfired_threshold() -> None:
    clock = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=20)

    assert next_alert_at(clock, BUSINESS, ()) == kst(2026, 12, 21, 9)
    assert next_alert_at(clock, BUSINESS, {SlaAlert.WARNING_50}) == kst(2026, 12, 29, 9)
    assert next_alert_at(clock, BUSINESS, set(SlaAlert)) is None


def test_next_alert_none_while_stopped() -> None:
    clock = SlaClock(started_at=kst(2026, 12, 7, 9), window_days=20).stop(kst(2026, 12, 8, 9))

    assert next_alert_at(clock, BUSINESS, ()) is None


def test_kst_has_no_daylight_saving() -> None:
    assert kst(2026, 7, 1).utcoffset() == kst(2026, 1, 1).utcoffset() == timedelta(hours=9)
    assert KST.tzname(None) == "KST"
