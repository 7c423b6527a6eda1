"""Cataloging subsidies of one hospital: a deterministic amount per dataset, a cap per hospital, clawbacks.

Rules:
- A dataset's target is the policy amount of its best published version (the
  highest amount over its versions), so republishing a worse version never
  lowers a subsidy and a duplicate DatasetPublished changes nothing.
- The hospital's awards never exceed `per_hospital_cap_krw`. When the cap
  leaves a dataset short, the shortfall is awarded later if headroom returns
  (after a clawback), oldest publication first, then by dataset id. So the
  hospital's net award is always min(cap, sum of targets of datasets not
  clawed back), whatever order the events of different datasets arrive in.
- A dataset withdrawn within `clawback_window_days` of its latest publication
  loses its whole net award through a negative award (a clawback). A dataset
  withdrawn later keeps its subsidy, including a shortfall the cap delayed,
  and earns nothing from versions published after the withdrawal.
"""

from dataclasses import dataclass, field
from datetime import datetime

from medgov_shared.contracts.events.catalog import DatasetPublished, DatasetWithdrawn

from medgov_grants.domain.ids import derived_id
from medgov_grants.domain.policy import SubsidyPolicy


@dataclass(frozen=True)
class SubsidyChange:
    """An award (positive) or clawback (negative) of a dataset's subsidy; published as SubsidyAwarded."""

    award_id: str
    institution_id: str
    dataset_id: str
    amount_krw: int
    completeness_score: int
    record_count: int
    awarded_at: datetime

    @property
    def is_clawback(self) -> bool:
        return self.amount_krw < 0


@dataclass
class DatasetSubsidy:
    """Subsidy record of one dataset: the inputs of its best version, its target and its awards so far."""

    dataset_id: str
    first_published_at: datetime | None = None
    last_published_at: datetime | None = None
    published_versions: set[int] = field(default_factory=set)
    completeness_score: int = 0
    record_count: int = 0
    target_krw: int = 0
    award_ids: list[str] = field(default_factory=list)
    awarded_krw: int = 0
    withdrawn_at: datetime | None = None
    clawed_back: bool = False

    @property
    def shortfall_krw(self) -> int:
        if self.clawed_back:
            return 0
        return self.target_krw - self.awarded_krw

    def priority(self) -> tuple[datetime | None, str]:
        return (self.first_published_at, self.dataset_id)


@dataclass
class HospitalSubsidies:
    """The subsidy state of one hospital; the database version locks one row per hospital while it changes."""

    institution_id: str
    datasets: dict[str, DatasetSubsidy] = field(default_factory=dict)
    # The sum of the datasets' awarded_krw, kept as awards and clawbacks
    # happen: summing on every publication made each one cost as much as the
    # hospital's number of datasets.
    awarded_total_krw: int = 0

    @property
    def awarded_krw(self) -> int:
        return self.awarded_total_krw

    def publish(self, event: DatasetPublished, policy: SubsidyPolicy) -> list[SubsidyChange]:
        """Apply a publication and return the awards it causes (none for a repeat or a withdrawn dataset)."""
        dataset = self.datasets.setdefault(event.dataset_id, DatasetSubsidy(event.dataset_id))
        if dataset.withdrawn_at is not None or event.version in dataset.published_versions:
            return []

        _record_publication(dataset, event, policy)
        return self._award_shortfalls(policy, at=event.published_at)

    def withdraw(self, event: DatasetWithdrawn, policy: SubsidyPolicy) -> list[SubsidyChange]:
        """Apply a withdrawal: claw back within the window, and award freed headroom to other datasets."""
        dataset = self.datasets.setdefault(event.dataset_id, DatasetSubsidy(event.dataset_id))
        if dataset.withdrawn_at is not None:
            return []

        dataset.withdrawn_at = event.withdrawn_at
        if not _within_clawback_window(dataset, event.withdrawn_at, policy):
            return []

        changes = [self._claw_back(dataset, at=event.withdrawn_at)] if dataset.awarded_krw > 0 else []
        dataset.clawed_back = True
        return changes + self._award_shortfalls(policy, at=event.withdrawn_at)

    def _claw_back(self, dataset: DatasetSubsidy, *, at: datetime) -> SubsidyChange:
        change = SubsidyChange(
            award_id=clawback_award_id(dataset.dataset_id),
            institution_id=self.institution_id,
            dataset_id=dataset.dataset_id,
            amount_krw=-dataset.awarded_krw,
            completeness_score=dataset.completeness_score,
            record_count=dataset.record_count,
            awarded_at=at,
        )
        self.awarded_total_krw -= dataset.awarded_krw
        dataset.awarded_krw = 0
        return change

    def _award_shortfalls(self, policy: SubsidyPolicy, *, at: datetime) -> list[SubsidyChange]:
        if self.awarded_krw >= policy.per_hospital_cap_krw:
            return []  # a hospital at its cap gets nothing more; no need to look at its datasets
        changes = []
        short = sorted((item for item in self.datasets.values() if item.shortfall_krw > 0), key=DatasetSubsidy.priority)
        for dataset in short:
            headroom = policy.per_hospital_cap_krw - self.awarded_krw
            if headroom <= 0:
                break
            changes.append(self._award(dataset, min(dataset.shortfall_krw, headroom), at=at))
        return changes

    def _award(self, dataset: DatasetSubsidy, amount_krw: int, *, at: datetime) -> SubsidyChange:
        award_id = derived_id("sub", dataset.dataset_id, len(dataset.award_ids) + 1)
        dataset.award_ids.append(award_id)
        dataset.awarded_krw += amount_krw
        self.awarded_total_krw += amount_krw
        return SubsidyChange(
            award_id=award_id,
            institution_id=self.institution_id,
            dataset_id=dataset.dataset_id,
            amount_krw=amount_krw,
            completeness_score=dataset.completeness_score,
            record_count=dataset.record_count,
            awarded_at=at,
        )


def clawback_award_id(dataset_id: str) -> str:
    return derived_id("sub", dataset_id, "clawback")


def _record_publication(dataset: DatasetSubsidy, event: DatasetPublished, policy: SubsidyPolicy) -> None:
    first_version = not dataset.published_versions
    dataset.published_versions.add(event.version)
    dataset.first_published_at = min(filter(None, (dataset.first_published_at, event.published_at)))
    dataset.last_published_at = max(filter(None, (dataset.last_published_at, event.published_at)))

    amount = policy.amount_for(event.completeness_score, event.record_count)
    if first_version or amount > dataset.target_krw:
        dataset.target_krw = amount
        dataset.completeness_score = event.completeness_score
        dataset.record_count = event.record_count


def _within_clawback_window(dataset: DatasetSubsidy, withdrawn_at: datetime, policy: SubsidyPolicy) -> bool:
    if dataset.last_published_at is None:
        return False
    # A withdrawal stamped before the publication (clocks of different hosts) counts as within the window.
    return withdrawn_at - dataset.last_published_at <= policy.clawback_window
