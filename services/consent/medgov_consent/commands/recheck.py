"""Re-checking active grants when a consent narrows or a dataset's terms change; findings replace the previous ones."""

from collections.abc import Sequence

from medgov_shared.messaging.context import HandlerContext

from medgov_consent.commands.exclusions import LockedSubject, SubjectGrants, load_subject_grants
from medgov_consent.domain import fanout
from medgov_consent.domain.history import ConsentHistory
from medgov_consent.repository import exclusions, histories, projections

# How many members' histories one pass of recheck_dataset reads.
RECHECK_CHUNK = 1000


async def recheck_subject(context: HandlerContext, history: ConsentHistory, *, view: SubjectGrants | None = None) -> int:
    """Store the subject's active grants that no longer match its consents; return how many.

    `view` is the subject's grants as the caller already read them in this transaction.
    """
    view = view or await load_subject_grants(context.connection, history.subject)
    (found,) = await recheck_subjects([LockedSubject(context, history, view)])
    return found


async def recheck_subjects(subjects: Sequence[LockedSubject]) -> list[int]:
    """Store, for each subject, its active grants that no longer match its consents; return how many for each.

    Every item shares one connection, and a subject appears once.
    """
    # Mismatches are stored only for members of a dataset, and membership
    # rows are never deleted, so a subject in no dataset has none to replace.
    members = [item for item in subjects if item.view.dataset_ids]
    if not members:
        return [0 for _ in subjects]
    connection, now = members[0].context.connection, members[0].context.now()
    found: dict[str, list[fanout.GrantMismatch]] = {}
    for item in members:
        found[item.history.subject] = mismatches = fanout.recheck_subject(
            item.history,
            subject_dataset_ids=item.view.dataset_ids,
            datasets=item.view.datasets,
            grants=item.view.grants,
            requested=item.view.requested,
            now=now,
        )
        if mismatches:
            item.context.log.info("grants no longer match a subject's consent", count=len(mismatches))
    await exclusions.replace_subject_mismatches(
        connection, list(found), [mismatch for mismatches in found.values() for mismatch in mismatches], now
    )
    return [len(found.get(item.history.subject, ())) for item in subjects]


async def recheck_dataset(context: HandlerContext, dataset_id: str) -> int:
    """Store the active grants on a dataset that no longer match its terms or its members' consents; return how many.

    Members are read RECHECK_CHUNK at a time, so a dataset of many thousand
    subjects does not hold every history in memory at once. It is still one
    transaction, which a dataset of a million subjects would make long.
    """
    connection = context.connection
    terms = (await projections.dataset_terms(connection, [dataset_id])).get(dataset_id)
    if terms is None:
        return 0
    grants = [grant for grant in await projections.grants_on(connection, [dataset_id]) if grant.active_at(context.now())]
    if not grants:
        await exclusions.replace_dataset_mismatches(connection, dataset_id, [], context.now())
        return 0
    members = await projections.members_of(connection, dataset_id)
    mismatches: list[fanout.GrantMismatch] = []
    # At least one pass, even without members: the dataset's own terms can rule a grant out.
    for start in range(0, max(len(members), 1), RECHECK_CHUNK):
        chunk = members[start : start + RECHECK_CHUNK]
        found = fanout.recheck_dataset(
            terms,
            members=await histories.load_histories(connection, chunk),
            grants=grants,
            requested=await exclusions.requested_ids(connection, chunk),
            now=context.now(),
        )
        # A grant the terms rule out is listed once, with no subject, in every pass; keep the first pass's.
        mismatches.extend(item for item in found if item.subject is not None or start == 0)
    await exclusions.replace_dataset_mismatches(connection, dataset_id, mismatches, context.now())
    if mismatches:
        context.log.info("grants no longer match a dataset", dataset_id=dataset_id, count=len(mismatches))
    return len(mismatches)
