"""Property-based tests of the SLA clock over generated timelines.

Timelines start on an hour, stop and resume on hours, and cross weekends and
Korean public holidays. Korea's offset is a whole number of hours, so every
hour lies entirely inside or outside a counted day and a stop. That lets a
simple oracle walk the timeline hour by hour and compute deadlines exactly,
independently of the day-overlap arithmetic in the module under test.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import holidays
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medgov_review.domain.sla import (
    ALERTS_IN_ORDER,
    KST,
    ClockStop,
    DayCount,
    SlaAlert,
    SlaCalendar,
    SlaClock,
    alerts_due,
)

pytestmark = pytest.mark.timesensitive

HOUR = timedelta(hours=1)
BASE = datetime(2025, 1, 1, tzinfo=UTC)
_KR = holidays.country_holidays("KR", years=range(2025, 2033))


def oracle_counts(day: date, kind: DayCount) -> bool:
    return kind is DayCount.CALENDAR or (day.weekday() < 5 and day not in _KR)


def oracle_stopped(clock: SlaClock, hour: datetime) -> bool:
    for stop in clock.stops:
        if stop.stopped_at <= hour and (stop.resumed_at is None or hour < stop.resumed_at):
            return True
    return False


def oracle_reaches(clock: SlaClock, kind: DayCount, amount: timedelta) -> datetime | None:
    """Walk hour by hour and return when `amount` of window time has been used."""
    remaining = amount
    hour = clock.started_at
    if remaining == timedelta(0):
        return hour
    for _ in range(24 * 366 * 4):
        open_stop = clock.stops and clock.stops[-1].resumed_at is None
        if open_stop and hour >= clock.stops[-1].stopped_at:
            return None
        if not oracle_stopped(clock, hour) and oracle_counts(hour.astimezone(KST).date(), kind):
            if remaining <= HOUR:
                return hour + remaining
            remaining -= HOUR
        hour += HOUR
    raise AssertionError("oracle found no deadline within four years")


@dataclass(frozen=True)
class Timeline:
    clock: SlaClock
    kind: DayCount

    @property
    def calendar(self) -> SlaCalendar:
        return SlaCalendar(self.kind)


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    start = BASE + HOUR * draw(st.integers(0, 6 * 365 * 24))
    window_days = draw(st.integers(1, 30))
    kind = draw(st.sampled_from(DayCount))
    stops = []
    moment = start
    for run_hours, stop_hours in draw(st.lists(st.tuples(st.integers(0, 20 * 24), st.integers(0, 15 * 24)), max_size=4)):
        stopped_at = moment + HOUR * run_hours
        moment = stopped_at + HOUR * stop_hours
        stops.append(ClockStop(stopped_at, moment))
    if stops and draw(st.booleans()):
        stops[-1] = ClockStop(stops[-1].stopped_at, None)
    return Timeline(SlaClock(start, window_days, tuple(stops)), kind)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines())
def test_deadline_matches_hourly_oracle(timeline: Timeline) -> None:
    expected = oracle_reaches(timeline.clock, timeline.kind, timeline.clock.window)

    assert timeline.clock.due_at(timeline.calendar) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timelines())
def test_alert_instants_match_hourly_oracle(timeline: Timeline) -> None:
    for alert in ALERTS_IN_ORDER:
        amount = alert.threshold(timeline.clock.window)

        assert timeline.clock.reaches(amount, timeline.calendar) == oracle_reaches(timeline.clock, timeline.kind, amount)


@settings(max_examples=100, deadline=None)
@given(timelines(), st.lists(st.integers(0, 120 * 24 * 60), min_size=2, max_size=8))
def test_used_time_is_monotonic_and_bounded(timeline: Timeline, minutes: list[int]) -> None:
    instants = [timeline.clock.started_at + timedelta(minutes=item) for item in sorted(minutes)]
    used = [timeline.clock.used(instant, timeline.calendar) for instant in instants]

    assert used == sorted(used)
    for instant, amount in zip(instants, used, strict=True):
        assert timedelta(0) <= amount <= instant - timeline.clock.started_at


@settings(max_examples=100, deadline=None)
@given(timelines())
def test_used_time_at_deadline_equals_window(timeline: Timeline) -> None:
    due = timeline.clock.due_at(timeline.calendar)
    assume(due is not None)

    assert timeline.clock.used(due, timeline.calendar) == timeline.clock.window
    assert timeline.clock.used(due - timedelta(microseconds=1), timeline.calendar) < timeline.clock.window


# -- exactly-once alerts across ticks, crashes and restarts ---------------------------


def clock_as_known_at(final: SlaClock, instant: datetime) -> SlaClock:
    """Return the clock as the service knew it at `instant`: stops and resumes after it had not happened."""
    stops = []
    for stop in final.stops:
        if stop.stopped_at > instant:
            break
        resumed = stop.resumed_at if stop.resumed_at is not None and stop.resumed_at <= instant else None
        stops.append(ClockStop(stop.stopped_at, resumed))
        if resumed is None:
            break
    return SlaClock(final.started_at, final.window_days, tuple(stops))


def restore(row: dict[str, object]) -> tuple[SlaClock, set[SlaAlert]]:
    """Rebuild the clock and the fired alerts from their stored form, as a restarted service does."""
    stops = tuple(
        ClockStop(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None)
        for a, b in row["stops"]  # type: ignore[attr-defined]
    )
    clock = SlaClock(datetime.fromisoformat(row["started_at"]), row["window_days"], stops)  # type: ignore[arg-type]
    return clock, {SlaAlert(value) for value in row["fired"]}  # type: ignore[attr-defined]


def store(clock: SlaClock, fired: set[SlaAlert]) -> dict[str, object]:
    return {
        "started_at": clock.started_at.isoformat(),
        "window_days": clock.window_days,
        "stops": [(item.stopped_at.isoformat(), item.resumed_at.isoformat() if item.resumed_at else None) for item in clock.stops],
        "fired": sorted(alert.value for alert in fired),
    }


@dataclass(frozen=True)
class Tick:
    at: datetime
    crashes_before_commit: bool
    restarts_after: bool


@st.composite
def ticks(draw: st.DrawFn, start: datetime) -> list[Tick]:
    offsets = draw(st.lists(st.integers(0, 90 * 24 * 60), min_size=1, max_size=40))
    return [
        Tick(start + timedelta(minutes=offset), draw(st.booleans()) and draw(st.booleans()), draw(st.booleans()))
        for offset in sorted(offsets)
    ]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_alerts_fire_once_at_first_tick(data: st.DataObject) -> None:
    timeline = data.draw(timelines())
    schedule = data.draw(ticks(timeline.clock.started_at))
    row = store(clock_as_known_at(timeline.clock, timeline.clock.started_at), set())
    fired_log: list[tuple[SlaAlert, datetime]] = []

    for tick in schedule:
        _, fired = restore(row)
        known = clock_as_known_at(timeline.clock, tick.at)
        due = alerts_due(known.used(tick.at, timeline.calendar), known.window, fired)
        if tick.crashes_before_commit:
            continue  # nothing committed, so nothing published; the next tick must catch up
        fired_log.extend((alert, tick.at) for alert in due)
        row = store(known, fired | set(due))
        if tick.restarts_after:
            row = store(*restore(row))

    committed = [tick.at for tick in schedule if not tick.crashes_before_commit]
    fired_alerts = [alert for alert, _ in fired_log]
    assert len(fired_alerts) == len(set(fired_alerts))
    assert fired_alerts == sorted(fired_alerts, key=lambda alert: alert.value)
    for alert in ALERTS_IN_ORDER:
        threshold_at = timeline.clock.reaches(alert.threshold(timeline.clock.window), timeline.calendar)
        first_tick = next((at for at in committed if threshold_at is not None and at >= threshold_at), None)
        expected = [] if first_tick is None else [(alert, first_tick)]
        assert [entry for entry in fired_log if entry[0] is alert] == expected
