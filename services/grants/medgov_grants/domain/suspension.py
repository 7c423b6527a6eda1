"""Compliance flags per institution; an institution with an open high-severity flag gets no payouts.

Two sources raise flags:
- ComplianceViolationFlagged of severity high (catalog), cleared by the
  ComplianceFlagCleared with the same flag_id;
- ExclusionOverdue (consent), which counts as a high flag against each
  institution that did not acknowledge, cleared for one institution by its
  ExclusionAcknowledged of the same exclusion.

A clearance that arrives before its flag is remembered, and the flag is then
recorded as already cleared. So the open flags are the raised ones minus the
cleared ones, whatever order the two arrive in.
"""

from dataclasses import dataclass, field
from datetime import datetime

from medgov_shared.contracts.events.catalog import ComplianceFlagCleared, ComplianceViolationFlagged
from medgov_shared.contracts.events.consent import ExclusionAcknowledged, ExclusionOverdue
from medgov_shared.contracts.types import Severity


@dataclass(frozen=True)
class FlagRef:
    """A flag against one institution; `key` is unique across both sources."""

    institution_id: str
    key: str


@dataclass(frozen=True)
class SuspensionChange:
    """An institution became suspended (`suspended` True) or was reinstated."""

    institution_id: str
    suspended: bool
    at: datetime


@dataclass
class _Flag:
    institution_id: str
    raised_at: datetime
    cleared_at: datetime | None = None


@dataclass
class SuspensionRegistry:
    """Open and cleared flags of every institution."""

    _flags: dict[str, _Flag] = field(default_factory=dict)
    _early_clearances: dict[str, datetime] = field(default_factory=dict)

    def is_suspended(self, institution_id: str) -> bool:
        return bool(self.open_flags(institution_id))

    def open_flags(self, institution_id: str) -> list[str]:
        return sorted(
            key for key, flag in self._flags.items() if flag.institution_id == institution_id and flag.cleared_at is None
        )

    def raise_flag(self, ref: FlagRef, *, at: datetime) -> SuspensionChange | None:
        """Record a flag; return a change if the institution was not suspended before."""
        if ref.key in self._flags:
            return None
        was_suspended = self.is_suspended(ref.institution_id)
        self._flags[ref.key] = _Flag(ref.institution_id, at, self._early_clearances.pop(ref.key, None))
        return self._change(ref.institution_id, was_suspended, at)

    def clear_flag(self, key: str, *, at: datetime) -> SuspensionChange | None:
        """Clear a flag; return a change if that reinstates its institution."""
        flag = self._flags.get(key)
        if flag is None:
            self._early_clearances.setdefault(key, at)
            return None
        if flag.cleared_at is not None:
            return None
        was_suspended = self.is_suspended(flag.institution_id)
        flag.cleared_at = at
        return self._change(flag.institution_id, was_suspended, at)

    def _change(self, institution_id: str, was_suspended: bool, at: datetime) -> SuspensionChange | None:
        now_suspended = self.is_suspended(institution_id)
        if now_suspended == was_suspended:
            return None
        return SuspensionChange(institution_id, now_suspended, at)


def catalog_flag_key(flag_id: str) -> str:
    return f"catalog:{flag_id}"


def exclusion_flag_key(exclusion_id: str, institution_id: str) -> str:
    return f"exclusion:{exclusion_id}:{institution_id}"


def flags_raised_by_violation(event: ComplianceViolationFlagged) -> list[FlagRef]:
    if event.severity is not Severity.HIGH:
        return []
    return [FlagRef(event.institution_id, catalog_flag_key(event.flag_id))]


def flags_raised_by_overdue_exclusion(event: ExclusionOverdue) -> list[FlagRef]:
    return [FlagRef(institution, exclusion_flag_key(event.exclusion_id, institution)) for institution in event.institution_ids]


def flag_cleared_by(event: ComplianceFlagCleared | ExclusionAcknowledged) -> str:
    if isinstance(event, ComplianceFlagCleared):
        return catalog_flag_key(event.flag_id)
    return exclusion_flag_key(event.exclusion_id, event.party_institution)
