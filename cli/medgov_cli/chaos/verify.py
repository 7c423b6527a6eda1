"""Counting, after the faults, whether every accepted event had exactly one effect everywhere it should.

Four checks, each read from the services' own databases:

- inbound inboxes: every acknowledged command is in the inbox of each
  service that handles its type (a dead-lettered command counts as lost);
- domain effects: every command left exactly one row of its kind, keyed by
  its aggregate. That is one dataset version per RegisterDataset, one
  consent per RecordConsent, one revocation per RevokeConsent and one
  first-submission event per SubmitApplication. A second row is a doubled
  effect;
- service-to-service deliveries: every event in a service's outbox is in the
  inbox (or, rejected, the dead-letter table) of each service that consumes
  its topic and handles its type, and no subsidy is owed or paid twice;
- outboxes drained: no row is left unsent.
"""

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from medgov_shared.contracts.events.inbound import RecordConsent, RegisterDataset, RevokeConsent, SubmitApplication

from medgov_cli.chaos.ledger import Ledger, SentEvent
from medgov_cli.chaos.stack import ServiceSpec

EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class EffectQuery:
    """SQL returning (key columns..., row count) for the keys passed as text arrays, one array per key column."""

    event_type: str
    service: str
    rows: str  # description of the counted rows, shown in the report
    sql: str


EFFECT_QUERIES = (
    EffectQuery(
        RegisterDataset.event_type, "catalog", "dataset versions",
        "SELECT dataset_id, count(*) FROM dataset_versions "
        "JOIN unnest($1::text[]) AS keys(dataset_id) USING (dataset_id) GROUP BY 1",
    ),
    EffectQuery(
        RecordConsent.event_type, "consent", "consent records",
        "SELECT subject, consent_id, count(*) FROM consents "
        "JOIN unnest($1::text[], $2::text[]) AS keys(subject, consent_id) USING (subject, consent_id) GROUP BY 1, 2",
    ),
    EffectQuery(
        # A revocation that arrived before its consent is parked, and applied
        # when the consent arrives; either row is the one effect.
        RevokeConsent.event_type, "consent", "revocations (applied or parked)",
        "SELECT subject, consent_id, count(*) FROM ("
        "SELECT subject, consent_id FROM revocations UNION ALL SELECT subject, consent_id FROM parked_revocations"
        ") AS recorded JOIN unnest($1::text[], $2::text[]) AS keys(subject, consent_id) USING (subject, consent_id) "
        "GROUP BY 1, 2",
    ),
    EffectQuery(
        # The first submission emits ApplicationSubmitted (complete) or
        # RevisionRequested (items missing), never both; the idempotency key
        # makes a repeated submission emit nothing.
        SubmitApplication.event_type, "review", "first-submission events",
        "SELECT application_id, count(*) FROM application_events "
        "JOIN unnest($1::text[]) AS keys(application_id) USING (application_id) "
        "WHERE event_type IN ('ApplicationSubmitted', 'RevisionRequested') GROUP BY 1",
    ),
)


# Money is the effect of a service-to-service event that matters most when
# doubled. The grants service numbers the subsidy awards of a dataset
# sub-<dataset id>-1, -2 ..., and each award is one row: a pending payout
# until it is paid, then a disbursement posting. A chaos dataset is published
# once, so a second row for one dataset is a subsidy owed or paid twice.
SUBSIDY_AWARDS_SQL = (
    "SELECT regexp_replace(reference_id, '-[0-9]+$', '') AS dataset_award, count(*) AS n FROM ("
    "SELECT reference_id FROM pending_payouts WHERE reason = 'subsidy' "
    "UNION ALL SELECT reference_id FROM postings WHERE kind = 'disbursement' AND reference_id LIKE 'sub-%'"
    ") AS awards GROUP BY 1"
)


@dataclass
class CheckResult:
    """One line of the verification table, with up to EXAMPLES_SHOWN examples of what is missing or doubled."""

    store: str
    event: str  # the command type, or the producing service of the events counted
    expected: int
    found: int = 0
    missing_count: int = 0
    doubled_count: int = 0
    missing: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.missing_count == 0 and self.doubled_count == 0


@dataclass
class Verification:
    """Outcome of all checks: the table lines and the totals of the summary line."""

    checks: list[CheckResult] = field(default_factory=list)
    lost_events: set[uuid.UUID] = field(default_factory=set)
    lost_deliveries: int = 0
    duplicated: int = 0
    undrained: dict[str, int] = field(default_factory=dict)
    dead_letter_reasons: dict[str, Counter[str]] = field(default_factory=dict)
    dead_lettered_commands: int = 0

    @property
    def lost(self) -> int:
        return len(self.lost_events) + self.lost_deliveries

    @property
    def undrained_total(self) -> int:
        return sum(self.undrained.values())

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.undrained_total == 0


async def verify(ledger: Ledger, specs: dict[str, ServiceSpec]) -> Verification:
    """Run every check against the services' databases (the services may still run)."""
    result = Verification()
    connections: dict[str, asyncpg.Connection] = {}
    try:
        for name, spec in specs.items():
            connections[name] = await asyncpg.connect(spec.database_url)
        await _check_inbound_inboxes(result, ledger, specs, connections)
        await _check_effects(result, ledger, connections)
        await _check_deliveries(result, specs, connections)
        await _check_subsidies(result, connections["grants"])
        await _check_outboxes(result, connections)
        await _count_dead_letters(result, connections)
    finally:
        for connection in connections.values():
            await connection.close()
    return result


