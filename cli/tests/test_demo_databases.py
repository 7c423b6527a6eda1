"""Each scenario run drops the databases of runs before the previous one, and never a running run's."""

import os
import secrets
import socket
from pathlib import Path

import asyncpg
import pytest

from medgov_cli.demo.scenario import run_demo
from medgov_cli.demo.stack import SERVICES, Stack, service_ports

pytestmark = pytest.mark.integration

RUNS = ("20261201090000", "20261202090000", "20261203090000")


async def _names(connection: asyncpg.Connection, prefix: str) -> set[str]:
    rows = await connection.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", f"{prefix}\\_%")
    return {row["datname"] for row in rows}


async def test_earlier_runs_dropped_previous_kept(tmp_path: Path) -> None:
    prefix = f"medgovtest{secrets.token_hex(4)}"
    connection = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        for run in RUNS:
            for service in SERVICES:
                await connection.execute(f'CREATE DATABASE "{prefix}_{service}_demo_{run}"')
        await connection.execute(f'CREATE DATABASE "{prefix}_consent_demo_notes"')
        stack = Stack(root=tmp_path, sample_data=tmp_path, run_id="20261204090000", database_prefix=prefix)
        # Something still works in one of the oldest run's databases: it must be left alone.
        in_use = await asyncpg.connect(stack._database_url(f"{prefix}_grants_demo_{RUNS[0]}"))
        try:
            dropped = await stack.drop_earlier_databases()
        finally:
            await in_use.close()
        left = await _names(connection, prefix)
    finally:
        for name in await _names(connection, prefix):
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()

    busy = f"{prefix}_grants_demo_{RUNS[0]}"
    older = {f"{prefix}_{service}_demo_{run}" for run in RUNS[:2] for service in SERVICES} - {busy}
    assert set(dropped) == older
    assert left == {f"{prefix}_{service}_demo_{RUNS[2]}" for service in SERVICES} | {
        f"{prefix}_consent_demo_notes", busy,
    }


def test_second_run_refused_while_ports_taken(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # A port of the block, not the console's: every one of the five must be free.
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        busy_port = listener.getsockname()[1]
        code = run_demo(keep_running=False, summary_path=tmp_path / "summary.json", console_port=busy_port - 3)

    assert code == 1
    assert not (tmp_path / "summary.json").exists()


def test_services_take_the_four_ports_after_the_console() -> None:
    assert service_ports(8100) == {"review": 8101, "catalog": 8102, "consent": 8103, "grants": 8104}
    assert Stack(root=Path("."), sample_data=Path("."), console_port=20500).url("grants") == "http://127.0.0.1:20504"
