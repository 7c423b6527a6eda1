"""Handlers of the events the review service consumes: the catalog's datasets and hospitals' submissions."""

from collections.abc import Awaitable, Callable
from typing import Any

from medgov_shared.contracts.events.catalog import DatasetPublished, DatasetWithdrawn
from medgov_shared.contracts.events.inbound import SubmitApplication
from medgov_shared.messaging.context import HandlerContext, RejectEvent

from medgov_review.domain.errors import ReviewError
from medgov_review.domain.screening import ApplicationDraft
from medgov_review.repository import CatalogProjection
from medgov_review.review_service import ReviewService

CONSUMED_TOPICS = ("medgov.catalog.v1",)

Handler = Callable[[HandlerContext, Any], Awaitable[None]]


async def record_published_dataset(context: HandlerContext, payload: DatasetPublished) -> None:
    await CatalogProjection(context.connection).apply_published(payload, context.now())


def draft_of(command: SubmitApplication) -> ApplicationDraft:
    return ApplicationDraft(
        applicant_institution=command.applicant_institution,
        principal_investigator=command.principal_investigator,
        title=command.title,
        purpose_text=command.purpose_text,
        purpose_codes=tuple(command.purpose_codes),
        dataset_ids=tuple(command.dataset_ids),
        requested_start=command.requested_start,
        requested_end=command.requested_end,
        data_environment=command.data_environment,
        irb_document_ref=command.irb_document_ref,
    )


def build_handlers(service: ReviewService) -> dict[str, Handler]:
    async def record_withdrawn_dataset(context: HandlerContext, payload: DatasetWithdrawn) -> None:
        await service.withdraw_dataset(context, payload)

    async def submit_application(context: HandlerContext, payload: SubmitApplication) -> None:
        try:
            await service.submit(context, payload.application_id, payload.idempotency_key, draft_of(payload))
        except ReviewError as error:
            # Bad input from a hospital: dead-lettered with the reason; nothing was stored.
            raise RejectEvent(f"{error.code}: {error.message}") from error

    return {
        "DatasetPublished": record_published_dataset,
        "DatasetWithdrawn": record_withdrawn_dataset,
        "SubmitApplication": submit_application,
    }
