"""Migrations at service start: three processes on one fresh database at once, a failure, and the child process.

Kubernetes starts a service's replicas, and its separate outbox relay, together;
each runs the migrations at start, and all of them must come up.
"""

import subprocess
import sys

import asyncpg
import pytest

from medgov_shared.db.migrate import MigrationFailed, upgrade_async
from medgov_shared.testing.fixtures import database_url_for, new_database_name
from medgov_shared.testing.infrastructure import REPO_ROOT

pytestmark = pytest.mark.integration

UPGRADE = "import sys; from pathlib import Path; from medgov_shared.db.migrate import upgrade; upgrade(Path(sys.argv[1]), sys.argv[2])"


@pytest.mark.parametrize("service", ["review", "catalog", "consent", "grants"])
async def test_processes_starting_together_all_migrate(infra, service: str) -> None:
    name = new_database_name(f"test_migrate_{service}")
    maintenance = await asyncpg.connect(infra.database_url)
    try:
        await maintenance.execute(f'CREATE DATABASE "{name}"')
    finally:
        await maintenance.close()
    url = database_url_for(infra, name)
    migrations = REPO_ROOT / "services" / service / "migrations"

    processes = [
        subprocess.Popen([sys.executable, "-c", UPGRADE, str(migrations), url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outcomes = [(process.wait(timeout=120), process.stderr.read()) for process in processes]

    assert [code for code, _ in outcomes] == [0, 0, 0], "\n".join(stderr[-1500:] for _, stderr in outcomes)
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM alembic_version") == 1
    finally:
        await connection.close()


async def test_failed_migration_names_the_error(infra) -> None:
    url = database_url_for(infra, "medgov_no_such_database")

    with pytest.raises(MigrationFailed, match='database "medgov_no_such_database" does not exist'):
        await upgrade_async(REPO_ROOT / "services" / "consent" / "migrations", url)


async def test_service_process_does_not_load_alembic() -> None:
    # The migrations run in a child process, so the service keeps about 25 MB less for its whole life.
    code = "import sys, medgov_consent.main; print(sorted(m for m in ('alembic', 'sqlalchemy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert result.stdout.strip() == "[]", result.stderr[-2000:]
