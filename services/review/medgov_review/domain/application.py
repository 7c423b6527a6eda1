"""The application's states, the transitions between them and the time spent in each.

    (submitted) --complete--> under_review --all boards approve--> approved
         |                     |    ^    \\--a board rejects----> rejected
         |                     |    |
         \\--incomplete--> awaiting_revision (the clock is stopped)
                               ^       |
                               \\-------/ resubmitted, still incomplete

Time in state is wall-clock time, not window time; the SLA clock measures the latter.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from medgov_review.domain.errors import InvalidTransition


class ApplicationStatus(StrEnum):
    AWAITING_REVISION = "awaiting_revision"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def open(self) -> bool:
        return self in (ApplicationStatus.AWAITING_REVISION, ApplicationStatus.UNDER_REVIEW)


ALLOWED_TRANSITIONS: dict[ApplicationStatus | None, frozenset[ApplicationStatus]] = {
    None: frozenset({ApplicationStatus.UNDER_REVIEW, ApplicationStatus.AWAITING_REVISION}),
    ApplicationStatus.AWAITING_REVISION: frozenset(
        {ApplicationStatus.UNDER_REVIEW, ApplicationStatus.AWAITING_REVISION}
    ),
    ApplicationStatus.UNDER_REVIEW: frozenset(
        {ApplicationStatus.AWAITING_REVISION, ApplicationStatus.APPROVED, ApplicationStatus.REJECTED}
    ),
    ApplicationStatus.APPROVED: frozenset(),
    ApplicationStatus.REJECTED: frozenset(),
}


@dataclass(frozen=True)
class StatusChange:
    status: ApplicationStatus
    entered_at: datetime


@dataclass
class StatusTimeline:
    """Every status the application entered, in order."""

    changes: list[StatusChange] = field(default_factory=list)

    @property
    def current(self) -> ApplicationStatus | None:
        return self.changes[-1].status if self.changes else None

    def enter(self, status: ApplicationStatus, at: datetime) -> None:
        """Append a status change; raise InvalidTransition if the current status does not allow it."""
        if status not in ALLOWED_TRANSITIONS[self.current]:
            raise InvalidTransition(
                f"an application cannot move from {self.current or 'new'} to {status}",
                current=str(self.current),
                requested=str(status),
            )
        if self.changes and at < self.changes[-1].entered_at:
            raise ValueError(f"status change at {at.isoformat()} precedes the previous one")
        self.changes.append(StatusChange(status, at))

    def time_in_states(self, now: datetime) -> dict[ApplicationStatus, timedelta]:
        """Sum the wall-clock time spent in each status; the current open status counts up to `now`."""
        totals: dict[ApplicationStatus, timedelta] = defaultdict(timedelta)
        for change, following in zip(self.changes, self.changes[1:], strict=False):
            totals[change.status] += following.entered_at - change.entered_at
        if self.changes and self.changes[-1].status.open:
            last = self.changes[-1]
            totals[last.status] += max(now - last.entered_at, timedelta(0))
        return dict(totals)
