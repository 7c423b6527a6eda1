"""Sorting failures into retry-later, retry-now and give-up."""

import asyncio

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from pydantic import ValidationError

# The database or broker is away: nothing about the event is wrong, so the
# whole batch is retried after a back-off instead of being dead-lettered.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    # After a database restart asyncpg can hand out a connection it left
    # mid-operation ("cannot switch to state ..."); the chaos run saw it end
    # a consumer. Nothing is sent on such a connection, so a retry is safe.
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
)

# Contention inside PostgreSQL: retrying the same event usually succeeds.
CONTENTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)


def describe_validation_error(error: ValidationError) -> str:
    """List each invalid field with pydantic's message, without echoing the input (it may be personal data)."""
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "<root>"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def describe_error(error: BaseException) -> str:
    """Return the error's type and message for a log line, saying so when the message is empty (as for a timeout)."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message}" if message else f"{type(error).__name__} (no message)"
