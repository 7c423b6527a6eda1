"""Latency of the consent service under an open-loop load: publish to database commit, and revocation fan-out.

The producer sends each event at its scheduled instant whatever the service
does, so a slow service cannot slow the load down and hide its own delay
(coordinated omission); every latency is measured from the scheduled instant.

- Commit: the watcher wakes on the NOTIFY the outbox trigger sends at each
  commit (and every 20 ms besides) and looks the pending event ids up in the
  inbox. The instant it starts that query is the observed commit time: every
  row it finds committed before then, so the figure is an upper bound,
  late by at most one query.
- Fan-out: a tail of medgov.consent.v1 notes when the last of a subject's
  ExclusionRequested events arrives, which includes the outbox relay's delay.
"""

import asyncio
import contextlib
import gc
import math
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import structlog
from aiokafka import AIOKafkaConsumer

from bench import broker, database, processes
from bench.arms import ArmFailed, ServiceRun
from bench.gate import GateResult, check
from bench.services import CONSENT
from bench.workload import BenchEvent, Workload, consent_id_of, record_consents, revocation_setup, revoke_consents

log = structlog.get_logger("bench")

CONSENT_TOPIC = "medgov.consent.v1"
GRANTS_PER_SUBJECT = 50


@dataclass
class LatencyResult:
    load_fraction: float
    target_eps: float
    sent_eps: float
    commit_ms: dict[str, float]
    commit_samples: int
    revocation_commit_ms: dict[str, float]
    revocation_fanout_ms: dict[str, float]
    revocations: int
    gate: GateResult
    revocations_per_s: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def is_storm(self) -> bool:
        """A run of revocations alone, without the consent load (see run_revocation_storm)."""
        return self.load_fraction == 0.0


def percentiles(values_s: Sequence[float]) -> dict[str, float]:
    """p50, p95, p99, p99.9 and max in milliseconds, by the nearest-rank method."""
    if not values_s:
        return {}
    ordered = sorted(values_s)

    def rank(fraction: float) -> float:
        index = max(math.ceil(fraction * len(ordered)) - 1, 0)
        return round(ordered[index] * 1000, 1)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "p99.9": rank(0.999), "max": round(ordered[-1] * 1000, 1)}


class CommitWatcher:
    """Notes when each watched event id first shows up in the service's inbox."""

    def __init__(self, database_name: str) -> None:
        self.database_name = database_name
        self.pending: set[uuid.UUID] = set()
        self.committed_at: dict[uuid.UUID, float] = {}
        self.dead_lettered: set[uuid.UUID] = set()
        self._dead_letters_checked_at = 0.0
        self._wake = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._connection = await asyncpg.connect(processes.database_url(database.maintenance_url(), self.database_name))
        # Autovacuum does not analyze the new inbox during a run, so the planner
        # scanned the whole table for each watched id (up to 190 ms a query).
        # Without sequential scans the look-up uses the primary key.
        await self._connection.execute("SET enable_seqscan = off")
        await self._connection.add_listener("medgov_outbox", lambda *_: self._wake.set())
        self._task = asyncio.create_task(self._run())

    def watch(self, event_id: uuid.UUID) -> None:
        self.pending.add(event_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()

    async def _run(self) -> None:
        assert self._connection is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=0.02)
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.pending:
                continue
            queried_at = time.perf_counter()
            rows = await self._connection.fetch("SELECT event_id FROM inbox WHERE event_id = ANY($1::uuid[])", list(self.pending))
            for row in rows:
                self.pending.discard(row["event_id"])
                self.committed_at[row["event_id"]] = queried_at
            if queried_at - self._dead_letters_checked_at > 1.0:
                await self._collect_dead_letters()
                self._dead_letters_checked_at = queried_at

    async def _collect_dead_letters(self) -> None:
        """Stop waiting for events the service dead-lettered; the gate reports them as lost, with the reason."""
        assert self._connection is not None
        rows = await self._connection.fetch(
            "SELECT event_id FROM dead_letters WHERE event_id = ANY($1::text[])", [str(event_id) for event_id in self.pending]
        )
        for row in rows:
            event_id = uuid.UUID(row["event_id"])
            self.pending.discard(event_id)
            self.dead_lettered.add(event_id)


class ExclusionTail:
    """Reads medgov.consent.v1 from its current end and notes when each subject's last expected exclusion arrives."""

    def __init__(self, bootstrap: str, subjects: set[str], per_subject: int) -> None:
        self.bootstrap = bootstrap
        self.subjects = {subject.encode() for subject in subjects}
        self.per_subject = per_subject
        self.exclusions: dict[str, set[str]] = defaultdict(set)
        self.completed_at: dict[str, float] = {}
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed")
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        ends = await broker.end_offsets(self.bootstrap, [CONSENT_TOPIC])
        await self.consumer.start()
        self.consumer.assign(list(ends))
        for partition, offset in ends.items():
            self.consumer.seek(partition, offset)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            arrived = time.perf_counter()
            for records in batches.values():
                for record in records:
                    if record.key in self.subjects:
                        self._note(orjson.loads(record.value), arrived)

    def _note(self, event: dict, arrived: float) -> None:
        if event.get("type") != "ExclusionRequested":
            return
        subject = event["subject"]
        self.exclusions[subject].add(event["data"]["exclusion_id"])
        if len(self.exclusions[subject]) >= self.per_subject and subject not in self.completed_at:
            self.completed_at[subject] = arrived


