"""The lifecycle of a dataset: versions, publication and withdrawal.

Every registration of a dataset id adds a version; no version is ever
deleted. A version that passes the PIPA scan is published and replaces the
previous published version, which becomes superseded. A blocked version
replaces nothing, so the last good version stays searchable while the
hospital fixes the files. A withdrawal ends the dataset for good: it stays in
history with its reason, and the id cannot be registered again.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from medgov_shared.contracts.events.catalog import DatasetWithdrawn


class VersionStatus(StrEnum):
    PUBLISHED = "published"
    SUPERSEDED = "superseded"
    BLOCKED = "blocked"
    WITHDRAWN = "withdrawn"


class DatasetRuleViolation(Exception):
    """Raised when a command breaks a lifecycle rule; the message names the rule and what to do."""


class NotDatasetHolder(DatasetRuleViolation):
    """Raised when an institution acts on a dataset another institution holds."""


@dataclass(frozen=True)
class VersionRecord:
    version: int
    published: bool
    registered_at: datetime


@dataclass(frozen=True)
class Withdrawal:
    reason: str
    withdrawn_at: datetime


@dataclass(frozen=True)
class DatasetHistory:
    """All versions of one dataset id and, if it happened, its withdrawal."""

    dataset_id: str
    institution_id: str
    versions: tuple[VersionRecord, ...] = ()
    withdrawal: Withdrawal | None = None

    @property
    def next_version(self) -> int:
        return max((item.version for item in self.versions), default=0) + 1

    @property
    def current_version(self) -> VersionRecord | None:
        """Return the newest published version, the one search shows."""
        published = [item for item in self.versions if item.published]
        return max(published, key=lambda item: item.version) if published else None

    @property
    def searchable(self) -> bool:
        return self.withdrawal is None and self.current_version is not None

    def status_of(self, version: int) -> VersionStatus:
        record = next((item for item in self.versions if item.version == version), None)
        if record is None:
            raise KeyError(f"dataset '{self.dataset_id}' has no version {version}")
        if not record.published:
            return VersionStatus.BLOCKED
        if self.withdrawal is not None:
            return VersionStatus.WITHDRAWN
        current = self.current_version
        return VersionStatus.PUBLISHED if current and current.version == version else VersionStatus.SUPERSEDED

    def check_can_register(self, institution_id: str) -> None:
        """Raise DatasetRuleViolation unless `institution_id` may register a new version."""
        self._check_holder(institution_id, "register a new version of")
        if self.withdrawal is not None:
            raise DatasetRuleViolation(
                f"dataset '{self.dataset_id}' was withdrawn on {self.withdrawal.withdrawn_at:%Y-%m-%d}; "
                "register the data under a new dataset id"
            )

    def with_version(self, record: VersionRecord) -> "DatasetHistory":
        if record.version != self.next_version:
            raise DatasetRuleViolation(
                f"dataset '{self.dataset_id}' expects version {self.next_version}, got {record.version}"
            )
        return replace(self, versions=(*self.versions, record))

    def withdraw(self, institution_id: str, reason: str, at: datetime) -> tuple["DatasetHistory", DatasetWithdrawn]:
        """Withdraw the dataset and return the new history with the event to publish."""
        self._check_holder(institution_id, "withdraw")
        if self.withdrawal is not None:
            raise DatasetRuleViolation(
                f"dataset '{self.dataset_id}' was already withdrawn on {self.withdrawal.withdrawn_at:%Y-%m-%d}"
            )
        if not reason.strip():
            raise DatasetRuleViolation("a withdrawal needs a reason; say why the dataset is withdrawn")
        event = DatasetWithdrawn(
            dataset_id=self.dataset_id, institution_id=self.institution_id, reason=reason.strip(), withdrawn_at=at
        )
        return replace(self, withdrawal=Withdrawal(reason.strip(), at)), event

    def _check_holder(self, institution_id: str, action: str) -> None:
        if institution_id != self.institution_id:
            raise NotDatasetHolder(
                f"dataset '{self.dataset_id}' is held by '{self.institution_id}'; "
                f"'{institution_id}' cannot {action} it"
            )
