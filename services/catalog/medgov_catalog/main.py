"""Composition root of the catalog service."""

from collections.abc import Sequence
from pathlib import Path

from medgov_shared.clock import Clock
from medgov_shared.service import Service, run

from medgov_catalog.api import build_router
from medgov_catalog.handlers import CONSUMED_TOPICS, build_handlers
from medgov_catalog.settings import CatalogSettings

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def build_service(
    settings: CatalogSettings,
    clock: Clock | None = None,
    *,
    consumes: Sequence[str] = CONSUMED_TOPICS,
    consume_inbound: bool = True,
) -> Service:
    """Wire the catalog: hospitals' inbound topics, the catalog topic of every region, and the HTTP API.

    Tests pass private `consumes` topics and `consume_inbound=False` to stay apart from other producers.
    """
    return Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers=build_handlers(settings),
        consumes=consumes,
        consume_inbound=consume_inbound,
        routers=[build_router()],
        clock=clock,
        title="medgov catalog",
    )


def main() -> None:
    run(build_service(CatalogSettings.from_environment()))
