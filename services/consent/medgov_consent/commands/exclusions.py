"""Revocation fan-out, acknowledgements and the overdue flag, inside one unit of work each."""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

import asyncpg

from medgov_shared.contracts.events.consent import ExclusionAcknowledged, ExclusionOverdue, ExclusionRequested
from medgov_shared.messaging.context import HandlerContext

from medgov_consent.domain.errors import NotAParty, UnknownExclusion
from medgov_consent.domain.exclusion import Exclusion, Party
from medgov_consent.domain.fanout import GrantView, PlannedExclusion, plan_exclusions
from medgov_consent.domain.history import ConsentHistory
from medgov_consent.domain.policy import DatasetTerms
from medgov_consent.repository import exclusions, histories, projections


@dataclass(frozen=True)
class SubjectGrants:
    """The reads about one subject that the fan-out and the re-check share: datasets, their terms and grants, exclusions."""

    dataset_ids: list[str]
    datasets: dict[str, DatasetTerms]
    grants: list[GrantView]
    requested: frozenset[str]

    def with_requested(self, planned: Iterable[PlannedExclusion]) -> "SubjectGrants":
        """Return the view after `planned` exclusions were stored."""
        return replace(self, requested=self.requested | {item.exclusion_id for item in planned})


async def load_subject_grants(connection: asyncpg.Connection, subject: str) -> SubjectGrants:
    dataset_ids = await projections.datasets_of_subject(connection, subject)
    if not dataset_ids:
        # Nothing to exclude the subject from or re-check, so the other reads are skipped.
        return SubjectGrants([], {}, [], frozenset())
    return SubjectGrants(
        dataset_ids,
        await projections.dataset_terms(connection, dataset_ids),
        await projections.grants_on(connection, dataset_ids),
        frozenset(await exclusions.requested_ids(connection, [subject])),
    )


async def fan_out(
    context: HandlerContext, history: ConsentHistory, acknowledge_within: timedelta, *, view: SubjectGrants | None = None
) -> list[PlannedExclusion]:
    """Request the exclusions the subject's revocations require now; the caller holds the subject's lock.

    `view` is the subject's grants as the caller already read them in this transaction.
    """
    connection = context.connection
    now = context.now()
    if not history.revocations:
        return []

    view = view or await load_subject_grants(connection, history.subject)
    planned = plan_exclusions(
        history,
        subject_dataset_ids=view.dataset_ids,
        datasets=view.datasets,
        grants=view.grants,
        requested=view.requested,
        now=now,
        acknowledge_within=acknowledge_within,
    )
    inserted = await exclusions.insert_exclusions(connection, planned)
    for exclusion in planned:
        if exclusion.exclusion_id in inserted:
            await context.emit(_requested_event(exclusion))
    await histories.mark_fanned_out(connection, history.subject, now)
    if planned:
        context.log.info("exclusions requested", count=len(planned))
    return planned


async def fan_out_to_subjects(context: HandlerContext, subjects: Iterable[str], acknowledge_within: timedelta) -> int:
    """Run the fan-out for those of `subjects` that ever revoked; return the number of exclusions requested."""
    revoking = await histories.subjects_with_revocations(context.connection, subjects)
    if not revoking:
        return 0
    await histories.lock_subjects(context.connection, revoking, context.now())
    loaded = await histories.load_histories(context.connection, revoking)
    requested = 0
    for subject in revoking:
        requested += len(await fan_out(context, loaded[subject], acknowledge_within))
    return requested


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
