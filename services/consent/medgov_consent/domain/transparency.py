"""Public aggregate figures: the share of subjects who opted out, per hospital and month.

A subject counts for a hospital from its first consent or opt-out recorded
there. At the end of a month the subject has opted out there when the latest
of the hospital's directives for the subject is a revocation (a partial one
included), or a consent that permits nothing. Cells with fewer subjects than `minimum_cell` are suppressed,
so that a figure never describes a handful of identifiable people.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from medgov_consent.domain.history import AppliedRevocation, ConsentHistory, ConsentRecord
from medgov_consent.domain.policy import KOREA_STANDARD_TIME
from medgov_consent.domain.scope import permitted_scope

# A default for operators to tune, not a figure taken from PIPA or a guideline.
DEFAULT_MINIMUM_CELL = 5


@dataclass(frozen=True)
class OptOutCell:
    """One hospital-month; `subjects` and `opted_out` are None when the cell is suppressed."""

    institution_id: str
    month: date
    subjects: int | None
    opted_out: int | None

    @property
    def suppressed(self) -> bool:
        return self.subjects is None

    @property
    def rate(self) -> float | None:
        if self.subjects is None or self.opted_out is None:
            return None
        return self.opted_out / self.subjects


def opt_out_rates(
    histories: Iterable[ConsentHistory],
    months: Sequence[date],
    *,
    minimum_cell: int = DEFAULT_MINIMUM_CELL,
    zone: tzinfo = KOREA_STANDARD_TIME,
) -> list[OptOutCell]:
    """Return one cell per hospital with recorded consents and per month, ordered by hospital then month."""
    states = [_states_by_institution(history) for history in histories]
    institutions = sorted({institution for state in states for institution in state})
    counts: dict[tuple[str, date], tuple[int, int]] = {}
    for institution in institutions:
        counted = [state[institution] for state in states if institution in state]
        for month in months:
            statuses = [_status(directives, month_end(month, zone)) for directives in counted]
            counts[institution, month] = (sum(status is not None for status in statuses), sum(status is True for status in statuses))
    return cells_from_counts(institutions, months, counts, minimum_cell=minimum_cell)


def cells_from_counts(
    institutions: Sequence[str],
    months: Sequence[date],
    counts: Mapping[tuple[str, date], tuple[int, int]],
    *,
    minimum_cell: int = DEFAULT_MINIMUM_CELL,
) -> list[OptOutCell]:
    """Build one cell per hospital and month from (subjects, opted out) counts; a missing count means no subjects."""
    cells = []
    for institution in sorted(institutions):
        for month in months:
            subjects, opted_out = counts.get((institution, month), (0, 0))
            if subjects < minimum_cell:
                cells.append(OptOutCell(institution, month, None, None))
            else:
                cells.append(OptOutCell(institution, month, subjects, opted_out))
    return cells


Directive = ConsentRecord | AppliedRevocation


def _states_by_institution(history: ConsentHistory) -> dict[str, list[Directive]]:
    institution_of_consent = {record.consent_id: record.institution_id for record in history.consents}
    grouped: dict[str, list[Directive]] = {}
    for record in history.consents:
        grouped.setdefault(record.institution_id, []).append(record)
    for revocation in history.revocations:
        institution = institution_of_consent.get(revocation.consent_id, revocation.revocation.institution_id)
        grouped.setdefault(institution, []).append(revocation)
    return grouped


def _status(directives: list[Directive], month_end: datetime) -> bool | None:
    """Return True if opted out, False if not, None if the subject had no directive there yet."""
    dated = [(_effective(item), _sequence(item), item) for item in directives if _effective(item) < month_end]
    if not dated:
        return None
    latest = max(dated, key=lambda entry: (entry[0], entry[1]))[2]
    if isinstance(latest, AppliedRevocation):
        return True
    return permitted_scope(latest.policy) is None


def _effective(item: Directive) -> datetime:
    return item.granted_at if isinstance(item, ConsentRecord) else item.effective_at


def _sequence(item: Directive) -> int:
    return item.sequence


def month_end(month: date, zone: tzinfo = KOREA_STANDARD_TIME) -> datetime:
    """Return the first instant after `month` in `zone`."""
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return datetime.combine(following, time(), zone)
