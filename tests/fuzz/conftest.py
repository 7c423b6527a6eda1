"""The `fuzz` marker and the running services the fuzz tests share."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from medgov_shared.testing.fixtures import database_url_for, new_database_name
from medgov_shared.testing.services import http_client, running, topic_tag, unique_name

from .budget import CASES_RUN
from .http_strategies import use_sample_data
from .services import build


def pytest_configure(config):  # type: ignore[no-untyped-def]
    config.addinivalue_line(
        "markers", "fuzz: property-based fuzzing; MEDGOV_FUZZ_EXAMPLES sets the total examples of a dedicated run"
    )


def pytest_terminal_summary(terminalreporter):  # type: ignore[no-untyped-def]
    if CASES_RUN:
        counts = ", ".join(f"{kind} {count}" for kind, count in sorted(CASES_RUN.items()))
        terminalreporter.write_line(f"fuzz cases run: {counts}, total {sum(CASES_RUN.values())}")


@pytest.fixture(scope="session")
async def service_clients(infra, jwt_secret, sample_data, tmp_path_factory) -> AsyncIterator[Callable[[str], Awaitable[httpx.AsyncClient]]]:  # type: ignore[no-untyped-def]
    """Return an async function that starts a service on first use and returns its HTTP client.

    Each service gets a fresh database, its own consumer group and a private
    topic to consume. All of them stop at the end of the session.
    """
    use_sample_data(sample_data)
    started: dict[str, httpx.AsyncClient] = {}
    async with contextlib.AsyncExitStack() as stack:

        async def client_for(name: str) -> httpx.AsyncClient:
            if name not in started:
                common = {
                    "region": "daegu",
                    "database_url": database_url_for(infra, new_database_name(f"fuzz_{name}")),
                    "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
                    "jwt_secret": jwt_secret,
                    "kafka_group_id": unique_name(f"fuzz-{name}"),
                    "log_format": "console",
                    "relay_poll_interval_s": 0.5,
                }
                staging = tmp_path_factory.mktemp(f"staging-{name}")
                # The catalog rejects uploads into a staging area whose folder does not exist yet.
                (staging / "knuh").mkdir()
                service = build(name, common, staging, f"medgov.test-fuzz-{topic_tag()}.v1")
                await stack.enter_async_context(running(service))
                started[name] = await stack.enter_async_context(http_client(service))
            return started[name]

        yield client_for
