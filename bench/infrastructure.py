"""Reachability of the shared broker and database, which other people's chaos runs may restart during a benchmark."""

import asyncio
import os
import time

import asyncpg
import structlog
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

log = structlog.get_logger("bench")

# Errors that mean the broker or the database is away, not that the benchmark or a service is wrong.
UNREACHABLE = (KafkaError, OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, asyncpg.InterfaceError)


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
