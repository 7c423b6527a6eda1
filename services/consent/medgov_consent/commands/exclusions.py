"""Revocation fan-out, acknowledgements and the overdue flag, inside one unit of work each."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import asyncpg
import structlog

from medgov_shared.contracts.events.consent import ExclusionAcknowledged, ExclusionOverdue, ExclusionRequested
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.observability import metrics

from medgov_consent.domain.errors import NotAParty, UnknownExclusion
from medgov_consent.domain.exclusion import Exclusion, Party
from medgov_consent.domain.fanout import GrantView, PlannedExclusion, plan_exclusions
from medgov_consent.domain.history import ConsentHistory
from medgov_consent.domain.policy import DatasetTerms
from medgov_consent.repository import exclusions, histories, projections

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SubjectGrants:
    """The reads about one subject that the fan-out and the re-check share: datasets, their terms and grants, exclusions."""

    dataset_ids: list[str]
    datasets: Mapping[str, DatasetTerms]
    grants: list[GrantView]
    requested: frozenset[str]

    def with_requested(self, planned: Iterable[PlannedExclusion]) -> "SubjectGrants":
        """Return the view after `planned` exclusions were stored."""
        return replace(self, requested=self.requested | {item.exclusion_id for item in planned})


@dataclass(frozen=True)
class LockedSubject:
    """A subject's history and grants as read under its lock, in the unit of work of `context`."""

    context: HandlerContext
    history: ConsentHistory
    view: SubjectGrants


async def load_subject_grants(connection: asyncpg.Connection, subject: str) -> SubjectGrants:
    return (await load_subjects_grants(connection, [subject]))[subject]


async def load_subjects_grants(connection: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, SubjectGrants]:
    """Read the grants view of every one of `subjects` with four statements in all."""
    subject_ids = sorted(set(subjects))
    if not subject_ids:
        # A batch whose revocations were all parked or repeated reads nothing.
        return {}
    members = await projections.datasets_of_subjects(connection, subject_ids)
    if not members:
        # Nothing to exclude these subjects from or re-check, so the other reads are skipped.
        return {subject: SubjectGrants([], {}, [], frozenset()) for subject in subject_ids}
    dataset_ids = sorted({dataset_id for ids in members.values() for dataset_id in ids})
    terms = await projections.dataset_terms(connection, dataset_ids)
    grants_by_dataset: dict[str, list[GrantView]] = {}
    for grant in await projections.grants_on(connection, dataset_ids):
        grants_by_dataset.setdefault(grant.dataset_id, []).append(grant)
    requested = await exclusions.requested_by_subject(connection, list(members))
    views = {}
    for subject in subject_ids:
        ids = members.get(subject, [])
        views[subject] = SubjectGrants(
            ids,
            # Shared by every subject of the batch; each reads only the terms of its own datasets.
            terms,
            [grant for dataset_id in ids for grant in grants_by_dataset.get(dataset_id, ())],
            frozenset(requested.get(subject, ())),
        )
    return views


async def fan_out(
    context: HandlerContext, history: ConsentHistory, acknowledge_within: timedelta, *, view: SubjectGrants | None = None
) -> list[PlannedExclusion]:
    """Request the exclusions the subject's revocations require now; the caller holds the subject's lock.

    `view` is the subject's grants as the caller already read them in this transaction.
    """
    if not history.revocations:
        return []
    view = view or await load_subject_grants(context.connection, history.subject)
    (planned,) = await fan_out_many([LockedSubject(context, history, view)], acknowledge_within)
    return planned


async def fan_out_many(subjects: Sequence[LockedSubject], acknowledge_within: timedelta) -> list[list[PlannedExclusion]]:
    """Request the exclusions each subject's revocations require now, with one insert for all; return each one's plan.

    Every item shares one connection, and a subject appears once. The
    ExclusionRequested events go out in the unit of work of their subject's item.
    """
    revoking = [item for item in subjects if item.history.revocations]
    if not revoking:
        return [[] for _ in subjects]
    connection, now = revoking[0].context.connection, revoking[0].context.now()
    plans = [
        plan_exclusions(
            item.history,
            subject_dataset_ids=item.view.dataset_ids,
            datasets=item.view.datasets,
            grants=item.view.grants,
            requested=item.view.requested,
            now=now,
            acknowledge_within=acknowledge_within,
        )
        if item.history.revocations
        else []
        for item in subjects
    ]
    inserted = await exclusions.insert_exclusions(connection, [exclusion for plan in plans for exclusion in plan])
    for item, plan in zip(subjects, plans, strict=True):
        await item.context.emit_many(requested_events([exclusion for exclusion in plan if exclusion.exclusion_id in inserted]))
        if plan:
            # At info level these lines took 4% of the service's CPU time in a storm of
            # 500 revocations a second (py-spy). One info line per call follows.
            item.context.log.debug("exclusions requested", count=len(plan))
    if inserted:
        log.info("exclusions requested", subjects=sum(1 for plan in plans if plan), count=len(inserted))
    await histories.mark_fanned_out(connection, [item.history.subject for item in revoking], now)
    return plans