async def _ids_in_inbox(connection: asyncpg.Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await connection.fetch("SELECT event_id FROM inbox WHERE event_id = ANY($1::uuid[])", list(ids))
    return {row["event_id"] for row in rows}


async def _ids_dead_lettered(connection: asyncpg.Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    # dead_letters.event_id is text, because a record that is not a CloudEvent has no id.
    rows = await connection.fetch(
        "SELECT DISTINCT event_id FROM dead_letters WHERE event_id = ANY($1::text[])", [str(item) for item in ids]
    )
    return {uuid.UUID(row["event_id"]) for row in rows}


async def _check_inbound_inboxes(
    result: Verification, ledger: Ledger, specs: dict[str, ServiceSpec], connections: dict[str, asyncpg.Connection]
) -> None:
    for spec in specs.values():
        if not spec.consumes_inbound:
            continue
        for event_type in sorted({item.event_type for item in ledger.accepted} & spec.handled_types):
            events = ledger.accepted_of_type(event_type)
            ids = [item.event_id for item in events]
            present = await _ids_in_inbox(connections[spec.name], ids)
            dead = await _ids_dead_lettered(connections[spec.name], ids)
            missing = [item for item in events if item.event_id not in present]
            result.dead_lettered_commands += sum(1 for item in missing if item.event_id in dead)
            result.lost_events.update(item.event_id for item in missing)
            result.checks.append(CheckResult(
                store=f"{spec.name} inbox", event=event_type, expected=len(events), found=len(present),
                missing_count=len(missing), missing=[_describe(item, dead) for item in missing[:EXAMPLES_SHOWN]],
            ))


def _describe(event: SentEvent, dead: set[uuid.UUID]) -> str:
    return f"{event.label}{' dead-lettered' if event.event_id in dead else ''}"


async def _check_effects(result: Verification, ledger: Ledger, connections: dict[str, asyncpg.Connection]) -> None:
    for query in EFFECT_QUERIES:
        events = ledger.accepted_of_type(query.event_type)
        if not events:
            continue
        columns = [list(column) for column in zip(*(item.key for item in events), strict=True)]
        rows = await connections[query.service].fetch(query.sql, *columns)
        counts = {tuple(row[:-1]): row[-1] for row in rows}
        check = CheckResult(store=f"{query.service} {query.rows}", event=query.event_type, expected=len(events))
        for event in events:
            count = counts.get(event.key, 0)
            if count == 0:
                result.lost_events.add(event.event_id)
                check.missing_count += 1
                if len(check.missing) < EXAMPLES_SHOWN:
                    check.missing.append(event.label)
            elif count > 1:
                result.duplicated += 1
                check.doubled_count += 1
                if len(check.doubled) < EXAMPLES_SHOWN:
                    check.doubled.append(f"{event.label} x{count}")
            if count:
                check.found += 1
        result.checks.append(check)


async def _check_deliveries(
    result: Verification, specs: dict[str, ServiceSpec], connections: dict[str, asyncpg.Connection]
) -> None:
    emitted = {
        name: await connection.fetch("SELECT event_id, event_type, topic FROM outbox ORDER BY position")
        for name, connection in connections.items()
    }
    for consumer in specs.values():
        for producer, rows in emitted.items():
            expected = [row for row in rows
                        if row["event_type"] in consumer.handled_types and row["topic"] in consumer.consumed_topics]
            if not expected:
                continue
            ids = [row["event_id"] for row in expected]
            present = await _ids_in_inbox(connections[consumer.name], ids)
            present |= await _ids_dead_lettered(connections[consumer.name], ids)
            missing = [row for row in expected if row["event_id"] not in present]
            result.lost_deliveries += len(missing)
            result.checks.append(CheckResult(
                store=f"{consumer.name} inbox", event=f"events from {producer}", expected=len(expected),
                found=len(expected) - len(missing), missing_count=len(missing),
                missing=[f"{row['event_type']} {row['event_id']}" for row in missing[:EXAMPLES_SHOWN]],
            ))


async def _check_subsidies(result: Verification, connection: asyncpg.Connection) -> None:
    rows = await connection.fetch(SUBSIDY_AWARDS_SQL)
    doubled = [row for row in rows if row["n"] > 1]
    result.duplicated += len(doubled)
    result.checks.append(CheckResult(
        store="grants subsidy awards", event="DatasetPublished", expected=len(rows), found=len(rows),
        doubled_count=len(doubled), doubled=[f"{row['dataset_award']} x{row['n']}" for row in doubled[:EXAMPLES_SHOWN]],
    ))


async def _check_outboxes(result: Verification, connections: dict[str, asyncpg.Connection]) -> None:
    for name, connection in connections.items():
        row = await connection.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE sent_at IS NULL) AS unsent FROM outbox"
        )
        result.undrained[name] = row["unsent"]
        result.checks.append(CheckResult(
            store=f"{name} outbox", event="sent to Kafka", expected=row["total"], found=row["total"] - row["unsent"],
            missing_count=row["unsent"],
        ))


async def _count_dead_letters(result: Verification, connections: dict[str, asyncpg.Connection]) -> None:
    for name, connection in connections.items():
        rows = await connection.fetch("SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason")
        result.dead_letter_reasons[name] = Counter({row["reason"]: row["n"] for row in rows})