@dataclass(frozen=True)
class Scheduled:
    at_s: float  # seconds after the start of the load
    event: BenchEvent
    timed: bool  # False during the warm-up


def schedule(
    ingest: Sequence[BenchEvent], revocations: Sequence[BenchEvent], *, rate: float, warmup_s: float, measure_s: float
) -> list[Scheduled]:
    """Ingest events evenly at `rate`; revocations evenly over the timed part."""
    planned = [] if rate <= 0 else [Scheduled(index / rate, event, index / rate >= warmup_s) for index, event in enumerate(ingest)]
    spacing = measure_s / max(len(revocations), 1)
    planned += [Scheduled(warmup_s + (index + 0.5) * spacing, event, True) for index, event in enumerate(revocations)]
    return sorted(planned, key=lambda item: item.at_s)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Keep Python's cyclic garbage collector from pausing this process while it sends and observes.

    A full collection over the driver's heap (the prepared events) took up
    to 310 ms. An event due during it went out that much late, and the
    latency, counted from the event's scheduled time, included the pause.
    The open loop leaves almost no cyclic garbage (16 objects after a
    70-second run), so collecting waits until the block ends.
    """
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def send_open_loop(bootstrap: str, plan: Sequence[Scheduled], watcher: CommitWatcher) -> tuple[float, float]:
    """Send every event at its scheduled instant; return the start instant and the achieved send rate."""
    producer = broker.new_producer(bootstrap)
    await producer.start()
    futures = []
    try:
        started = time.perf_counter()
        index = 0
        while index < len(plan):
            elapsed = time.perf_counter() - started
            while index < len(plan) and plan[index].at_s <= elapsed:
                event = plan[index].event
                watcher.watch(event.event_id)
                futures.append(await producer.send(event.topic, value=event.value, key=event.key))
                index += 1
            if index < len(plan):
                await asyncio.sleep(min(max(plan[index].at_s - (time.perf_counter() - started), 0), 0.005))
        sent_s = time.perf_counter() - started
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return started, len(plan) / max(sent_s, 1e-9)


async def run_latency(
    fraction: float, max_eps: float, *, warmup_s: float, measure_s: float, revocations: int, log_dir: Path
) -> LatencyResult:
    """Run the consent service at `fraction` of `max_eps` with `revocations` timed revocations.

    A fraction of 0 sends no consents: only the revocations, evenly over `measure_s`.
    """
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    run_id = uuid.uuid4().hex[:8]
    rate = fraction * max_eps
    ingest_count = int(rate * (warmup_s + measure_s))
    revokers = list(range(ingest_count, ingest_count + revocations))
    now = datetime.now(UTC)
    setup = revocation_setup(run_id, revokers, grants=GRANTS_PER_SUBJECT, now=now)
    ingest = record_consents(run_id, 0, ingest_count)
    revoking = revoke_consents(run_id, revokers, ingest_count + revocations, effective_at=now)

    run = ServiceRun(CONSENT, run_id, log_dir)
    workload = Workload(events=ingest + revoking, setup=setup)
    await run.prepare(workload)
    gate: GateResult | None = None
    watcher = CommitWatcher(run.database_name)
    tail = ExclusionTail(bootstrap, {_subject(event) for event in revoking}, GRANTS_PER_SUBJECT)
    try:
        await run.start()
        await _produce(bootstrap, setup)
        await run.wait_applied(setup, timeout_s=300)
        await database.analyze(run.database_name)
        await watcher.start()
        await tail.start()
        plan = schedule(ingest, revoking, rate=rate, warmup_s=warmup_s, measure_s=measure_s)
        # Marks the end of the setup for anyone profiling the service during the timed phase.
        log.info("open-loop sending started", pid=run.processes[0].process.pid, events=len(plan))
        with collector_paused():
            started, sent_eps = await send_open_loop(bootstrap, plan, watcher)
            # A service that falls behind still has to finish every revocation; allow it 1,000 exclusions per second.
            drain_s = len(revoking) * GRANTS_PER_SUBJECT / 1000
            await _wait_until_observed(watcher, tail, revoking, timeout_s=max(60.0, measure_s, drain_s))
        rss = run.peak_rss_mb()
        await run.stop()
        setup_consents = [event for event in setup if event.command]
        gate = await _gate(run.database_name, run_id, [*ingest, *setup_consents], revoking, revokers)
        result = _summarize(fraction, rate, sent_eps, plan, started, watcher, tail, gate)
        result.revocations_per_s = round(revocations / measure_s, 1)
        result.details.update(
            {
                "peak_rss_mb": max(rss),
                "database": run.database_name,
                "setup_events": len(setup),
                "exclusions_per_s": _exclusion_rate(plan, started, tail),
            }
        )
        return result
    finally:
        await watcher.stop()
        await tail.stop()
        await run.stop()
        await run.cleanup(workload, keep_database=gate is None or not gate.passed)


async def run_revocation_storm(rate: float, seconds: float, *, log_dir: Path) -> LatencyResult:
    """Revocations alone at `rate` per second for `seconds`, each subject in 50 active grants."""
    return await run_latency(0.0, 0.0, warmup_s=0.0, measure_s=seconds, revocations=max(int(rate * seconds), 1), log_dir=log_dir)


def _exclusion_rate(plan: Sequence[Scheduled], started: float, tail: ExclusionTail) -> float | None:
    """ExclusionRequested events per second, from the first timed revocation's send to the last subject's completion."""
    first = next((item.at_s for item in plan if item.timed and _is_revocation(item.event)), None)
    if first is None or not tail.completed_at:
        return None
    elapsed = max(tail.completed_at.values()) - (started + first)
    return round(len(tail.completed_at) * tail.per_subject / max(elapsed, 1e-9), 1)


def _subject(event: BenchEvent) -> str:
    return event.key.decode()


def _is_revocation(event: BenchEvent) -> bool:
    return event.value.find(b'"type":"RevokeConsent"') >= 0


async def _produce(bootstrap: str, events: Sequence[BenchEvent]) -> None:
    by_topic: dict[str, list[BenchEvent]] = defaultdict(list)
    for event in events:
        by_topic[event.topic].append(event)
    for topic_events in by_topic.values():
        await broker.produce(bootstrap, topic_events)


async def _wait_until_observed(watcher: CommitWatcher, tail: ExclusionTail, revoking: Sequence[BenchEvent], *, timeout_s: float) -> None:
    """Wait until every event is committed or dead-lettered and every applied revocation reached its grants."""
    deadline = time.monotonic() + timeout_s

    def fanning_out() -> int:
        applied = [event for event in revoking if event.event_id not in watcher.dead_lettered]
        return sum(1 for event in applied if _subject(event) not in tail.completed_at)

    while watcher.pending or fanning_out():
        if time.monotonic() > deadline:
            raise ArmFailed(
                f"latency run: {len(watcher.pending)} events neither committed nor dead-lettered and {fanning_out()} "
                f"revocations without all {GRANTS_PER_SUBJECT} exclusions {timeout_s:.0f} s after the last send"
            )
        await asyncio.sleep(0.2)


async def _gate(
    database_name: str, run_id: str, consents: Sequence[BenchEvent], revoking: Sequence[BenchEvent], revokers: Sequence[int]
) -> GateResult:
    """Check every RecordConsent (timed and setup), then each revocation: stored once, and fanned out to every grant."""
    result = await CONSENT.gate(database_name, run_id, consents)
    inbox = await CONSENT.gate(database_name, run_id, [replace(event, command=False) for event in revoking])
    consent_to_revocation = {consent_id_of(run_id, number): event.sequence for number, event in zip(revokers, revoking, strict=True)}
    revoked = await database.fetch_column(
        database_name, "SELECT consent_id FROM revocations WHERE consent_id = ANY($1::text[])", list(consent_to_revocation)
    )
    result = result.merge(inbox).merge(
        check(consent_to_revocation.values(), (consent_to_revocation[item] for item in revoked), note="consent revocations")
    )
    exclusions = await database.fetch_column(
        database_name, "SELECT count(*) FROM exclusions WHERE consent_id = ANY($1::text[])", list(consent_to_revocation)
    )
    expected_exclusions = len(revokers) * GRANTS_PER_SUBJECT
    if exclusions[0] != expected_exclusions:
        missing = max(expected_exclusions - exclusions[0], 0)
        result = result.merge(GateResult(expected=0, lost=missing, duplicated=0, notes=(f"{exclusions[0]} exclusions stored, expected {expected_exclusions}",)))
    return result


def _summarize(
    fraction: float,
    rate: float,
    sent_eps: float,
    plan: Sequence[Scheduled],
    started: float,
    watcher: CommitWatcher,
    tail: ExclusionTail,
    gate: GateResult,
) -> LatencyResult:
    commit, revocation_commit, fanout = [], [], []
    for item in plan:
        if not item.timed:
            continue
        sent_at = started + item.at_s
        committed = watcher.committed_at.get(item.event.event_id)
        if _is_revocation(item.event):
            if committed is not None:
                revocation_commit.append(committed - sent_at)
            arrived = tail.completed_at.get(_subject(item.event))
            if arrived is not None:
                fanout.append(arrived - sent_at)
        elif committed is not None:
            commit.append(committed - sent_at)
    return LatencyResult(
        load_fraction=fraction,
        target_eps=round(rate, 1),
        sent_eps=round(sent_eps, 1),
        commit_ms=percentiles(commit),
        commit_samples=len(commit),
        revocation_commit_ms=percentiles(revocation_commit),
        revocation_fanout_ms=percentiles(fanout),
        revocations=len(fanout),
        gate=gate,
    )
