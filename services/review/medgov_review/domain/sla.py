"""The decision window: which days count, when it is due, how much is used, which alerts are due.

Time inside the window is measured continuously. Under the business calendar a
day counts when its date in Korea Standard Time is a weekday and not a Korean
public holiday, and every counted day adds 24 hours of window time. Under the
calendar-day calendar every day counts. Time while the clock is stopped never
counts. The deadline is the earliest instant at which the counted time reaches
the window. A review that starts on Friday 09:00 KST with a window of 20
business days is therefore due at 09:00 KST on a weekday four or more weeks later.

Everything here is a pure function of its arguments: the same clock and the
same instant give the same result, before and after a restart.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum, StrEnum
from functools import cache

import holidays

# Korea has kept UTC+9 all year since 1988, so a fixed offset gives the same
# dates as the Asia/Seoul zone without depending on a tz database in the image.
KST = timezone(timedelta(hours=9), "KST")

DAY = timedelta(days=1)

# Bounds the search for a deadline: a 20-day window plus stops of a year or two
# ends long before this, and an endless loop would otherwise hang a worker.
_MAX_DAYS_SEARCHED = 20 * 366


def require_aware(instant: datetime, name: str = "instant") -> datetime:
    """Return `instant` unchanged, or raise ValueError if it has no time zone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} {instant.isoformat()} is a naive datetime; give a time zone (UTC expected)")
    return instant


class DayCount(StrEnum):
    BUSINESS = "business"
    CALENDAR = "calendar"


@cache
def korean_public_holidays(year: int) -> frozenset[date]:
    """Korean public holidays of `year`, including substitute and election days, from the `holidays` package."""
    return frozenset(holidays.country_holidays("KR", years=year).keys())


@dataclass(frozen=True)
class SlaCalendar:
    """The rule for the days that count towards the window.

    `extra_holidays` adds days the government declares at short notice (a
    temporary public holiday) before the `holidays` package includes them.
    """

    day_count: DayCount = DayCount.BUSINESS
    extra_holidays: frozenset[date] = field(default_factory=frozenset)

    def counts(self, day: date) -> bool:
        if self.day_count is DayCount.CALENDAR:
            return True
        if day.weekday() >= 5:
            return False
        return day not in korean_public_holidays(day.year) and day not in self.extra_holidays

    def counted_time(self, start: datetime, end: datetime) -> timedelta:
        """Return the window time that passes between `start` and `end` (zero if `end` is not later)."""
        require_aware(start, "start")
        require_aware(end, "end")
        total = timedelta(0)
        for day, begin, finish in _local_days(start, end):
            if self.counts(day):
                total += finish - begin
        return total

    def advance(self, start: datetime, amount: timedelta) -> datetime:
        """Return the earliest instant at which `amount` of window time has passed since `start`."""
        require_aware(start, "start")
        if amount < timedelta(0):
            raise ValueError(f"window time must not be negative, got {amount}")
        if amount == timedelta(0):
            return start
        remaining = amount
        day = start.astimezone(KST).date()
        for _ in range(_MAX_DAYS_SEARCHED):
            begin = max(start, _day_start(day))
            available = _day_start(day + DAY) - begin
            if self.counts(day):
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += DAY
        raise ValueError(f"no deadline within {_MAX_DAYS_SEARCHED} days of {start.isoformat()}")


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=KST)


def _local_days(start: datetime, end: datetime) -> Iterator[tuple[date, datetime, datetime]]:
    """Yield each KST date between `start` and `end` with the part of [start, end) that falls on it."""
    day = start.astimezone(KST).date()
    while _day_start(day) < end:
        begin = max(start, _day_start(day))
        finish = min(end, _day_start(day + DAY))
        if begin < finish:
            yield day, begin, finish
        day += DAY


@dataclass(frozen=True)
class ClockStop:
    """A period in which the application waits for the applicant; `resumed_at` is None while it lasts."""

    stopped_at: datetime
    resumed_at: datetime | None = None