async def fan_out_to_subjects(context: HandlerContext, subjects: Iterable[str], acknowledge_within: timedelta) -> int:
    """Run the fan-out for those of `subjects` that ever revoked; return the number of exclusions requested."""
    revoking = await histories.subjects_with_revocations(context.connection, subjects)
    if not revoking:
        return 0
    await histories.lock_subjects(context.connection, revoking, context.now())
    loaded = await histories.load_histories(context.connection, revoking)
    views = await load_subjects_grants(context.connection, revoking)
    plans = await fan_out_many(
        [LockedSubject(context, loaded[subject], views[subject]) for subject in revoking], acknowledge_within
    )
    return sum(len(plan) for plan in plans)


async def fan_out_due_revocations(context: HandlerContext, acknowledge_within: timedelta, limit: int = 50) -> int:
    """Fan out revocations whose effective time has come since they were recorded; a periodic job."""
    subjects = await histories.subjects_with_due_revocations(context.connection, context.now(), limit)
    return await fan_out_to_subjects(context, subjects, acknowledge_within)


async def acknowledge(
    context: HandlerContext, exclusion_id: str, *, roles: Iterable[str], institution_id: str
) -> Exclusion:
    """Record the acknowledgement of the party the caller's roles at `institution_id` stand for; a repeat changes nothing."""
    exclusion = await exclusions.lock_exclusion(context.connection, exclusion_id)
    if exclusion is None:
        raise UnknownExclusion(f"exclusion {exclusion_id} not found")
    party = _party(exclusion, roles, institution_id)
    updated, changed = exclusion.acknowledge(party, context.now())
    if not changed:
        return updated

    await exclusions.save_acknowledgements(context.connection, updated)
    await context.emit(
        ExclusionAcknowledged(
            subject=updated.subject,
            exclusion_id=updated.exclusion_id,
            grant_id=updated.grant_id,
            dataset_id=updated.dataset_id,
            party=party.value,
            party_institution=institution_id,
            acknowledged_at=updated.acknowledged_at(party),
            complete=updated.complete,
        )
    )
    context.log.info("exclusion acknowledged", exclusion_id=exclusion_id, party=party.value, complete=updated.complete)
    return updated


async def flag_overdue_exclusions(context: HandlerContext, limit: int = 100) -> int:
    """Raise ExclusionOverdue once for each open exclusion past its deadline; a periodic job."""
    now = context.now()
    flagged = 0
    for exclusion in await exclusions.claim_overdue(context.connection, now, limit):
        if not exclusion.is_overdue(now):
            continue
        marked = exclusion.mark_overdue(now)
        await exclusions.mark_overdue(context.connection, marked)
        missing = marked.missing_parties()
        await context.emit(
            ExclusionOverdue(
                subject=marked.subject,
                exclusion_id=marked.exclusion_id,
                grant_id=marked.grant_id,
                dataset_id=marked.dataset_id,
                missing_parties=tuple(party.value for party in missing),
                institution_ids=tuple(marked.institution_of(party) for party in missing),
                acknowledge_by=marked.acknowledge_by,
                detected_at=now,
            )
        )
        context.log.warning(
            "exclusion overdue", exclusion_id=marked.exclusion_id, missing=[party.value for party in missing]
        )
        # NOTE: counted when written to the outbox; a transaction that then
        # rolls back leaves the counter one ahead of the published events.
        metrics.EXCLUSIONS_OVERDUE.inc()
        flagged += 1
    return flagged


def _party(exclusion: Exclusion, roles: Iterable[str], institution_id: str) -> Party:
    """Return the first party one of `roles` stands for; raise the last NotAParty if none does."""
    refusal = NotAParty(f"no role among {sorted(roles)} may acknowledge exclusion {exclusion.exclusion_id}")
    for role in sorted(roles):
        try:
            return exclusion.party_of(role, institution_id)
        except NotAParty as error:
            refusal = error
    raise refusal


def requested_events(planned: Sequence[PlannedExclusion]) -> list[ExclusionRequested]:
    """Build the ExclusionRequested events of one subject's plan: the first is validated, the others are copies of it.

    A copy differs in the exclusion, grant, dataset, consent and institution
    ids. Those come from the service's projections, whose values passed the
    same identifier types and the personal-data guard when their events
    arrived, or from exclusion_id(), so validating each copy again would
    check nothing new. It was about half the cost of emitting one.
    """
    if not planned:
        return []
    first = _requested_event(planned[0])
    copies = [
        first.model_copy(
            update={
                "exclusion_id": exclusion.exclusion_id,
                "grant_id": exclusion.grant_id,
                "dataset_id": exclusion.dataset_id,
                "consent_id": exclusion.consent_id,
                "grantee_institution": exclusion.grantee_id,
                "holder_institution": exclusion.holder_id,
                "requested_at": exclusion.requested_at,
                "acknowledge_by": exclusion.acknowledge_by,
            }
        )
        for exclusion in planned[1:]
    ]
    return [first, *copies]


def _requested_event(exclusion: PlannedExclusion) -> ExclusionRequested:
    return ExclusionRequested(
        subject=exclusion.subject,
        exclusion_id=exclusion.exclusion_id,
        grant_id=exclusion.grant_id,
        dataset_id=exclusion.dataset_id,
        consent_id=exclusion.consent_id,
        grantee_institution=exclusion.grantee_id,
        holder_institution=exclusion.holder_id,
        requested_at=exclusion.requested_at,
        acknowledge_by=exclusion.acknowledge_by,
    )
