"""Alembic migrations applied at service start.

Each service keeps its revisions in services/<service>/migrations/ and its
env.py calls `run_migrations_online`. Revisions are plain SQL through
`op.execute`; there is no ORM model to autogenerate from.
"""

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool as sa_pool
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _sqlalchemy_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )


def alembic_config(script_location: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", _sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`; safe to run on every start."""
    command.upgrade(alembic_config(script_location, database_url), revision)


async def upgrade_async(script_location: Path, database_url: str) -> None:
    # Alembic's env.py runs its own event loop, so it gets a worker thread.
    await asyncio.to_thread(upgrade, script_location, database_url)


# Arbitrary constant naming the migration lock in pg_advisory locks.
_MIGRATION_LOCK_ID = 0x6D656467_6F760002


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=sa_pool.NullPool)
    try:
        async with engine.connect() as connection:
            # Processes starting together on one database (replicas, a worker and
            # its relay) would each create the same tables, and all but one fail.
            # The lock makes them take turns; the later ones find nothing to do.
            await connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            await connection.commit()
            try:
                await connection.run_sync(_run)
                await connection.commit()
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Body of every service's migrations/env.py."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set; call medgov_shared.db.migrate.upgrade"
    asyncio.run(_run_async(url))
