"""pytest plugin with the shared fixtures; the root conftest.py registers it.

Integration tests ask for `infra` (or the settings factories built on it) and
get the real Kafka broker and PostgreSQL server of this session.
"""

import asyncio
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from medgov_shared.contracts.institutions import (
    EXTRA_INSTITUTIONS_ENV,
    Institution,
    all_institutions,
    load_institutions_file,
    write_institutions_file,
)
from medgov_shared.settings import ServiceSettings
from medgov_shared.testing.infrastructure import Infrastructure, new_jwt_secret, start_infrastructure
from medgov_shared.testing.services import TOPIC_TAGS, unique_name

SAMPLE_DATA = Path(
    os.environ.get("MEDGOV_SAMPLE_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data")
)


@pytest.fixture(scope="session")
def sample_data() -> Path:
    if not (SAMPLE_DATA / "PROVENANCE.md").exists():
        pytest.fail(f"sample data not found at {SAMPLE_DATA}; set MEDGOV_SAMPLE_DATA to the shared data folder")
    return SAMPLE_DATA


# Databases the tests of this session named through new_database_name. They are
# dropped when the session ends, because a full run makes about 150 of them (1.5 GB).
_CREATED_DATABASES: list[str] = []


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    stack: list = []
    try:
        infrastructure = start_infrastructure(stack)
        yield infrastructure
        # In a thread of its own, so that pytest-asyncio's event loop is left as it is.
        cleanup = threading.Thread(target=asyncio.run, args=(_clean_up(infrastructure),))
        cleanup.start()
        cleanup.join()
    finally:
        for container in reversed(stack):
            container.stop()


async def _clean_up(infrastructure: Infrastructure) -> None:
    await _drop_databases(infrastructure.database_url, _CREATED_DATABASES)
    await _delete_topics(infrastructure.kafka_bootstrap_servers, TOPIC_TAGS)


async def _delete_topics(bootstrap: str, tags: list[str]) -> None:
    """Delete the topics whose names contain one of `tags`; report on stderr what could not be deleted."""
    if not tags:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
    failed: dict[str, int] = {}
    try:
        await admin.start()
        names = sorted(name for name in await admin.list_topics() if any(tag in name for tag in tags))
        # In slices, so that one request does not ask the controller for hundreds of deletions at once.
        for start in range(0, len(names), 50):
            response = await admin.delete_topics(names[start : start + 50])
            failed.update((topic, code) for topic, code, *_ in response.topic_error_codes if code != 0)
    except (OSError, KafkaError) as error:
        # A warning would be lost: the session's warnings summary is already printed.
        sys.stderr.write(f"test topics not deleted, Kafka did not answer: {error}\n")
    finally:
        await admin.close()
    if failed:
        sys.stderr.write(f"{len(failed)} test topics not deleted, e.g. {next(iter(failed.items()))} (topic, Kafka error code)\n")


async def _drop_databases(maintenance_url: str, names: list[str]) -> None:
    """Drop the named databases that exist; a server that went away leaves them for `make clean`."""
    try:
        connection = await asyncpg.connect(maintenance_url, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        warnings.warn(f"test databases not dropped, PostgreSQL unreachable: {error}", stacklevel=1)
        return
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
def register_institutions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., None]]:
    """Return a function that adds institutions to the registry until the test ends.

    The function writes them to an extra institutions file of this test, with
    the rows of any extra file named before, and points
    MEDGOV_EXTRA_INSTITUTIONS_FILE at it. Services in this process and the
    subprocesses the test starts afterwards all see them. At the end the
    variable is restored and the registry cache cleared.
    """
    previous = os.environ.get(EXTRA_INSTITUTIONS_ENV)
    inherited = list(load_institutions_file(Path(previous)).values()) if previous else []
    path = tmp_path_factory.mktemp("institutions") / "extra-institutions.yaml"
    added: list[Institution] = []

    def register(*institutions: Institution) -> None:
        added.extend(institutions)
        write_institutions_file(path, [*inherited, *added])
        os.environ[EXTRA_INSTITUTIONS_ENV] = str(path)
        all_institutions.cache_clear()

    yield register

    if previous is None:
        os.environ.pop(EXTRA_INSTITUTIONS_ENV, None)
    else:
        os.environ[EXTRA_INSTITUTIONS_ENV] = previous
    all_institutions.cache_clear()


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    return new_jwt_secret()


def database_url_for(infra: Infrastructure, database: str) -> str:
    parts = urlsplit(infra.database_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def new_database_name(prefix: str) -> str:
    """Return a fresh database name starting with `prefix`; the database is dropped when the test session ends."""
    name = unique_name(prefix)
    _CREATED_DATABASES.append(name)
    return name


@pytest.fixture
def settings_factory(infra: Infrastructure, jwt_secret: str) -> Callable[..., ServiceSettings]:
    """Build settings of a service class with a fresh database of its own for this test."""

    def build(settings_class: type[ServiceSettings], **overrides: object) -> ServiceSettings:
        values: dict[str, object] = {
            "region": "daegu",
            "database_url": database_url_for(infra, new_database_name(f"test_{settings_class.service_name}")),
            "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
            "jwt_secret": jwt_secret,
            "log_format": "console",
            "relay_poll_interval_s": 0.2,
            "drain_timeout_s": 5.0,
        }
        values.update(overrides)
        return settings_class(**values)

    return build
