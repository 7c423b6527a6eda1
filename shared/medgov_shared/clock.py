"""Injectable clocks, so tests and the demo can move time."""

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware time")
        self._now = moment


class AcceleratedClock:
    """Wall-clock time sped up by `factor` from `origin`; the demo runs weeks in minutes."""

    def __init__(self, factor: float, origin: datetime | None = None) -> None:
        if factor <= 0:
            raise ValueError(f"acceleration factor must be positive, got {factor}")
        self._factor = factor
        self._origin = origin or datetime.now(UTC)
        self._started = datetime.now(UTC)

    def now(self) -> datetime:
        elapsed = datetime.now(UTC) - self._started
        return self._origin + elapsed * self._factor
