"""Composition root of the grants service."""

from collections.abc import Sequence
from pathlib import Path

from medgov_shared.clock import Clock
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.service import PeriodicJob, Service, run

from medgov_grants import repository
from medgov_grants.api import build_router
from medgov_grants.domain.policy import default_policy, load_policy
from medgov_grants.domain.tool_grants import Actor
from medgov_grants.fund_service import FundService
from medgov_grants.handlers import CONSUMED_TOPICS, build_handlers
from medgov_grants.settings import GrantsSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

# Seconds between the load-fund job's runs, which also catch up journal entries another instance appended.
FUND_CHECK_INTERVAL_S = 60.0

# The identity recorded for the allocation the service makes by itself at start.
SYSTEM_ACTOR = Actor(subject="medgov-grants", roles=frozenset({"fund_admin"}))


def build_service(
    settings: GrantsSettings,
    clock: Clock | None = None,
    *,
    consumes: Sequence[str] = CONSUMED_TOPICS,
    fund_service: FundService | None = None,
) -> Service:
    """Wire the grants service.

    Tests pass their own `consumes` topics to stay apart from other producers,
    and may pass the `fund_service` (built by `build_fund_service`) to inspect its rebuilds.
    """
    fund = fund_service or build_fund_service(settings)
    policy = fund.configured_policy

    async def allocate_configured_fund(context: HandlerContext) -> None:
        if await repository.posting_exists(context.connection, f"alloc-{policy.fund.fund_id}"):
            return
        split = policy.fund.model_dump(mode="json")
        await fund.run_command(context, "allocate", {"split": split}, SYSTEM_ACTOR)

    async def load_fund(context: HandlerContext) -> None:
        # The fund is rebuilt when the service starts instead of at its first input, so a
        # long replay happens (and is logged) at start. Later runs only read new journal entries.
        await fund.read(context.connection, lambda _: None)

    jobs = [PeriodicJob("load-fund", FUND_CHECK_INTERVAL_S, load_fund)]
    if settings.allocate_on_start:
        jobs.append(PeriodicJob("allocate-fund", settings.allocation_check_interval_s, allocate_configured_fund))

    service = Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers=build_handlers(fund),
        consumes=consumes,
        routers=[build_router(fund)],
        jobs=jobs,
        clock=clock,
        title="medgov grants",
    )
    return service


def build_fund_service(settings: GrantsSettings) -> FundService:
    policy = load_policy(settings.policy_file) if settings.policy_file else default_policy()
    return FundService(policy, region=settings.region.value, snapshot_every=settings.snapshot_every_inputs)


def main() -> None:
    run(build_service(GrantsSettings.from_environment()))
