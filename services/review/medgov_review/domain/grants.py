"""Access grants: one per dataset of an approved application, with a start, an expiry and an end state.

A grant runs from the later of the requested start (00:00 KST) and the
decision, to the day after the requested end (00:00 KST, exclusive). It ends
either at its expiry or earlier when the DRB revokes it.
"""

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from enum import StrEnum

from medgov_shared.contracts.types import DataEnvironment, Region

from medgov_review.domain.errors import GrantNotActive, InvalidPeriod
from medgov_review.domain.sla import KST

# Fixed namespace so that the same application and dataset always give the same
# grant id, which makes issuing grants idempotent across retries.
_GRANT_NAMESPACE = uuid.UUID("6f1d3c52-8f0b-4a6e-9a43-2b1f8c0d7e15")


class GrantStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True)
class AccessGrant:
    grant_id: str
    application_id: str
    dataset_id: str
    dataset_ids: tuple[str, ...]
    grantee_institution: str
    holder_institution: str
    region: Region
    data_environment: DataEnvironment
    purpose_codes: tuple[str, ...]
    conditions: tuple[str, ...]
    starts_at: datetime
    expires_at: datetime
    status: GrantStatus = GrantStatus.ACTIVE
    ended_at: datetime | None = None
    revocation_reason: str | None = None

    def __post_init__(self) -> None:
        if self.expires_at < self.starts_at:
            raise InvalidPeriod(
                f"grant {self.grant_id} expires at {self.expires_at.isoformat()}, before its start "
                f"{self.starts_at.isoformat()}",
                grant_id=self.grant_id,
            )

    def due_to_expire(self, now: datetime) -> bool:
        return self.status is GrantStatus.ACTIVE and now >= self.expires_at

    def expire(self) -> "AccessGrant":
        self._require_active("expire")
        return replace(self, status=GrantStatus.EXPIRED, ended_at=self.expires_at)

    def revoke(self, reason: str, at: datetime) -> "AccessGrant":
        self._require_active("revoke")
        return replace(self, status=GrantStatus.REVOKED, ended_at=at, revocation_reason=reason)

    def _require_active(self, action: str) -> None:
        if self.status is not GrantStatus.ACTIVE:
            raise GrantNotActive(
                f"cannot {action} grant {self.grant_id}: it is already {self.status}",
                grant_id=self.grant_id,
                status=str(self.status),
            )


def grant_id_for(application_id: str, dataset_id: str) -> str:
    return f"grant-{uuid.uuid5(_GRANT_NAMESPACE, f'{application_id}/{dataset_id}')}"


def access_period(requested_start: date, requested_end: date, decided_at: datetime) -> tuple[datetime, datetime]:
    """Return (starts_at, expires_at) for a grant decided at `decided_at`.

    When the decision comes after the requested end, the period is empty
    (start equals expiry) and the grant expires as soon as it is issued.
    """
    if requested_end < requested_start:
        raise InvalidPeriod(f"requested_end {requested_end} is before requested_start {requested_start}")
    expires_at = datetime.combine(requested_end + timedelta(days=1), time(0), tzinfo=KST)
    starts_at = max(datetime.combine(requested_start, time(0), tzinfo=KST), decided_at)
    return min(starts_at, expires_at), expires_at
