"""Counting a data holder's approved data transactions and detecting milestones.

A transaction is one approved application that was granted access to at
least one dataset of the holder. The review service emits AccessGranted per
dataset, so an application covering three datasets of one hospital counts
once for that hospital. A redelivered or repeated AccessGranted counts
nothing. A grant whose grantee is the holder itself is self-dealing and never
counts. A count never goes down: a grant revoked or expired later still was
an approved transaction.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from medgov_shared.contracts.events.review import AccessGranted

from medgov_grants.domain.ids import derived_id
from medgov_grants.domain.policy import Milestone, MilestoneTable


class CountResult(StrEnum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    SELF_DEALING = "self_dealing"


@dataclass(frozen=True)
class DataTransaction:
    """The part of an AccessGranted that milestone counting needs."""

    application_id: str
    grant_id: str
    dataset_id: str
    holder_institution: str
    grantee_institution: str
    granted_at: datetime

    @classmethod
    def from_access_granted(cls, event: AccessGranted, *, at: datetime) -> "DataTransaction":
        return cls(
            application_id=event.application_id,
            grant_id=event.grant_id,
            dataset_id=event.dataset_id,
            holder_institution=event.holder_institution,
            grantee_institution=event.grantee_institution,
            granted_at=at,
        )

    @property
    def is_self_dealing(self) -> bool:
        return self.holder_institution == self.grantee_institution


@dataclass(frozen=True)
class MilestoneCrossed:
    """An institution reached a milestone; published as MilestoneReached and paid from the milestones pool."""

    institution_id: str
    milestone: Milestone
    transactions_counted: int
    reached_at: datetime

    @property
    def milestone_id(self) -> str:
        return milestone_id(self.institution_id, self.milestone.transactions)


def milestone_id(institution_id: str, transactions: int) -> str:
    return derived_id("ms", institution_id, transactions)


@dataclass
class TransactionCounter:
    """Counted applications and reached milestones of one data holder."""

    institution_id: str
    application_ids: set[str] = field(default_factory=set)
    reached: set[int] = field(default_factory=set)

    @property
    def count(self) -> int:
        return len(self.application_ids)

    def record(self, transaction: DataTransaction, table: MilestoneTable) -> tuple[CountResult, list[MilestoneCrossed]]:
        """Count `transaction` and return the milestones it makes the holder reach for the first time."""
        if transaction.holder_institution != self.institution_id:
            raise ValueError(
                f"transaction of holder {transaction.holder_institution!r} given to the counter of {self.institution_id!r}"
            )
        if transaction.is_self_dealing:
            return CountResult.SELF_DEALING, []
        if transaction.application_id in self.application_ids:
            return CountResult.DUPLICATE, []

        self.application_ids.add(transaction.application_id)
        return CountResult.COUNTED, self._newly_reached(table, at=transaction.granted_at)

    def _newly_reached(self, table: MilestoneTable, *, at: datetime) -> list[MilestoneCrossed]:
        # Every milestone at or below the count is checked, not only an exact
        # match, so a milestone added to the table later is still reached.
        crossed = []
        for milestone in table.reached_by(self.count):
            if milestone.transactions in self.reached:
                continue
            self.reached.add(milestone.transactions)
            crossed.append(MilestoneCrossed(self.institution_id, milestone, self.count, at))
        return crossed
