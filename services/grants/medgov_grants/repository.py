"""SQL of the grants service on an asyncpg connection: the journal, the ledger tables and the reports."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from medgov_grants.domain.ledger import POOLS, Account, PendingPayout, Posting, PostingKind
from medgov_grants.domain.reports import InstitutionDisbursement, PoolBalance


@dataclass(frozen=True)
class JournalEntry:
    """One applied input: a consumed event (`event_id` set) or an HTTP command."""

    kind: str
    name: str
    body: dict[str, Any]
    at: datetime
    event_id: str | None = None
    seq: int | None = None


async def lock_fund(connection: asyncpg.Connection) -> None:
    """Take the row lock that serializes every change of grants state until the transaction ends."""
    await connection.execute("SELECT id FROM fund_lock WHERE id = 1 FOR UPDATE")


async def stored_policy(connection: asyncpg.Connection) -> dict[str, Any] | None:
    raw = await connection.fetchval("SELECT policy FROM fund_policy WHERE id = 1")
    return None if raw is None else orjson.loads(raw)


async def store_policy(connection: asyncpg.Connection, policy: Mapping[str, Any]) -> None:
    await connection.execute(
        "INSERT INTO fund_policy (id, policy) VALUES (1, $1::jsonb) ON CONFLICT (id) DO NOTHING",
        orjson.dumps(policy).decode(),
    )


async def append_journal(connection: asyncpg.Connection, entry: JournalEntry) -> int:
    return await connection.fetchval(
        "INSERT INTO grant_inputs (kind, name, event_id, body, at) VALUES ($1, $2, $3, $4::jsonb, $5) RETURNING seq",
        entry.kind,
        entry.name,
        entry.event_id,
        orjson.dumps(entry.body).decode(),
        entry.at,
    )


async def journal_after(connection: asyncpg.Connection, seq: int) -> list[JournalEntry]:
    rows = await connection.fetch(
        "SELECT seq, kind, name, event_id, body, at FROM grant_inputs WHERE seq > $1 ORDER BY seq", seq
    )
    return [
        JournalEntry(
            kind=row["kind"],
            name=row["name"],
            body=orjson.loads(row["body"]),
            at=row["at"],
            event_id=str(row["event_id"]) if row["event_id"] else None,
            seq=row["seq"],
        )
        for row in rows
    ]


async def journal_contains(connection: asyncpg.Connection, seq: int) -> bool:
    return bool(await connection.fetchval("SELECT true FROM grant_inputs WHERE seq = $1", seq))


@dataclass(frozen=True)
class StoredSnapshot:
    """The fund as of journal entry `input_seq`, serialized in `format`."""

    input_seq: int
    format: str
    state: bytes


async def latest_snapshot(connection: asyncpg.Connection) -> StoredSnapshot | None:
    row = await connection.fetchrow("SELECT input_seq, format, state FROM fund_snapshot WHERE id = 1")
    return None if row is None else StoredSnapshot(row["input_seq"], row["format"], row["state"])


async def store_snapshot(connection: asyncpg.Connection, snapshot: StoredSnapshot) -> None:
    """Replace the stored snapshot; the caller holds the fund lock, so snapshots are written in journal order."""
    await connection.execute(
        "INSERT INTO fund_snapshot (id, input_seq, format, state, taken_at) VALUES (1, $1, $2, $3, now()) "
        "ON CONFLICT (id) DO UPDATE SET input_seq = EXCLUDED.input_seq, format = EXCLUDED.format, "
        "state = EXCLUDED.state, taken_at = EXCLUDED.taken_at",
        snapshot.input_seq,
        snapshot.format,
        snapshot.state,
    )


async def posting_count(connection: asyncpg.Connection) -> int:
    return await connection.fetchval("SELECT count(*) FROM postings")


async def posting_exists(connection: asyncpg.Connection, posting_id: str) -> bool:
    return bool(await connection.fetchval("SELECT true FROM postings WHERE posting_id = $1", posting_id))


async def insert_postings(connection: asyncpg.Connection, postings: Iterable[Posting], *, input_seq: int) -> None:
    """Insert postings with their legs and move the running balances in the same transaction.

    Raises asyncpg.CheckViolationError if a pool or grantee balance would go below zero.
    """
    postings = list(postings)
    if not postings:
        return
    await connection.executemany(
        "INSERT INTO postings (posting_id, kind, reference_id, institution_id, posted_at, cause_id, input_seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (p.posting_id, p.kind.value, p.reference_id, p.institution_id, p.posted_at, p.cause_id, input_seq)
            for p in postings
        ],
    )

    legs = [(p.posting_id, leg.account.code, leg.amount_krw) for p in postings for leg in p.legs]
    await connection.execute(
        "INSERT INTO posting_legs (posting_id, account, amount_krw) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])",
        [leg[0] for leg in legs],
        [leg[1] for leg in legs],
        [leg[2] for leg in legs],
    )

    moved: defaultdict[Account, int] = defaultdict(int)
    for posting in postings:
        for leg in posting.legs:
            moved[leg.account] += leg.amount_krw
    accounts = sorted(moved)

    # Two statements, because PostgreSQL checks CHECK constraints on the row an
    # INSERT proposes before ON CONFLICT turns it into an update, so a negative
    # delta for an existing pool would fail even when the sum stays positive.
    await connection.execute(
        "INSERT INTO account_balances (account, kind, balance_krw) "
        "SELECT account, kind, 0 FROM unnest($1::text[], $2::text[]) AS new (account, kind) "
        "ON CONFLICT (account) DO NOTHING",
        [account.code for account in accounts],
        [account.kind.value for account in accounts],
    )
    await connection.execute(
        "UPDATE account_balances SET balance_krw = balance_krw + delta.amount "
        "FROM unnest($1::text[], $2::bigint[]) AS delta (account, amount) "
        "WHERE account_balances.account = delta.account",
        [account.code for account in accounts],
        [moved[account] for account in accounts],
    )


async def sync_pending(
    connection: asyncpg.Connection, before: Mapping[str, PendingPayout], after: Mapping[str, PendingPayout]
) -> None:
    """Make pending_payouts match `after`, given that it matched `before`."""
    gone = [payout_id for payout_id in before if payout_id not in after]
    if gone:
        await connection.execute("DELETE FROM pending_payouts WHERE payout_id = ANY($1::text[])", gone)
    for payout_id, pending in after.items():
        previous = before.get(payout_id)
        if previous is not None and previous.status == pending.status:
            continue
        request = pending.request
        await connection.execute(
            "INSERT INTO pending_payouts (payout_id, pool, institution_id, amount_krw, reason, reference_id, status, requested_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (payout_id) DO UPDATE SET status = EXCLUDED.status",
            payout_id, request.pool, request.institution_id, request.amount_krw, request.reason,
            request.reference_id, pending.status.value, request.requested_at,
        )


async def replace_pending(connection: asyncpg.Connection, pending: Mapping[str, PendingPayout]) -> None:
    """Rewrite pending_payouts from the rebuilt state (used after a rebuild from the journal)."""
    await connection.execute("DELETE FROM pending_payouts")
    await sync_pending(connection, {}, pending)


async def account_balances(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch("SELECT account, balance_krw FROM account_balances WHERE balance_krw <> 0 ORDER BY account")
    return {row["account"]: row["balance_krw"] for row in rows}


async def derived_balances(connection: asyncpg.Connection) -> dict[str, int]:
    """Return balances summed from the legs, to reconcile with account_balances."""
    rows = await connection.fetch(
        "SELECT account, sum(amount_krw)::bigint AS balance FROM posting_legs GROUP BY account "
        "HAVING sum(amount_krw) <> 0 ORDER BY account"
    )
    return {row["account"]: row["balance"] for row in rows}


async def pool_report(connection: asyncpg.Connection) -> list[PoolBalance]:
    rows = await connection.fetch(
        "SELECT split_part(l.account, ':', 2) AS pool, p.kind, sum(abs(l.amount_krw))::bigint AS moved "
        "FROM posting_legs l JOIN postings p USING (posting_id) WHERE l.account LIKE 'pool:%' GROUP BY 1, 2"
    )
    moved = {(row["pool"], row["kind"]): row["moved"] for row in rows}
    balances = await account_balances(connection)
    pending_rows = await connection.fetch("SELECT pool, sum(amount_krw)::bigint AS pending FROM pending_payouts GROUP BY pool")
    pending = {row["pool"]: row["pending"] for row in pending_rows}
    return [
        PoolBalance(
            pool=pool,
            allocated_krw=moved.get((pool, PostingKind.ALLOCATION.value), 0),
            disbursed_krw=moved.get((pool, PostingKind.DISBURSEMENT.value), 0),
            clawed_back_krw=moved.get((pool, PostingKind.CLAWBACK.value), 0),
            available_krw=balances.get(Account.pool(pool).code, 0),
            pending_krw=pending.get(pool, 0),
        )
        for pool in POOLS
    ]


async def institution_report(connection: asyncpg.Connection, regions: Mapping[str, str]) -> list[InstitutionDisbursement]:
    """Return what each institution received per pool; `regions` maps institution id to region."""
    rows = await connection.fetch(
        "SELECT split_part(l.account, ':', 3) AS institution_id, split_part(l.account, ':', 2) AS pool, "
        "sum(abs(l.amount_krw)) FILTER (WHERE p.kind = 'disbursement')::bigint AS disbursed, "
        "sum(abs(l.amount_krw)) FILTER (WHERE p.kind = 'clawback')::bigint AS clawed_back "
        "FROM posting_legs l JOIN postings p USING (posting_id) WHERE l.account LIKE 'grantee:%' "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    report = []
    for row in rows:
        disbursed, clawed_back = row["disbursed"] or 0, row["clawed_back"] or 0
        report.append(
            InstitutionDisbursement(
                institution_id=row["institution_id"],
                region=regions.get(row["institution_id"], "unknown"),
                pool=row["pool"],
                disbursed_krw=disbursed,
                clawed_back_krw=clawed_back,
                net_krw=disbursed - clawed_back,
            )
        )
    return report


async def pending_payouts(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT payout_id, pool, institution_id, amount_krw, reason, reference_id, status, requested_at "
        "FROM pending_payouts ORDER BY requested_at, payout_id"
    )
