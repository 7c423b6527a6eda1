"""Fan-out planning (the grants a revocation reaches) and the re-check of grants against consents and dataset terms.

The inputs are the service's projections as plain data: datasets and their
terms (from the catalog's events), the datasets a subject is in, and the
access grants (from the review service's events), one row per (grant, dataset).

A revocation reaches a grant on a dataset that contains the subject unless
the grant ended before the revocation took effect. It requires an exclusion
when the subject's history, read at the later of the grant's approval and the
revocation, denies the grant's use because of a revocation. The same rule
covers a grant approved, or a dataset joined, after the revocation, so
planning runs again on each of those events. Exclusions already requested are
skipped, so planning twice plans nothing new.
"""

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from medgov_consent.domain.duo import PurposeCondition, requested_purposes
from medgov_consent.domain.history import AppliedRevocation, ConsentHistory, SubjectDecision
from medgov_consent.domain.policy import DatasetTerms, UseRequest


@dataclass(frozen=True)
class GrantView:
    """One dataset of one access grant, as projected from AccessGranted, AccessRevoked and AccessExpired.

    `granted_at` is when access was granted (the AccessGranted event time);
    `ended_at` is set when the grant was revoked or expired.
    """

    grant_id: str
    dataset_id: str
    application_id: str
    grantee_id: str
    holder_id: str
    purposes: tuple[str, ...]
    grantee_for_profit: bool
    granted_at: datetime
    starts_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None

    @property
    def end(self) -> datetime:
        return min(self.expires_at, self.ended_at) if self.ended_at else self.expires_at

    def active_at(self, moment: datetime) -> bool:
        """Tell whether the grant is approved and not yet ended; a grant counts before its start date, as it will use the data."""
        return self.granted_at <= moment < self.end

    def use(self, dataset: DatasetTerms, at: datetime) -> UseRequest:
        return UseRequest(
            purposes=self.purposes,
            dataset=dataset,
            recipient_id=self.grantee_id,
            recipient_for_profit=self.grantee_for_profit,
            at=at,
        )


@dataclass(frozen=True)
class PlannedExclusion:
    """An exclusion to request: the data of `subject` in `dataset_id` must leave `grant_id`."""

    exclusion_id: str
    grant_id: str
    dataset_id: str
    subject: str
    consent_id: str
    grantee_id: str
    holder_id: str
    reason: str
    requested_at: datetime
    acknowledge_by: datetime


@dataclass(frozen=True)
class GrantMismatch:
    """An active grant that no longer matches; `subject` is None when the whole grant is affected."""

    grant_id: str
    dataset_id: str
    subject: str | None
    reason: str


def exclusion_id(grant_id: str, dataset_id: str, subject: str) -> str:
    """Return the id of the exclusion of (grant, dataset, subject); the same triple always gets the same id."""
    digest = hashlib.sha256(f"{grant_id}\x1f{dataset_id}\x1f{subject}".encode()).hexdigest()
    return f"exc-{digest[:40]}"


def plan_exclusions(
    history: ConsentHistory,
    *,
    subject_dataset_ids: Collection[str],
    datasets: Mapping[str, DatasetTerms],
    grants: Iterable[GrantView],
    requested: Collection[str],
    now: datetime,
    acknowledge_within: timedelta,
) -> list[PlannedExclusion]:
    """Return the exclusions the subject's revocations require and that were not requested yet.

    `requested` contains the ids of exclusions already requested. Revocations
    that take effect after `now` are left for a later run.
    """
    planned = []
    revocations = sorted(history.revocations, key=lambda item: (item.effective_at, item.sequence))
    decisions: dict[tuple, SubjectDecision] = {}
    for grant in sorted(grants, key=lambda item: (item.grant_id, item.dataset_id)):
        if grant.dataset_id not in subject_dataset_ids:
            continue
        identifier = exclusion_id(grant.grant_id, grant.dataset_id, history.subject)
        if identifier in requested:
            continue
        dataset = datasets.get(grant.dataset_id) or DatasetTerms(grant.dataset_id, grant.holder_id)
        denial = _denial_by_revocation(history, revocations, grant, dataset, now, decisions)
        if denial is None:
            continue
        consent_id, reason = denial
        planned.append(
            PlannedExclusion(
                exclusion_id=identifier,
                grant_id=grant.grant_id,
                dataset_id=grant.dataset_id,
                subject=history.subject,
                consent_id=consent_id,
                grantee_id=grant.grantee_id,
                holder_id=grant.holder_id,
                reason=reason,
                requested_at=now,
                acknowledge_by=now + acknowledge_within,
            )
        )
    return planned


