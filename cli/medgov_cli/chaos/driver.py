"""The chaos run: send mixed commands through the four services while killing and restarting things, then count.

Steps:
1. Start the services on fresh databases and consumer groups.
2. Register one seed dataset per hospital and wait until the review service
   has it from the catalog.
3. Send the commands, with a bounded number not yet applied, while the
   planned faults fire.
4. Wait until every check passes or the settle timeout ends.
5. Stop the services and run the checks once more for the report.
"""

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from medgov_shared.observability.logging import configure_logging
from medgov_shared.testing.services import wait_until

from medgov_cli.chaos.faults import Fault, FaultKind, plan_faults
from medgov_cli.chaos.infrastructure import (
    PRIVATE_VAR_DIR,
    ChaosInfrastructure,
    ChaosSetupError,
    default_sample_data,
    private_pair,
    shared_pair_from_environment,
)
from medgov_cli.chaos.ledger import Ledger
from medgov_cli.chaos.sender import CommandSender, DeliveryFailed
from medgov_cli.chaos.stack import ServiceStack
from medgov_cli.chaos.verify import Verification, verify
from medgov_cli.chaos.workload import REGION, Command, Workload
from medgov_cli.output import report_console
from medgov_cli.publisher import HospitalPublisher
from medgov_cli.settings import PublisherSettings

log = structlog.get_logger(__name__)

SEED_PUBLICATION_TIMEOUT_S = 120.0
PROGRESS_POLL_INTERVAL_S = 1.0
POLL_TIMEOUT_S = 5.0
SETTLE_POLL_INTERVAL_S = 5.0
# A consumer backs off at most 5 s between retries and a restarted service is
# ready within about 15 s, so 90 s without any change means nothing is moving.
SETTLE_STALL_S = 90.0


@dataclass(frozen=True)
class ChaosConfig:
    """Settings of one run; the defaults suit `make chaos` on a 2-core machine."""

    events: int
    kills: int
    kafka_restarts: int = 0
    postgres_restarts: int = 0
    seed: int | None = None
    sample_data: Path = field(default_factory=default_sample_data)
    log_dir: Path = PRIVATE_VAR_DIR / "log"
    # Commands acknowledged by the broker but not yet applied, at most. It
    # keeps the hospitals sending throughout the run, so broker restarts hit
    # the producers too, and keeps the consumers' backlog bounded.
    max_in_flight: int = 2000
    concurrent_sends: int = 32
    delivery_deadline_s: float = 300.0
    run_timeout_s: float = 3600.0
    settle_timeout_s: float = 600.0
    keep_databases: bool = False
    show_progress: bool = True


@dataclass
class ChaosReport:
    config: ChaosConfig
    seed: int
    accepted: int = 0
    unconfirmed: int = 0
    resends: int = 0
    faults_done: list[str] = field(default_factory=list)
    kills: int = 0
    kafka_restarts: int = 0
    postgres_restarts: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    liveness_restarts: list[str] = field(default_factory=list)
    start_failures: list[str] = field(default_factory=list)
    sequence_gaps: dict[str, list[int]] = field(default_factory=dict)
    verification: Verification = field(default_factory=Verification)
    aborted: str | None = None  # why the run stopped before all commands were sent and all faults fired
    duration_s: float = 0.0
    phase_ends_s: dict[str, float] = field(default_factory=dict)  # seconds from the start of the run

    @property
    def passed(self) -> bool:
        return self.aborted is None and self.verification.passed and not self.sequence_gaps

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def summary_line(self) -> str:
        counts = self.verification
        # The outcome comes first: an aborted run may still count lost=0 duplicated=0.
        if self.aborted:
            outcome = "aborted"
        elif self.passed:
            outcome = "passed"
        else:
            outcome = "failed"
        return (
            f"result={outcome} events={self.config.events} accepted={self.accepted} kills={self.kills} "
            f"kafka_restarts={self.kafka_restarts} postgres_restarts={self.postgres_restarts} "
            f"dead_lettered={counts.dead_lettered_commands} undrained={counts.undrained_total} "
            f"lost={counts.lost} duplicated={counts.duplicated}"
        )


