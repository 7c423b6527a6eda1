"""Handlers of the events the catalog consumes.

- RegisterDataset from every hospital's inbound topic.
- The catalog events of the other regions' installations, which build the
  remote part of the search index. The catalog reads its own topic too; its
  own events (same source and region) were applied when they were emitted
  and are skipped.
"""

from collections.abc import Awaitable, Callable

import structlog

from medgov_shared.contracts.events.catalog import (
    ComplianceFlagCleared,
    ComplianceViolationFlagged,
    DatasetDescription,
    DatasetFigures,
    DatasetPublished,
    DatasetRegistered,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.messaging.context import HandlerContext, RejectEvent

from medgov_catalog import repository
from medgov_catalog.dataset_service import register_dataset
from medgov_catalog.domain.registration import RegistrationRejected
from medgov_catalog.settings import CatalogSettings

log = structlog.get_logger(__name__)

CONSUMED_TOPICS = ("medgov.catalog.v1",)

# NOTE: ComplianceViolationFlagged carries no dataset version, so flags of
# remote datasets are filed under version 0 until the contract adds one.
REMOTE_FLAG_VERSION = 0

Handler = Callable[[HandlerContext, object], Awaitable[None]]


def build_handlers(settings: CatalogSettings) -> dict[str, Handler]:
    async def handle_register_dataset(context: HandlerContext, payload: RegisterDataset) -> None:
        try:
            await register_dataset(context, payload, settings)
        except RegistrationRejected as error:
            raise RejectEvent(f"RegisterDataset '{payload.dataset_id}' rejected: {error}") from None

    def is_own(context: HandlerContext) -> bool:
        incoming = context.incoming
        return incoming is not None and incoming.source == settings.source and incoming.region == settings.region

    async def index_remote_registration(context: HandlerContext, payload: DatasetRegistered) -> None:
        if is_own(context):
            return
        if not await _claim_remote_dataset(context, payload.dataset_id, payload.institution_id, payload.region.value):
            return
        await repository.upsert_remote_version(
            context.connection,
            dataset_id=payload.dataset_id,
            version=payload.version,
            description=payload.description,
            figures=payload.figures,
            completeness_score=payload.completeness_score,
            registered_at=payload.registered_at,
        )

    async def index_remote_publication(context: HandlerContext, payload: DatasetPublished) -> None:
        if is_own(context):
            return
        if not await _claim_remote_dataset(context, payload.dataset_id, payload.institution_id, payload.region.value):
            return
        stored = await repository.set_version_status(
            context.connection, payload.dataset_id, payload.version, "published", payload.published_at
        )
        if not stored:
            # The registration was never seen (this installation joined after
            # it left the broker); the publication carries enough to index.
            await _store_version_from_publication(context, payload)
        await repository.index_version(context.connection, payload.dataset_id, payload.version)

    async def record_remote_flag(context: HandlerContext, payload: ComplianceViolationFlagged) -> None:
        if is_own(context):
            return
        if not await _claim_remote_dataset(context, payload.dataset_id, payload.institution_id, payload.region.value):
            return
        await repository.insert_flag(
            context.connection,
            flag_id=payload.flag_id,
            dataset_id=payload.dataset_id,
            version=REMOTE_FLAG_VERSION,
            institution_id=payload.institution_id,
            rule=payload.rule,
            severity=payload.severity.value,
            findings=[item.model_dump() for item in payload.findings],
            flagged_at=payload.flagged_at,
        )

    async def record_remote_flag_clearance(context: HandlerContext, payload: ComplianceFlagCleared) -> None:
        if is_own(context):
            return
        if await repository.get_flag(context.connection, payload.flag_id) is not None:
            await repository.clear_flag(context.connection, payload.flag_id, payload.cleared_at, payload.note)

    async def remove_remote_withdrawal(context: HandlerContext, payload: DatasetWithdrawn) -> None:
        if is_own(context):
            return
        dataset = await repository.get_dataset(context.connection, payload.dataset_id)
        if dataset is not None and dataset.origin == "remote":
            await repository.mark_withdrawn(context.connection, payload.dataset_id, payload.reason, payload.withdrawn_at)

    return {
        "RegisterDataset": handle_register_dataset,
        "DatasetRegistered": index_remote_registration,
        "DatasetPublished": index_remote_publication,
        "ComplianceViolationFlagged": record_remote_flag,
        "ComplianceFlagCleared": record_remote_flag_clearance,
        "DatasetWithdrawn": remove_remote_withdrawal,
    }


async def _claim_remote_dataset(context: HandlerContext, dataset_id: str, institution_id: str, region: str) -> bool:
    """Create the remote dataset row if needed; return False if the id is taken by a local dataset."""
    await repository.lock_dataset(context.connection, dataset_id)
    existing = await repository.get_dataset(context.connection, dataset_id)
    if existing is None:
        await repository.insert_dataset(context.connection, dataset_id, institution_id, region, "remote", context.now())
        return True
    if existing.origin == "local":
        # Two regions chose the same id; the local dataset keeps it and the
        # remote one stays out of this index.
        log.warning("remote dataset id collides with a local dataset; not indexed", dataset_id=dataset_id, region=region)
        return False
    return True


async def _store_version_from_publication(context: HandlerContext, payload: DatasetPublished) -> None:
    description = DatasetDescription(
        title=payload.title,
        description="",
        publisher=payload.institution_id,
        themes=(),
        keywords=(),
        access_rights="restricted",
        duo_codes=payload.duo_codes,
        legal_basis=payload.legal_basis,
        contact_point="",
        distribution_formats=(),
    )
    figures = {
        "resource_counts": {},
        "subject_count": payload.subject_count,
        "record_count": payload.record_count,
        "condition_codes": (),
        "observation_codes": (),
        "modalities": (),
        "body_parts": (),
        "study_count": 0,
        "series_count": 0,
        "instance_count": 0,
        "character_sets": (),
    }
    await repository.upsert_remote_version(
        context.connection,
        dataset_id=payload.dataset_id,
        version=payload.version,
        description=description,
        figures=DatasetFigures(**figures),
        completeness_score=payload.completeness_score,
        registered_at=payload.published_at,
    )
    await repository.set_version_status(
        context.connection, payload.dataset_id, payload.version, "published", payload.published_at
    )


