"""The governance council: its chair rotates among the regions in terms of fixed length.

The rotation order, the first day of the first term and the term length are
data (boards.yaml). Term n starts `term_months * (n - 1)` months after the
first term and is chaired by the region at position `(n - 1) % len(rotation)`.
Dates are calendar dates in Korea Standard Time.
"""

from dataclasses import dataclass
from datetime import date, datetime

from medgov_shared.contracts.types import Region

from medgov_review.domain.sla import KST, require_aware


class NoCouncilTerm(LookupError):
    """Raised for a date before the first council term."""


@dataclass(frozen=True)
class CouncilTerm:
    number: int
    chair_region: Region
    starts_on: date
    ends_before: date


@dataclass(frozen=True)
class CouncilRotation:
    rotation: tuple[Region, ...]
    first_term_starts: date
    term_months: int

    def __post_init__(self) -> None:
        if not self.rotation:
            raise ValueError("council rotation is empty; list the regions in chairing order")
        if len(set(self.rotation)) != len(self.rotation):
            raise ValueError(f"council rotation names a region twice: {[str(r) for r in self.rotation]}")
        if self.term_months <= 0:
            raise ValueError(f"council term_months must be positive, got {self.term_months}")
        # A start on the 29th to 31st would have no matching day in some months,
        # which would make term boundaries ambiguous.
        if self.first_term_starts.day > 28:
            raise ValueError(f"first_term_starts must fall on day 1-28 of a month, got {self.first_term_starts}")

    def term_on(self, day: date) -> CouncilTerm:
        """Return the term that covers `day`; raise NoCouncilTerm before the first term."""
        if day < self.first_term_starts:
            raise NoCouncilTerm(f"no council term covers {day}; the first term starts {self.first_term_starts}")
        index = self._months_since_first(day) // self.term_months
        return CouncilTerm(
            number=index + 1,
            chair_region=self.rotation[index % len(self.rotation)],
            starts_on=_add_months(self.first_term_starts, index * self.term_months),
            ends_before=_add_months(self.first_term_starts, (index + 1) * self.term_months),
        )

    def chair_on(self, day: date) -> Region:
        return self.term_on(day).chair_region

    def chair_at(self, instant: datetime) -> Region:
        """Return the chair region on the KST date of `instant`."""
        return self.chair_on(require_aware(instant).astimezone(KST).date())

    def _months_since_first(self, day: date) -> int:
        months = (day.year - self.first_term_starts.year) * 12 + day.month - self.first_term_starts.month
        return months - 1 if day.day < self.first_term_starts.day else months


def _add_months(day: date, months: int) -> date:
    year, month_index = divmod(day.month - 1 + months, 12)
    return day.replace(year=day.year + year, month=month_index + 1)