# -- progress ----------------------------------------------------------------------


class AppliedCounter:
    """Count of the inbound commands the services have applied, polled from their inbox tables."""

    def __init__(self, database_urls: list[str]) -> None:
        self.database_urls = database_urls
        self.applied = 0
        self._connections: dict[str, asyncpg.Connection] = {}

    async def poll(self) -> int:
        total = 0
        for url in self.database_urls:
            try:
                async with asyncio.timeout(POLL_TIMEOUT_S):
                    connection = await self._connection(url)
                    total += await connection.fetchval(
                        "SELECT count(*) FROM inbox WHERE topic LIKE 'medgov.inbound.%'"
                    )
            except Exception as error:  # noqa: BLE001 - the count is only observed; any failure means "poll again"
                # While PostgreSQL restarts, asyncpg raises connection errors and,
                # on a connection cut mid-query, InternalClientError; a fresh
                # connection next time recovers from both.
                log.info("progress poll failed; keeping the last count", error=f"{type(error).__name__}: {error}")
                await self._drop(url)
                return self.applied
        self.applied = max(self.applied, total)
        return self.applied

    async def _connection(self, url: str) -> asyncpg.Connection:
        connection = self._connections.get(url)
        if connection is None or connection.is_closed():
            connection = await asyncpg.connect(url, timeout=5)
            self._connections[url] = connection
        return connection

    async def _drop(self, url: str) -> None:
        connection = self._connections.pop(url, None)
        if connection is not None:
            connection.terminate()

    async def close(self) -> None:
        for url in list(self._connections):
            await self._drop(url)


# -- the run -------------------------------------------------------------------------


@dataclass
class _Run:
    started: float
    config: ChaosConfig
    infrastructure: ChaosInfrastructure
    report: ChaosReport
    progress: Progress
    stack: ServiceStack
    workload: Workload
    ledger: Ledger = field(default_factory=Ledger)
    counter: AppliedCounter | None = None
    sent_task: TaskID | None = None
    applied_task: TaskID | None = None
    faults_task: TaskID | None = None

    def end_phase(self, name: str) -> None:
        self.report.phase_ends_s[name] = round(time.monotonic() - self.started, 1)

    def note(self, message: str) -> None:
        self.progress.console.print(message)
        log.warning("chaos run", note=Text.from_markup(message).plain)


async def run(config: ChaosConfig, infrastructure: ChaosInfrastructure, console: Console | None = None) -> ChaosReport:
    """Run the chaos scenario on the given broker and database and return the report (nothing printed to stdout)."""
    if (config.kafka_restarts or config.postgres_restarts) and not infrastructure.restartable:
        raise ValueError("broker or database restarts need a private pair that this run started")
    seed = config.seed if config.seed is not None else secrets.randbelow(2**31)
    # The databases and consumer groups are new for every run, even with the same seed.
    run_id = secrets.token_hex(4)
    report = ChaosReport(config=config, seed=seed)
    console = console or Console(stderr=True)
    started = time.monotonic()

    publisher_settings = PublisherSettings(
        kafka_bootstrap_servers=infrastructure.kafka_bootstrap_servers, region=REGION,
        pseudonym_key=secrets.token_hex(32),
    )
    publishers = {source: HospitalPublisher(publisher_settings, source) for source in Workload.sources()}
    workload = Workload(publishers, config.sample_data, seed)
    stack = ServiceStack(infrastructure, run_id, config.sample_data, config.log_dir)
    progress = Progress(
        TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not config.show_progress,
    )
    state = _Run(started, config, infrastructure, report, progress, stack, workload)
    faults = plan_faults(
        random.Random(f"{seed}:faults"), events=config.events, kills=config.kills,
        kafka_restarts=config.kafka_restarts, postgres_restarts=config.postgres_restarts,
    )
    console.print(f"chaos run {run_id}: seed {seed}, {config.events} events, {len(faults)} faults; "
                  f"service logs in {config.log_dir}")

    try:
        with progress:
            await _run_phases(state, faults)
    except TimeoutError as error:
        # asyncio.timeout raises it without a message; wait_until and wait_ready name what they waited for.
        report.aborted = str(error) or f"sending and faults did not finish within {config.run_timeout_s:.0f} s"
    except RuntimeError as error:
        # A service that cannot start again, or seed datasets never published.
        report.aborted = str(error)
    finally:
        await stack.stop()
        if state.counter is not None:
            await state.counter.close()
    if report.aborted:
        console.print(f"[red]run aborted[/red]: {report.aborted}")

    if not stack.started:
        return report  # nothing ran, so there is nothing to count
    await _complete_report(state)
    report.duration_s = time.monotonic() - started
    if report.passed and not config.keep_databases:
        await stack.drop_databases()
    else:
        console.print("databases kept for inspection: " + ", ".join(spec.database_url for spec in stack.specs.values()))
    return report


