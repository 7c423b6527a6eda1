"""Composition root of the review service."""

from collections.abc import Sequence
from pathlib import Path

from medgov_shared.clock import AcceleratedClock, Clock
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.service import PeriodicJob, Service, run

from medgov_review.api import build_router
from medgov_review.domain.aggregate import ReviewRules
from medgov_review.domain.governance import load_governance, packaged_governance
from medgov_review.domain.sla import SlaCalendar
from medgov_review.handlers import CONSUMED_TOPICS, build_handlers
from medgov_review.review_service import ReviewService
from medgov_review.settings import ReviewSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def rules_from(settings: ReviewSettings) -> ReviewRules:
    governance = load_governance(settings.boards_file) if settings.boards_file else packaged_governance()
    return ReviewRules(
        governance=governance,
        calendar=SlaCalendar(settings.day_count, frozenset(settings.extra_holidays)),
        window_days=settings.window_days,
    )


def build_service(
    settings: ReviewSettings,
    clock: Clock | None = None,
    *,
    consumes: Sequence[str] = CONSUMED_TOPICS,
    consume_inbound: bool = True,
) -> Service:
    """Wire the review service; tests pass their own topics so that they read only their own events."""
    if clock is None and (settings.clock_acceleration != 1.0 or settings.clock_origin is not None):
        clock = AcceleratedClock(settings.clock_acceleration, origin=settings.clock_origin)
    review = ReviewService(rules_from(settings), settings.region, clock_batch_size=settings.clock_batch_size)

    async def check_clocks(context: HandlerContext) -> None:
        await review.check_clocks(context)

    async def expire_grants(context: HandlerContext) -> None:
        await review.expire_grants(context)

    return Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers=build_handlers(review),
        consumes=consumes,
        consume_inbound=consume_inbound,
        routers=[build_router(review)],
        jobs=[
            PeriodicJob("sla-clock", settings.clock_tick_interval_s, check_clocks),
            PeriodicJob("grant-expiry", settings.clock_tick_interval_s, expire_grants),
        ],
        clock=clock,
        title="medgov review",
    )


def main() -> None:
    run(build_service(ReviewSettings.from_environment()))