def _denial_by_revocation(
    history: ConsentHistory,
    revocations: Sequence[AppliedRevocation],
    grant: GrantView,
    dataset: DatasetTerms,
    now: datetime,
    decisions: dict[tuple, SubjectDecision],
) -> tuple[str, str] | None:
    """Return (revoked consent id, reason) when a revocation in effect by `now` denies the grant, else None.

    `revocations` are the history's revocations, oldest first. `decisions`
    caches the history's decisions by use and instant for the other grants
    of the same plan, so a subject in many projects with the same purposes
    on one dataset is decided once.
    """
    for revocation in revocations:
        if revocation.effective_at > now:
            continue
        # The grant's time comes from the review service's clock. A clock ahead of
        # ours (skew between hosts, or the demo's accelerated review clock) must
        # not postpone the exclusion, so a grant "from the future" counts as approved now.
        moment = max(min(grant.granted_at, now), revocation.effective_at)
        if moment >= grant.end or moment > now:
            continue
        key = (grant.purposes, grant.grantee_id, grant.grantee_for_profit, dataset, moment)
        decision = decisions.get(key)
        if decision is None:
            decision = decisions[key] = history.decide(grant.use(dataset, moment))
        if decision.by_revocation and decision.consent_id is not None:
            return decision.consent_id, decision.reason
    return None


def recheck_subject(
    history: ConsentHistory,
    *,
    subject_dataset_ids: Collection[str],
    datasets: Mapping[str, DatasetTerms],
    grants: Iterable[GrantView],
    requested: Collection[str],
    now: datetime,
) -> list[GrantMismatch]:
    """List the grants active at `now` that hold the subject's data although the subject's consents no longer admit it."""
    mismatches = []
    for grant in _active(grants, now):
        if grant.dataset_id not in subject_dataset_ids:
            continue
        if exclusion_id(grant.grant_id, grant.dataset_id, history.subject) in requested:
            continue
        dataset = datasets.get(grant.dataset_id) or DatasetTerms(grant.dataset_id, grant.holder_id)
        mismatch = _subject_mismatch(history, grant, dataset, now)
        if mismatch is not None:
            mismatches.append(mismatch)
    return mismatches


def recheck_dataset(
    dataset: DatasetTerms,
    *,
    members: Mapping[str, ConsentHistory],
    grants: Iterable[GrantView],
    requested: Collection[str],
    now: datetime,
) -> list[GrantMismatch]:
    """List the grants on a dataset, active at `now`, that no longer match its terms or its members' consents.

    `members` maps each subject in the dataset to their history (an empty
    history for a subject without any consent on record).
    """
    mismatches = []
    for grant in _active(grants, now):
        if grant.dataset_id != dataset.dataset_id:
            continue
        terms_mismatch = _terms_mismatch(grant, dataset)
        if terms_mismatch is not None:
            mismatches.append(GrantMismatch(grant.grant_id, grant.dataset_id, None, terms_mismatch))
            continue
        for subject in sorted(members):
            if exclusion_id(grant.grant_id, grant.dataset_id, subject) in requested:
                continue
            mismatch = _subject_mismatch(members[subject], grant, dataset, now)
            if mismatch is not None:
                mismatches.append(mismatch)
    return mismatches


def _active(grants: Iterable[GrantView], now: datetime) -> list[GrantView]:
    return sorted((grant for grant in grants if grant.active_at(now)), key=lambda item: (item.grant_id, item.dataset_id))


def _terms_mismatch(grant: GrantView, dataset: DatasetTerms) -> str | None:
    if dataset.withdrawn:
        return f"dataset {dataset.dataset_id} was withdrawn"
    if not dataset.duo_codes:
        return None
    terms = PurposeCondition.from_codes(dataset.duo_codes)
    if terms.permits(requested_purposes(grant.purposes), for_profit=grant.grantee_for_profit):
        return None
    return (
        f"grant purposes {', '.join(grant.purposes) or 'none'} of {grant.grantee_id} are not within "
        f"the terms {', '.join(dataset.duo_codes)} of dataset {dataset.dataset_id}"
    )


def _subject_mismatch(history: ConsentHistory, grant: GrantView, dataset: DatasetTerms, now: datetime) -> GrantMismatch | None:
    decision = history.decide(grant.use(dataset, now))
    if decision.admits(dataset.legal_basis):
        return None
    reason = decision.reason
    if decision.decision is None:
        reason = f"{reason}, and dataset {dataset.dataset_id} has legal basis 'consent'"
    return GrantMismatch(grant.grant_id, grant.dataset_id, history.subject, reason)