@dataclass(frozen=True)
class SlaClock:
    """The decision clock of one application: when it started, its window, and every stop."""

    started_at: datetime
    window_days: int
    stops: tuple[ClockStop, ...] = ()

    def __post_init__(self) -> None:
        require_aware(self.started_at, "started_at")
        if self.window_days <= 0:
            raise ValueError(f"window_days must be positive, got {self.window_days}")

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)

    @property
    def running(self) -> bool:
        return not self.stops or self.stops[-1].resumed_at is not None

    def stop(self, at: datetime) -> "SlaClock":
        require_aware(at, "stop time")
        if not self.running:
            raise ValueError(f"clock already stopped at {self.stops[-1].stopped_at.isoformat()}")
        if at < self._last_resume():
            raise ValueError(f"stop time {at.isoformat()} is before the clock last started")
        return replace(self, stops=(*self.stops, ClockStop(stopped_at=at)))

    def resume(self, at: datetime) -> "SlaClock":
        require_aware(at, "resume time")
        if self.running:
            raise ValueError("clock is running; only a stopped clock can resume")
        last = self.stops[-1]
        if at < last.stopped_at:
            raise ValueError(f"resume time {at.isoformat()} is before the stop at {last.stopped_at.isoformat()}")
        return replace(self, stops=(*self.stops[:-1], ClockStop(last.stopped_at, at)))

    def running_periods(self) -> Iterator[tuple[datetime, datetime | None]]:
        """Yield each period the clock ran as (begin, end); end is None for a period still running."""
        begin = self.started_at
        for item in self.stops:
            yield begin, item.stopped_at
            if item.resumed_at is None:
                return
            begin = item.resumed_at
        yield begin, None

    def used(self, now: datetime, calendar: SlaCalendar) -> timedelta:
        """Return the window time used up to `now`."""
        require_aware(now, "now")
        total = timedelta(0)
        for begin, end in self.running_periods():
            total += calendar.counted_time(begin, min(end, now) if end else now)
        return total

    def reaches(self, amount: timedelta, calendar: SlaCalendar) -> datetime | None:
        """Return when the used time reaches `amount`, or None if the clock stopped before that.

        An instant in the future assumes the clock keeps running; a new stop moves it.
        """
        remaining = amount
        for begin, end in self.running_periods():
            if end is None:
                return calendar.advance(begin, remaining)
            counted = calendar.counted_time(begin, end)
            if remaining <= counted:
                return calendar.advance(begin, remaining)
            remaining -= counted
        return None

    def due_at(self, calendar: SlaCalendar) -> datetime | None:
        """Return the deadline, or None while a stop that began before the deadline lasts."""
        return self.reaches(self.window, calendar)

    def _last_resume(self) -> datetime:
        """Return when the running clock last started; only called while it runs."""
        if not self.stops:
            return self.started_at
        resumed = self.stops[-1].resumed_at
        assert resumed is not None, "a running clock has no open stop"
        return resumed


class SlaAlert(Enum):
    """An alert the window raises once, at its share of the window."""

    WARNING_50 = 50
    WARNING_75 = 75
    WARNING_90 = 90
    BREACH = 100

    @property
    def percent(self) -> int:
        return self.value

    def threshold(self, window: timedelta) -> timedelta:
        return window * self.value / 100


ALERTS_IN_ORDER: tuple[SlaAlert, ...] = tuple(sorted(SlaAlert, key=lambda alert: alert.value))


def alerts_due(used: timedelta, window: timedelta, fired: Iterable[SlaAlert]) -> tuple[SlaAlert, ...]:
    """Return the alerts whose threshold `used` has reached and that have not fired, lowest first.

    A caller that was down across several thresholds gets all of them at once.
    Every alert fires exactly once if the caller stores the fired alerts in the
    same transaction as the events it emits for them.
    """
    already = frozenset(fired)
    return tuple(alert for alert in ALERTS_IN_ORDER if alert not in already and used >= alert.threshold(window))


def next_alert_at(clock: SlaClock, calendar: SlaCalendar, fired: Iterable[SlaAlert]) -> datetime | None:
    """Return when the next alert that has not fired becomes due, or None if none can while the clock is stopped."""
    already = frozenset(fired)
    for alert in ALERTS_IN_ORDER:
        if alert not in already:
            return clock.reaches(alert.threshold(clock.window), calendar)
    return None


def as_days(amount: timedelta) -> float:
    """Express window time in days, the unit of `days_used` and `days_left` in the events."""
    return amount / DAY
