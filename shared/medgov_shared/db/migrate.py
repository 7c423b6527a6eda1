"""Alembic migrations applied at service start.

Each service keeps its revisions in services/<service>/migrations/ and its
env.py calls `run_migrations_online`. Revisions are plain SQL through
`op.execute`; there is no ORM model to autogenerate from.

A service applies them in a child process (`upgrade_async`), so the
service process never loads Alembic and SQLAlchemy, about 25 MB that it
would keep for its whole life. This module imports them only inside the
functions that need them.
"""

import asyncio
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection

# The child reads the database URL from its environment, not its command line, where `ps` would show the password.
_URL_VARIABLE = "MEDGOV_MIGRATE_DATABASE_URL"

# Arbitrary constant naming the migration lock in pg_advisory locks.
_MIGRATION_LOCK_ID = 0x6D656467_6F760002


class MigrationFailed(RuntimeError):
    """The migrations did not complete; the message ends with the child's last error line."""


def _sqlalchemy_url(database_url: str) -> str:
    return database_url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )


def alembic_config(script_location: Path, database_url: str) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", _sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` in this process; safe to run on every start."""
    from alembic import command

    command.upgrade(alembic_config(script_location, database_url), revision)


async def upgrade_async(script_location: Path, database_url: str) -> None:
    """Apply the migrations up to head in a child process; raise MigrationFailed when it fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "medgov_shared.db.migrate", str(script_location),
        env={**os.environ, _URL_VARIABLE: database_url},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await process.communicate()
    except asyncio.CancelledError:
        # A service stopped during its start must not leave the child migrating.
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise MigrationFailed(f"migrations in {script_location} failed: {_last_error(stderr, process.returncode)}")


def _last_error(stderr: bytes, returncode: int) -> str:
    """Return the exception line a traceback ends with, skipping SQLAlchemy's trailing notes."""
    lines = stderr.decode(errors="replace").splitlines()
    errors = [line for line in lines if re.match(r"[A-Za-z_][\w.]*: ", line)]
    if errors:
        return errors[-1]
    return next((line for line in reversed(lines) if line.strip()), f"exit status {returncode}")


def _run(connection: "Connection") -> None:
    from alembic import context

    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    from sqlalchemy import pool as sa_pool
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

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
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set; call medgov_shared.db.migrate.upgrade"
    asyncio.run(_run_async(url))


def main(arguments: list[str]) -> int:
    """`python -m medgov_shared.db.migrate SCRIPT_LOCATION`, with the URL in MEDGOV_MIGRATE_DATABASE_URL."""
    database_url = os.environ.get(_URL_VARIABLE)
    if len(arguments) != 1 or not database_url:
        sys.stderr.write(f"usage: {_URL_VARIABLE}=postgresql://... python -m medgov_shared.db.migrate SCRIPT_LOCATION\n")
        return 2
    upgrade(Path(arguments[0]), database_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