async def _complete_report(state: _Run) -> None:
    """Count the final state of the stopped services and copy the run's findings into the report."""
    report, ledger, stack = state.report, state.ledger, state.stack
    report.verification = await verify(ledger, stack.specs)
    report.accepted = len(ledger.accepted)
    report.unconfirmed = len(ledger.unconfirmed)
    report.sequence_gaps = ledger.sequence_gaps()
    report.unexpected_exits = list(stack.unexpected_exits)
    report.liveness_restarts = list(stack.liveness_restarts)
    report.start_failures = list(stack.start_failures)


async def _run_phases(state: _Run, faults: list[Fault]) -> None:
    config = state.config
    progress = state.progress
    state.sent_task = progress.add_task("accepted by Kafka", total=config.events)
    state.applied_task = progress.add_task("applied by the services", total=config.events)
    state.faults_task = progress.add_task("faults injected", total=len(faults))

    starting = progress.add_task("starting the four services", total=None)
    await state.stack.start()
    progress.remove_task(starting)
    state.end_phase("services started")
    inbound_consumers = [spec.database_url for spec in state.stack.specs.values() if spec.consumes_inbound]
    state.counter = AppliedCounter(inbound_consumers)

    async with contextlib.AsyncExitStack() as background:
        watched = [
            await background.enter_async_context(_background(state.stack.supervise())),
            await background.enter_async_context(_background(_follow_progress(state))),
        ]
        sender = await background.enter_async_context(
            CommandSender(state.workload.publishers["knuh"].settings, state.workload.sources(),
                          deadline_s=config.delivery_deadline_s)
        )
        await _while_running(_send_seeds(state, sender), watched)
        state.end_phase("seed datasets published")
        async with asyncio.timeout(config.run_timeout_s):
            await _while_running(asyncio.gather(_send_commands(state, sender), _inject_faults(state, faults)), watched)
        state.report.resends = sender.retried
        await _while_running(_settle(state), watched)
        state.end_phase("settled")


