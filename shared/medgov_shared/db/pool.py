"""Connection pools and database creation."""

from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import structlog

log = structlog.get_logger(__name__)


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects and take them as parameters.
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )
    await connection.execute("SET TIME ZONE 'UTC'")


async def create_pool(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        database_url, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=30
    )
    assert pool is not None
    return pool


async def ensure_database(database_url: str) -> None:
    """Create the database named in `database_url` if it does not exist (local development and tests)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(maintenance)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
                log.info("database created", database=name)
            except asyncpg.DuplicateDatabaseError:
                pass  # another replica created it between the check and the CREATE
    finally:
        await connection.close()
