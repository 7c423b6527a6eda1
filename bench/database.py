"""PostgreSQL side of the benchmark: one fresh database per arm run, and the rows the correctness gate reads."""

import os
import uuid
from collections.abc import Iterable

import asyncpg

from bench.processes import database_url


def maintenance_url() -> str:
    return os.environ["DATABASE_URL"]


def new_database_name(arm: str) -> str:
    return f"bench_{arm}_{uuid.uuid4().hex[:10]}"


async def create_database(name: str) -> str:
    connection = await asyncpg.connect(maintenance_url())
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return database_url(maintenance_url(), name)


async def server_version() -> str:
    connection = await asyncpg.connect(maintenance_url())
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


async def drop_database(name: str) -> None:
    """Drop a database this benchmark created; WITH (FORCE) closes connections a killed process left."""
    if not name.startswith("bench_"):
        raise ValueError(f"refusing to drop {name!r}: the benchmark drops only the bench_* databases it created")
    connection = await asyncpg.connect(maintenance_url())
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def fetch_column(name: str, query: str, *args: object) -> list:
    """Run `query` in database `name` and return its first column."""
    return [row[0] for row in await fetch_rows(name, query, *args)]


async def fetch_rows(name: str, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url(maintenance_url(), name))
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def count_in(name: str, table: str, column: str, values: Iterable[object], cast: str) -> int:
    rows = await fetch_column(name, f"SELECT count(*) FROM {table} WHERE {column} = ANY($1::{cast}[])", list(values))
    return int(rows[0])


async def analyze(name: str) -> None:
    """Give the planner statistics for every table of database `name`, as a database in service long enough has.

    A benchmark database is new. Autovacuum analyzes it on its first visit,
    which comes at some point in the first minute. Until then PostgreSQL
    has no statistics for columns such as `consents.subject`, and plans the
    services' look-ups of a batch's subjects (`subject = ANY($1)`) as
    sequential scans: 10.6 ms at 100,000 rows against 0.55 ms with
    statistics. The statistics taken here stay useful as the tables grow,
    because they record each column's share of distinct values.
    """
    connection = await asyncpg.connect(database_url(maintenance_url(), name))
    try:
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
