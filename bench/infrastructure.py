"""The broker and database a benchmark runs on: the shared pair or a private one, and whether they answer.

Other people's test runs share the pair in var/local.env: they restart it,
and the topics they leave behind (thousands of medgov.test-* and t-*
inbound topics) are all matched by the services' inbound subscription and
fill the broker's heap. A private pair, started by the local launcher with
its own ports and state directory, has only the registry's topics.
"""

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

log = structlog.get_logger("bench")

# Errors that mean the broker or the database is away, not that the benchmark or a service is wrong.
UNREACHABLE = (KafkaError, OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError)


# The launcher's default ports plus 30000, apart from the shared pair and the chaos runs' pairs.
PRIVATE_PORTS = {
    "MEDGOV_KAFKA_PORT": "49092",
    "MEDGOV_KAFKA_SASL_PORT": "49093",
    "MEDGOV_KAFKA_CONTROLLER_PORT": "49094",
    "MEDGOV_POSTGRES_PORT": "45432",
}


class InfrastructureDisturbed(RuntimeError):
    """Raised when the broker or database was unreachable during a timed run, so its figures do not count."""


async def reachable() -> str | None:
    """Return None when both the broker and the database answer, else what failed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], request_timeout_ms=5000)
    try:
        await admin.start()
        await admin.list_topics()
    except UNREACHABLE as error:
        return f"Kafka: {type(error).__name__}: {error}"
    finally:
        await admin.close()
    try:
        connection = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=5)
        await connection.close()
    except (*UNREACHABLE, asyncio.TimeoutError) as error:
        return f"PostgreSQL: {type(error).__name__}: {error}"
    return None


async def wait_until_reachable(timeout_s: float = 900.0) -> None:
    """Wait for the broker and the database; raise InfrastructureDisturbed when they stay away for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    problem = await reachable()
    while problem is not None:
        if time.monotonic() > deadline:
            raise InfrastructureDisturbed(f"still unreachable after {timeout_s:.0f} s: {problem}")
        log.warning("waiting for the broker and database", problem=problem)
        await asyncio.sleep(10)
        problem = await reachable()


def private_ports(ports: str | None) -> dict[str, str]:
    """Map "KAFKA,SASL,CONTROLLER,POSTGRES" port numbers to the launcher's variables; None gives PRIVATE_PORTS."""
    if ports is None:
        return dict(PRIVATE_PORTS)
    numbers = [item.strip() for item in ports.split(",")]
    if len(numbers) != len(PRIVATE_PORTS) or not all(item.isdigit() for item in numbers):
        raise ValueError(f"--private-ports must be four port numbers (Kafka, SASL, controller, PostgreSQL), got {ports!r}")
    return dict(zip(PRIVATE_PORTS, numbers, strict=True))


@contextlib.contextmanager
def private_pair(var_dir: Path, ports: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Start a private Kafka broker and PostgreSQL server for the benchmark, point this process at them, stop them after.

    The services started afterwards inherit KAFKA_BOOTSTRAP_SERVERS and
    DATABASE_URL from this process's environment.
    """
    from medgov_cli.chaos.infrastructure import environment
    from medgov_cli.chaos.infrastructure import private_pair as launcher_pair

    with launcher_pair(var_dir, ports or PRIVATE_PORTS, remove_state=True) as pair:
        addresses = {"KAFKA_BOOTSTRAP_SERVERS": pair.kafka_bootstrap_servers, "DATABASE_URL": pair.database_url}
        with environment(addresses):
            yield {"kafka_bootstrap_servers": pair.kafka_bootstrap_servers, "database_url": pair.database_url}
