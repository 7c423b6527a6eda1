"""Exclusions and the re-check findings in PostgreSQL."""

from collections.abc import Iterable, Sequence
from datetime import datetime

import asyncpg

from medgov_consent.domain.exclusion import Exclusion
from medgov_consent.domain.fanout import GrantMismatch, PlannedExclusion


async def requested_ids(connection: asyncpg.Connection, subjects: Iterable[str]) -> set[str]:
    """Return the ids of the exclusions already requested for any of `subjects`."""
    return set().union(*(await requested_by_subject(connection, subjects)).values())


async def requested_by_subject(connection: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, set[str]]:
    """Return the ids of the exclusions already requested for each of `subjects`; a subject with none is left out."""
    rows = await connection.fetch(
        "SELECT subject, exclusion_id FROM exclusions WHERE subject = ANY($1::text[])", sorted(set(subjects))
    )
    requested: dict[str, set[str]] = {}
    for row in rows:
        requested.setdefault(row["subject"], set()).add(row["exclusion_id"])
    return requested


async def insert_exclusions(connection: asyncpg.Connection, planned: Sequence[PlannedExclusion]) -> set[str]:
    """Store planned exclusions with one statement; return the ids that were new (an existing id is left as it is)."""
    if not planned:
        return set()
    rows = await connection.fetch(
        """
        INSERT INTO exclusions (exclusion_id, grant_id, dataset_id, subject, consent_id, grantee_id, holder_id,
                                reason, requested_at, acknowledge_by)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::timestamptz[], $10::timestamptz[])
        ON CONFLICT (exclusion_id) DO NOTHING RETURNING exclusion_id
        """,
        [item.exclusion_id for item in planned],
        [item.grant_id for item in planned],
        [item.dataset_id for item in planned],
        [item.subject for item in planned],
        [item.consent_id for item in planned],
        [item.grantee_id for item in planned],
        [item.holder_id for item in planned],
        [item.reason for item in planned],
        [item.requested_at for item in planned],
        [item.acknowledge_by for item in planned],
    )
    return {row["exclusion_id"] for row in rows}


async def lock_exclusion(connection: asyncpg.Connection, exclusion_id: str) -> Exclusion | None:
    row = await connection.fetchrow("SELECT * FROM exclusions WHERE exclusion_id = $1 FOR UPDATE", exclusion_id)
    return _exclusion(row) if row else None


async def save_acknowledgements(connection: asyncpg.Connection, exclusion: Exclusion) -> None:
    await connection.execute(
        "UPDATE exclusions SET grantee_acknowledged_at = $2, holder_acknowledged_at = $3 WHERE exclusion_id = $1",
        exclusion.exclusion_id,
        exclusion.grantee_acknowledged_at,
        exclusion.holder_acknowledged_at,
    )


async def claim_overdue(connection: asyncpg.Connection, now: datetime, limit: int) -> list[Exclusion]:
    """Lock open exclusions past their deadline; rows another transaction holds are left for it."""
    rows = await connection.fetch(
        """
        SELECT * FROM exclusions
        WHERE overdue_at IS NULL AND (grantee_acknowledged_at IS NULL OR holder_acknowledged_at IS NULL)
          AND acknowledge_by <= $1
        ORDER BY acknowledge_by, exclusion_id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """,
        now,
        limit,
    )
    return [_exclusion(row) for row in rows]


async def mark_overdue(connection: asyncpg.Connection, exclusion: Exclusion) -> None:
    await connection.execute(
        "UPDATE exclusions SET overdue_at = $2 WHERE exclusion_id = $1", exclusion.exclusion_id, exclusion.overdue_at
    )


async def list_exclusions(
    connection: asyncpg.Connection, *, institution_id: str | None = None, subject: str | None = None, open_only: bool = False
) -> list[asyncpg.Record]:
    conditions = ["TRUE"]
    arguments: list[object] = []
    if institution_id is not None:
        arguments.append(institution_id)
        conditions.append(f"(grantee_id = ${len(arguments)} OR holder_id = ${len(arguments)})")
    if subject is not None:
        arguments.append(subject)
        conditions.append(f"subject = ${len(arguments)}")
    if open_only:
        conditions.append("(grantee_acknowledged_at IS NULL OR holder_acknowledged_at IS NULL)")
    query = f"SELECT * FROM exclusions WHERE {' AND '.join(conditions)} ORDER BY requested_at, exclusion_id"
    return list(await connection.fetch(query, *arguments))


async def replace_subject_mismatches(
    connection: asyncpg.Connection, subjects: Iterable[str], mismatches: Iterable[GrantMismatch], now: datetime
) -> None:
    """Replace the findings about `subjects` with `mismatches`, which name only those subjects."""
    await connection.execute("DELETE FROM grant_mismatches WHERE subject = ANY($1::text[])", sorted(set(subjects)))
    await _insert_mismatches(connection, mismatches, now)


async def replace_dataset_mismatches(
    connection: asyncpg.Connection, dataset_id: str, mismatches: Iterable[GrantMismatch], now: datetime
) -> None:
    await connection.execute("DELETE FROM grant_mismatches WHERE dataset_id = $1", dataset_id)
    await _insert_mismatches(connection, mismatches, now)


async def list_mismatches(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(await connection.fetch("SELECT * FROM grant_mismatches ORDER BY grant_id, dataset_id, subject"))


async def _insert_mismatches(connection: asyncpg.Connection, mismatches: Iterable[GrantMismatch], now: datetime) -> None:
    rows = [(mismatch.grant_id, mismatch.dataset_id, mismatch.subject or "", mismatch.reason, now) for mismatch in mismatches]
    if not rows:
        return
    await connection.executemany(
        """
        INSERT INTO grant_mismatches (grant_id, dataset_id, subject, reason, detected_at) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (grant_id, dataset_id, subject) DO UPDATE SET reason = EXCLUDED.reason,
            detected_at = EXCLUDED.detected_at
        """,
        rows,
    )


def _exclusion(row: asyncpg.Record) -> Exclusion:
    return Exclusion(
        exclusion_id=row["exclusion_id"],
        grant_id=row["grant_id"],
        dataset_id=row["dataset_id"],
        subject=row["subject"],
        consent_id=row["consent_id"],
        grantee_id=row["grantee_id"],
        holder_id=row["holder_id"],
        requested_at=row["requested_at"],
        acknowledge_by=row["acknowledge_by"],
        grantee_acknowledged_at=row["grantee_acknowledged_at"],
        holder_acknowledged_at=row["holder_acknowledged_at"],
        overdue_at=row["overdue_at"],
    )
