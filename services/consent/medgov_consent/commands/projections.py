"""Keeping the projections of datasets, applications and grants, and reacting when they change.

A revocation made earlier can reach a new grant or a new dataset member, so
both run the fan-out for the subjects concerned. Changed dataset terms and new
grants run the re-check.
"""

from datetime import datetime, timedelta

from medgov_shared.contracts.events.catalog import DatasetPublished, DatasetRegistered, DatasetSubjectsAdded, DatasetWithdrawn
from medgov_shared.contracts.events.review import AccessGranted, ApplicationApproved, ApplicationSubmitted
from medgov_shared.messaging.context import HandlerContext

from medgov_consent.commands.exclusions import fan_out_to_subjects
from medgov_consent.commands.recheck import recheck_dataset
from medgov_consent.repository import projections


async def dataset_registered(context: HandlerContext, payload: DatasetRegistered) -> None:
    await projections.record_registration(context.connection, payload)


async def dataset_subjects_added(context: HandlerContext, payload: DatasetSubjectsAdded, acknowledge_within: timedelta) -> None:
    added = await projections.add_members(
        context.connection, payload.dataset_id, payload.institution_id, payload.version, payload.subjects
    )
    if not added:
        return
    await fan_out_to_subjects(context, added, acknowledge_within)
    await recheck_dataset(context, payload.dataset_id)


async def dataset_published(context: HandlerContext, payload: DatasetPublished) -> None:
    if await projections.record_publication(context.connection, payload):
        await recheck_dataset(context, payload.dataset_id)


async def dataset_withdrawn(context: HandlerContext, payload: DatasetWithdrawn) -> None:
    await projections.record_withdrawal(context.connection, payload)
    await recheck_dataset(context, payload.dataset_id)


async def application_submitted(context: HandlerContext, payload: ApplicationSubmitted) -> None:
    await projections.record_application(context.connection, payload)


async def application_approved(context: HandlerContext, payload: ApplicationApproved) -> None:
    await projections.record_approval(context.connection, payload)


async def access_granted(context: HandlerContext, payload: AccessGranted, *, granted_at: datetime, acknowledge_within: timedelta) -> None:
    await projections.record_grant(context.connection, payload, granted_at)
    members = await projections.members_of(context.connection, payload.dataset_id)
    await fan_out_to_subjects(context, members, acknowledge_within)
    await recheck_dataset(context, payload.dataset_id)


async def access_ended(context: HandlerContext, grant_id: str, ended_at: datetime, reason: str) -> None:
    known = await projections.end_grant(context.connection, grant_id, ended_at, reason)
    await context.connection.execute("DELETE FROM grant_mismatches WHERE grant_id = $1", grant_id)
    if not known:
        context.log.info("ending of a grant not seen yet kept for later", grant_id=grant_id, reason=reason)