async def _while_running(work: Awaitable[None], watched: list[asyncio.Task]) -> None:
    """Await `work`, but raise at once if a background task (supervisor, progress poll) stops."""
    work_task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait([work_task, *watched], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        work_task.cancel()
        raise
    if work_task in done:
        work_task.result()
        return
    work_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await work_task
    stopped = next(task for task in watched if task in done)
    error = stopped.exception() if not stopped.cancelled() else None
    raise RuntimeError(f"background task {stopped.get_name()} stopped: {type(error).__name__}: {error}") from error


@contextlib.asynccontextmanager
async def _background(coroutine: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(coroutine, name=coroutine.__qualname__)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _follow_progress(state: _Run) -> None:
    assert state.counter is not None and state.applied_task is not None
    while True:
        applied = await state.counter.poll()
        state.progress.update(state.applied_task, completed=min(applied, state.config.events))
        await asyncio.sleep(PROGRESS_POLL_INTERVAL_S)


async def _deliver(state: _Run, sender: CommandSender, command: Command) -> None:
    try:
        delivery = await sender.deliver(command)
    except DeliveryFailed as error:
        state.ledger.record_unconfirmed(command, error.event_id)
        state.note(f"[red]not acknowledged[/red]: {error}")
        return
    state.ledger.record_accepted(command, delivery.event_id)
    state.workload.acknowledge(command)
    assert state.sent_task is not None
    state.progress.advance(state.sent_task)


async def _send_seeds(state: _Run, sender: CommandSender) -> None:
    """Register the seed datasets and wait until the review service can match applications against them."""
    seeds = state.workload.seed_commands()
    await asyncio.gather(*(_deliver(state, sender, command) for command in seeds))
    review = await asyncpg.connect(state.stack.specs["review"].database_url)
    try:
        dataset_ids = state.workload.seed_dataset_ids
        await wait_until(
            lambda: _count_published(review, dataset_ids, len(dataset_ids)),
            timeout_s=SEED_PUBLICATION_TIMEOUT_S, interval_s=0.5,
            message=f"the review service to learn the {len(dataset_ids)} seed datasets from the catalog",
        )
    finally:
        await review.close()


async def _count_published(connection: asyncpg.Connection, dataset_ids: list[str], expected: int) -> bool:
    count = await connection.fetchval(
        "SELECT count(*) FROM datasets WHERE dataset_id = ANY($1::text[]) AND NOT withdrawn", dataset_ids
    )
    return count == expected


async def _send_commands(state: _Run, sender: CommandSender) -> None:
    remaining = state.config.events - len(state.ledger.accepted) - len(state.ledger.unconfirmed)

    async def send_next() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await _wait_for_room(state)
            await _deliver(state, sender, state.workload.next_command())

    await asyncio.gather(*(send_next() for _ in range(state.config.concurrent_sends)))
    state.end_phase("commands sent")


async def _wait_for_room(state: _Run) -> None:
    assert state.counter is not None
    while len(state.ledger.accepted) - state.counter.applied >= state.config.max_in_flight:
        await asyncio.sleep(0.1)


async def _inject_faults(state: _Run, faults: list[Fault]) -> None:
    assert state.counter is not None and state.faults_task is not None
    for fault in faults:
        while state.counter.applied < fault.at_applied:
            await asyncio.sleep(0.2)
        began = time.monotonic()
        detail = await _inject(state, fault)
        state.report.faults_done.append(f"{fault.describe()} at {state.counter.applied} applied{detail}")
        state.note(f"[yellow]{fault.describe()}[/yellow] at {state.counter.applied} applied{detail}, "
                   f"back after {time.monotonic() - began:.1f} s")
        state.progress.advance(state.faults_task)
    state.end_phase("faults done")


async def _inject(state: _Run, fault: Fault) -> str:
    if fault.kind is FaultKind.KILL:
        assert fault.service is not None
        pid = await state.stack.kill_and_restart(fault.service)
        state.report.kills += 1
        return f" (pid {pid})"
    if fault.kind is FaultKind.KAFKA_RESTART:
        await state.infrastructure.restart_kafka()
        state.report.kafka_restarts += 1
        return ""
    await state.infrastructure.restart_postgres()
    state.report.postgres_restarts += 1
    return ""


async def _settle(state: _Run) -> None:
    """Repeat the checks until they pass, they stop changing for SETTLE_STALL_S, or the settle timeout ends."""
    settling = state.progress.add_task("waiting for the services to settle", total=None)
    started = time.monotonic()
    last_change = started
    last_counts: tuple[int, int, int] | None = None
    while True:
        try:
            verification = await verify(state.ledger, state.stack.specs)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            log.warning("verification query failed while settling; retrying", error=f"{type(error).__name__}: {error}")
        else:
            if verification.passed:
                break
            counts = (verification.lost, verification.duplicated, verification.undrained_total)
            if counts != last_counts:
                last_counts, last_change = counts, time.monotonic()
        now = time.monotonic()
        if now - last_change > SETTLE_STALL_S:
            # A dead-lettered command or a doubled row never goes away, so waiting longer changes nothing.
            state.note(f"[red]the checks still fail and have not changed for {SETTLE_STALL_S:.0f} s[/red]")
            break
        if now - started > state.config.settle_timeout_s:
            state.note(f"[red]the checks still fail after {state.config.settle_timeout_s:.0f} s of settling[/red]")
            break
        await asyncio.sleep(SETTLE_POLL_INTERVAL_S)
    state.progress.remove_task(settling)


# -- output --------------------------------------------------------------------------


def print_report(report: ChaosReport, console: Console) -> None:
    """Print the checks table and findings to `console`; the summary line goes to stdout separately."""
    table = Table(title=f"chaos run: seed {report.seed}, {report.duration_s:.0f} s")
    for column in ("store", "event", "expected", "found", "missing", "doubled"):
        table.add_column(column, no_wrap=True)
    for check in report.verification.checks:
        table.add_row(check.store, check.event, str(check.expected), str(check.found), str(check.missing_count),
                      str(check.doubled_count), style="" if check.passed else "red")
    console.print(table)

    for check in report.verification.checks:
        for example in check.missing:
            console.print(f"  [red]missing[/red] in {check.store}: {example}")
        for example in check.doubled:
            console.print(f"  [red]doubled[/red] in {check.store}: {example}")
    for fault in report.faults_done:
        console.print(f"  fault: {fault}")
    for phase, seconds in report.phase_ends_s.items():
        console.print(f"  {phase} after {seconds:.0f} s")
    for name, reasons in report.verification.dead_letter_reasons.items():
        if reasons:
            console.print(f"  {name} dead letters by reason: {dict(reasons)}")
    _print_findings(report, console)


def _print_findings(report: ChaosReport, console: Console) -> None:
    findings = {
        "services that exited without being killed": report.unexpected_exits,
        "restarts after failed liveness checks": report.liveness_restarts,
        "services that exited while starting": report.start_failures,
    }
    for title, items in findings.items():
        if items:
            console.print(f"  [red]{title}[/red]: {', '.join(items)}")
    if report.unconfirmed:
        console.print(f"  {report.unconfirmed} commands were never acknowledged by the broker and are not counted")
    if report.sequence_gaps:
        console.print(f"  [red]sequence numbers never sent[/red]: {report.sequence_gaps}")
    console.print(f"  {report.resends} sends were repeated with the same event id after a broker error")


def _log_to_file(path: Path) -> None:
    """Send the driver's and libraries' logs to a file, so they do not tear the progress bars."""
    configure_logging(level="INFO", fmt="console")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(path.open("a", encoding="utf-8"))
    # httpx logs every readiness and liveness probe at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def run_chaos(events: int, kills: int, kafka_restarts: int, postgres_restarts: int, seed: int | None) -> int:
    """Run `medgov chaos`: print the checks table and the summary line, and return the exit code.

    Broker or database restarts run on a private pair started for the run
    (the launcher's ports plus or minus 10000, by default 29092-29094 and 25432,
    state in var/chaos/). Without restarts, the
    pair named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL is used if both are set.
    """
    config = ChaosConfig(events=events, kills=kills, kafka_restarts=kafka_restarts,
                         postgres_restarts=postgres_restarts, seed=seed)
    console = report_console()
    _log_to_file(config.log_dir / "driver.log")

    async def go(infrastructure: ChaosInfrastructure) -> ChaosReport:
        return await run(config, infrastructure, console)

    shared = shared_pair_from_environment()
    if shared is not None and not (kafka_restarts or postgres_restarts):
        report = asyncio.run(go(shared))
    else:
        console.print(f"starting a private Kafka broker and PostgreSQL server for this run ({PRIVATE_VAR_DIR})")
        try:
            with private_pair() as infrastructure:
                report = asyncio.run(go(infrastructure))
        except ChaosSetupError as error:
            console.print(f"[red]{error}[/red]")
            return 2

    print_report(report, console)
    print(report.summary_line(), flush=True)
    return report.exit_code
