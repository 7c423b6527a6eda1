"""pytest plugin with the shared fixtures; the root conftest.py registers it.

Integration tests ask for `infra` (or the settings factories built on it) and
get the real Kafka broker and PostgreSQL server of this session.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from medgov_shared.settings import ServiceSettings
from medgov_shared.testing.infrastructure import Infrastructure, new_jwt_secret, start_infrastructure
from medgov_shared.testing.services import unique_name

SAMPLE_DATA = Path(
    os.environ.get("MEDGOV_SAMPLE_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    if not (SAMPLE_DATA / "PROVENANCE.md").exists():
        pytest.fail(f"sample data not found at {SAMPLE_DATA}; set MEDGOV_SAMPLE_DATA to the shared data folder")
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    stack: list = []
    try:
        yield start_infrastructure(stack)
    finally:
        for container in reversed(stack):
            container.stop()


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return new_jwt_secret()


def database_url_for(infra: Infrastructure, database: str) -> str:
    parts = urlsplit(infra.database_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
def settings_factory(infra: Infrastructure, jwt_secret: str) -> Callable[..., ServiceSettings]:
    """Build settings of a service class with a fresh database of its own for this test."""

    def build(settings_class: type[ServiceSettings], **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {
            "region": "daegu",
            "database_url": database_url_for(infra, unique_name(f"test_{settings_class.service_name}")),
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "jwt_secret": jwt_secret,
            "log_format": "console",
            "relay_poll_interval_s": 0.2,
            "drain_timeout_s": 5.0,
        }
        values.update(overrides)
        return settings_class(**values)

    return build
