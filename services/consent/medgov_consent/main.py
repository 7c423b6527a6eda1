"""Composition root of the consent service."""

from collections.abc import Sequence
from pathlib import Path

from medgov_shared.clock import Clock
from medgov_shared.contracts.events.inbound import RevokeConsent
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.service import PeriodicJob, Service, run

from medgov_consent.api import ROUTERS
from medgov_consent.commands.exclusions import fan_out_due_revocations, flag_overdue_exclusions
from medgov_consent.handlers import CONSUMED_TOPICS, build_handlers
from medgov_consent.settings import ConsentSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def build_service(
    settings: ConsentSettings,
    clock: Clock | None = None,
    *,
    consumes: Sequence[str] = CONSUMED_TOPICS,
    consume_inbound: bool = True,
) -> Service:
    """Wire the consent service; tests pass their own topics to stay apart from other producers."""

    async def flag_overdue(context: HandlerContext) -> None:
        await flag_overdue_exclusions(context)

    async def fan_out_due(context: HandlerContext) -> None:
        await fan_out_due_revocations(context, settings.acknowledge_within)

    return Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers=build_handlers(settings.acknowledge_within),
        consumes=consumes,
        consume_inbound=consume_inbound,
        # A revocation must reach the grants fast (ADR 0038); consents in the same poll can wait.
        urgent_event_types=[RevokeConsent.event_type],
        routers=ROUTERS,
        jobs=[
            PeriodicJob("exclusion-overdue", settings.overdue_check_interval_s, flag_overdue),
            PeriodicJob("due-revocations", settings.due_revocation_check_interval_s, fan_out_due),
        ],
        clock=clock,
        title="medgov consent",
    )


def main() -> None:
    run(build_service(ConsentSettings.from_environment()))
