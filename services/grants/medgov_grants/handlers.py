"""Handlers of the events the grants service consumes from the review, catalog and consent topics."""

from medgov_shared.contracts.base import EventPayload
from medgov_shared.messaging.consumer import Handler
from medgov_shared.messaging.context import HandlerContext, RejectEvent

from medgov_grants.domain.errors import GrantsError, LedgerInvariantViolated
from medgov_grants.fund_service import FundService

CONSUMED_TOPICS = ("medgov.review.v1", "medgov.catalog.v1", "medgov.consent.v1")

CONSUMED_EVENT_TYPES = (
    "AccessGranted",
    "DatasetPublished",
    "DatasetWithdrawn",
    "ComplianceViolationFlagged",
    "ComplianceFlagCleared",
    "ExclusionOverdue",
    "ExclusionAcknowledged",
)


def build_handlers(fund_service: FundService) -> dict[str, Handler]:
    """Return one handler per consumed event type; all of them apply the event to the fund."""

    async def apply_to_fund(context: HandlerContext, payload: EventPayload) -> None:
        try:
            await fund_service.apply_event(context, payload)
        except LedgerInvariantViolated:
            # A bug, not bad input: let the consumer retry and then dead-letter it as handler_failed.
            raise
        except GrantsError as error:
            raise RejectEvent(f"{payload.event_type} cannot be applied to the fund: {error}") from error

    return {event_type: apply_to_fund for event_type in CONSUMED_EVENT_TYPES}
