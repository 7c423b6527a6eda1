"""Re-checking active grants when a consent narrows or a dataset's terms change; findings replace the previous ones."""

from medgov_shared.messaging.context import HandlerContext

from medgov_consent.commands.exclusions import SubjectGrants, load_subject_grants
from medgov_consent.domain import fanout
from medgov_consent.domain.history import ConsentHistory
from medgov_consent.repository import exclusions, histories, projections

# How many members' histories one pass of recheck_dataset reads.
RECHECK_CHUNK = 1000


async def recheck_subject(context: HandlerContext, history: ConsentHistory, *, view: SubjectGrants | None = None) -> int:
    """Store the subject's active grants that no longer match its consents; return how many.

    `view` is the subject's grants as the caller already read them in this transaction.
    """
    connection = context.connection
    view = view or await load_subject_grants(connection, history.subject)
    if not view.dataset_ids:
        # Mismatches are stored only for members of a dataset, and membership
        # rows are never deleted, so a subject in no dataset has none to replace.
        return 0
    mismatches = fanout.recheck_subject(
        history,
        subject_dataset_ids=view.dataset_ids,
        datasets=view.datasets,
        grants=view.grants,
        requested=view.requested,
        now=context.now(),
    )
    await exclusions.replace_subject_mismatches(connection, history.subject, mismatches, context.now())
    if mismatches:
        context.log.info("grants no longer match a subject's consent", count=len(mismatches))
    return len(mismatches)


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
