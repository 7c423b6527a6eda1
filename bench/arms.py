"""One throughput run of one arm: a baseline process or a real service over the same kind of pre-filled events."""

import asyncio
import bisect
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from medgov_shared.contracts.institutions import (
    EXTRA_INSTITUTIONS_ENV,
    Institution,
    load_institutions_file,
    write_institutions_file,
)

from bench import broker, database, processes, services
from bench.gate import GateResult, check
from bench.infrastructure import UNREACHABLE, InfrastructureDisturbed
from bench.workload import REPO_ROOT, BenchEvent, Workload

log = structlog.get_logger("bench")

POLL_INTERVAL_S = 0.05
# A service that commits nothing for this long is reported as stalled and the run fails.
STALL_TIMEOUT_S = 180.0
# A baseline process still running after this long is killed (the broker went away and never came back).
BASELINE_TIMEOUT_S = 1800.0


@dataclass
class ArmResult:
    arm: str
    repetition: int
    timed_events: int
    seconds: float
    events_per_s: float
    cpu_s_per_10k: float
    peak_rss_mb: float
    gate: GateResult
    details: dict = field(default_factory=dict)


class ArmFailed(RuntimeError):
    """Raised when an arm could not finish (a crash or a stall); the message names the log to read."""


# -- baselines -----------------------------------------------------------------


async def run_baseline(
    arm: str, repetition: int, *, topic: str, warmup: int, events: int, placements: Sequence[broker.Placement], log_dir: Path
) -> ArmResult:
    """Run B1, B2 or B3 as a subprocess over `topic`; B3 gets a fresh database that is dropped afterwards."""
    database_name = database.new_database_name(arm) if arm == "b3" else None
    command = [sys.executable, "-m", "bench.baselines", arm, "--topic", topic, "--warmup", str(warmup), "--events", str(events)]
    if database_name:
        command += ["--database-url", await database.create_database(database_name)]
    try:
        output = await _run_process(command, log_dir / f"{arm}-{repetition}.log")
        report = json.loads(output)
        gate = await _baseline_gate(arm, report, placements, database_name)
    finally:
        if database_name:
            await database.drop_database(database_name)
    return ArmResult(
        arm=arm,
        repetition=repetition,
        timed_events=report["timed_events"],
        seconds=report["seconds"],
        events_per_s=report["events_per_s"],
        cpu_s_per_10k=report["cpu_s_per_10k"],
        peak_rss_mb=report["peak_rss_mb"],
        gate=gate,
    )


async def _run_process(command: list[str], log_path: Path) -> str:
    with log_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr, env=os.environ.copy()
        )
        try:
            stdout, _ = await asyncio.wait_for(process.communicate(), timeout=BASELINE_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            process.kill()
            await process.wait()
            raise
    if process.returncode != 0:
        raise ArmFailed(f"{' '.join(command[2:5])} exited with {process.returncode}; see {log_path}")
    return stdout.decode()


async def _baseline_gate(
    arm: str, report: dict, placements: Sequence[broker.Placement], database_name: str | None
) -> GateResult:
    expected = [placement.sequence for placement in placements]
    if arm == "b1":
        by_offset = {(placement.partition, placement.offset): placement.sequence for placement in placements}
        seen = [
            by_offset.get((partition, offset), -1)
            for partition, first, count in report["ranges"]
            for offset in range(first, first + count)
        ]
        return check(expected, seen)
    if arm == "b2":
        return check(expected, report["sequences"])
    assert database_name is not None
    return check(expected, await database.fetch_column(database_name, "SELECT sequence FROM effects"))


# -- services ------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    processed: int
    cpu_s: float


class ServiceRun:
    """One service process with a fresh database and consumer group, fed one workload."""

    # Services whose outbox relay runs in a process of its own beside the
    # consuming instances (role=relay and role=worker); its CPU and memory
    # count with theirs. Set from `--separate-relay`.
    separate_relay: frozenset[str] = frozenset()

    def __init__(self, spec: "services.ServiceSpec", run_id: str, log_dir: Path, *, instances: int = 1) -> None:
        self.spec = spec
        self.run_id = run_id
        self.database_name = database.new_database_name(spec.name)
        self.group_id = f"bench-{spec.name}-{run_id}"
        self.log_dir = log_dir
        self.instances = instances
        self.processes: list = []
        self.bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        self.start_offsets: dict[TopicPartition, int] = {}
        self.institutions_env: dict[str, str] = {}

    async def prepare(self, workload: Workload) -> None:
        """Create the run's fresh topics and start the group at the current end of every topic the service reads.

        The workload's throwaway institutions go to an extra institutions file
        in the log folder, and MEDGOV_EXTRA_INSTITUTIONS_FILE names it for the
        service processes.
        """
        if workload.institutions:
            self.institutions_env = {EXTRA_INSTITUTIONS_ENV: str(self._write_institutions(workload.institutions))}
        for topic in workload.fresh_topics:
            await broker.create_topic(self.bootstrap, topic, 6)
        topics = await broker.topics_matching(self.bootstrap, self.spec.pattern)
        missing = sorted(set(workload.fresh_topics) - set(topics))
        if missing:
            raise ArmFailed(f"fresh topics {missing} do not match the {self.spec.name} service's subscription {self.spec.pattern}")
        self.start_offsets = await broker.end_offsets(self.bootstrap, topics)
        await broker.start_group_at(self.bootstrap, self.group_id, self.start_offsets)

    async def start(self) -> None:
        """Start the instances one after another, after the relay process where the relay runs apart.

        The relay comes first, so that the consuming instances' events are
        published from the moment they apply them.
        """
        roles = ["all"] * self.instances
        if self.spec.name in self.separate_relay:
            roles = ["relay"] + ["worker"] * self.instances
        instance_numbers = iter(range(self.instances))
        for role in roles:
            name = "relay" if role == "relay" else str(next(instance_numbers))
            process = processes.start_service(
                self.spec.name,
                database=self.database_name,
                group_id=self.group_id,
                log_path=self.log_dir / f"{self.spec.name}-{self.run_id}-{name}.log",
                extra_env={**self.spec.env(), **self.institutions_env, f"MEDGOV_{self.spec.name.upper()}_ROLE": role},
            )
            self.processes.append(process)
            try:
                await processes.wait_ready(process, timeout_s=180)
            except (RuntimeError, TimeoutError) as error:
                raise ArmFailed(f"{self.spec.name} {role} process {name} did not become ready: {error}") from error

    def pids(self) -> list[int]:
        return [process.process.pid for process in self.processes]

    def _write_institutions(self, institutions: Sequence[Institution]) -> Path:
        # An extra file that the benchmark itself was started with keeps its rows.
        previous = os.environ.get(EXTRA_INSTITUTIONS_ENV, "").strip()
        inherited = list(load_institutions_file(Path(previous)).values()) if previous else []
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self.log_dir / f"institutions-{self.spec.name}-{self.run_id}.yaml"
        return write_institutions_file(path, [*inherited, *institutions])

    def cpu_s(self) -> float:
        return sum(processes.sample(pid).cpu_s for pid in self.pids())

    def peak_rss_mb(self) -> list[float]:
        return [round(processes.peak_rss_mb(pid), 1) for pid in self.pids()]

    async def stop(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(process.stop) for process in self.processes))

    async def cleanup(self, workload: Workload, *, keep_database: bool) -> None:
        if not keep_database:
            await database.drop_database(self.database_name)
        await broker.delete_topics(self.bootstrap, workload.fresh_topics + [f"{topic}.dlq" for topic in workload.fresh_topics])

    async def wait_applied(self, events: Sequence[BenchEvent], *, timeout_s: float = 120) -> None:
        """Wait until the inbox contains every one of `events` (the setup a workload needs first)."""
        ids = [event.event_id for event in events]
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                applied = await database.count_in(self.database_name, "inbox", "event_id", ids, "uuid")
            except Exception as error:  # the service may still be creating its tables
                log.debug("inbox not readable yet", error=str(error))
                applied = 0
            if applied == len(ids):
                return
            if time.monotonic() > deadline:
                raise ArmFailed(
                    f"{self.spec.name}: only {applied} of {len(ids)} setup events applied after {timeout_s:.0f} s; "
                    f"see the dead_letters table of {self.database_name} and {self.log_dir}"
                )
            await asyncio.sleep(0.5)


class Progress:
    """Counts this run's events below the group's committed offsets, ignoring anything else on the topics."""

    def __init__(self, run: ServiceRun, placements: Sequence[tuple[str, broker.Placement]]) -> None:
        offsets: dict[TopicPartition, list[int]] = defaultdict(list)
        for topic, placement in placements:
            offsets[TopicPartition(topic, placement.partition)].append(placement.offset)
        self.offsets = {partition: sorted(values) for partition, values in offsets.items()}
        self.group_id = run.group_id
        self.admin = AIOKafkaAdminClient(bootstrap_servers=run.bootstrap)

    async def __aenter__(self) -> "Progress":
        await self.admin.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.admin.close()

    async def processed(self) -> int:
        committed = await broker.committed_offsets(self.admin, self.group_id, list(self.offsets))
        return sum(bisect.bisect_left(offsets, committed.get(partition, 0)) for partition, offsets in self.offsets.items())


async def produce_workload(bootstrap: str, events: Sequence[BenchEvent], *, partitions: int | None = None) -> list[tuple[str, broker.Placement]]:
    placed: list[tuple[str, broker.Placement]] = []
    by_topic: dict[str, list[BenchEvent]] = defaultdict(list)
    for event in events:
        by_topic[event.topic].append(event)
    for topic, topic_events in by_topic.items():
        placements = await broker.produce(bootstrap, topic_events, partitions=partitions)
        placed.extend((topic, placement) for placement in placements)
    return placed


async def measure(run: ServiceRun, progress: Progress, *, warmup: int, events: int) -> tuple[Sample, Sample]:
    """Poll until warm-up plus timed events are committed; return the samples that bracket the timed events."""
    total = warmup + events
    started: Sample | None = None
    before_analyze: Sample | None = None
    analyzed = False
    last_change = time.monotonic()
    last_processed = 0
    while True:
        try:
            processed = await progress.processed()
        except UNREACHABLE as error:
            # The service rides out a broker restart, but its rate in this window does not count.
            raise InfrastructureDisturbed(f"{run.spec.name}: broker unreachable while timing: {error}") from error
        if not analyzed and processed >= warmup:
            # Timing starts after the warm-up's rows have given the planner its statistics (see database.analyze).
            before_analyze = Sample(time.monotonic(), processed, run.cpu_s())
            await database.analyze(run.database_name)
            analyzed = True
            continue
        now = Sample(time.monotonic(), processed, run.cpu_s())
        if started is None and analyzed:
            # A short run can apply all its events while ANALYZE runs. Its window then
            # starts before ANALYZE, which is better than a window with no events.
            started = now if processed < total else before_analyze
        if processed >= total:
            assert started is not None
            return started, now
        if processed != last_processed:
            last_processed, last_change = processed, now.at
        elif now.at - last_change > STALL_TIMEOUT_S:
            probes = [await _probes(process.port) for process in run.processes]
            dumps = [_stack_dump(pid) for pid in run.pids()]
            raise ArmFailed(
                f"{run.spec.name} committed nothing for {STALL_TIMEOUT_S:.0f} s at {processed} of {total} events; "
                f"logs in {run.log_dir}; probes: {' | '.join(probes)}; stacks: {' | '.join(dumps)}"
            )
        for process in run.processes:
            if process.process.poll() is not None:
                raise ArmFailed(f"{run.spec.name} exited with {process.process.returncode}; see {process.log_path}")
        await asyncio.sleep(POLL_INTERVAL_S)


async def _probes(port: int) -> str:
    """Return the /healthz and /readyz responses of a stalled service: whether its consumer task ended, and whether it still polls."""
    answers = []
    async with httpx.AsyncClient(timeout=5) as client:
        for path in ("/healthz", "/readyz"):
            try:
                response = await client.get(f"http://127.0.0.1:{port}{path}")
                answers.append(f"{path} {response.status_code} {response.text}")
            except httpx.HTTPError as error:
                answers.append(f"{path} failed: {error}")
    return "; ".join(answers)


def _stack_dump(pid: int) -> str:
    """Return py-spy's dump of a stalled process when py-spy is installed (it is optional)."""
    tool = shutil.which("py-spy") or os.environ.get("MEDGOV_BENCH_PY_SPY")
    if not tool:
        return "py-spy not installed"
    result = subprocess.run([tool, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60)
    return result.stdout[-4000:] or result.stderr[-1000:]


async def run_service(
    spec: "services.ServiceSpec",
    repetition: int,
    workload: Workload,
    *,
    run_id: str,
    warmup: int,
    events: int,
    log_dir: Path,
    instances: int = 1,
    partitions: int | None = None,
    arm: str | None = None,
) -> ArmResult:
    """Feed a workload to `instances` processes of one service and time the events after the warm-up."""
    run = ServiceRun(spec, run_id, log_dir, instances=instances)
    await run.prepare(workload)
    gate: GateResult | None = None
    try:
        if workload.setup:
            await run.start()
            await produce_workload(run.bootstrap, workload.setup)
            await run.wait_applied(workload.setup)
            placed = await produce_workload(run.bootstrap, workload.events, partitions=partitions)
        else:
            placed = await produce_workload(run.bootstrap, workload.events, partitions=partitions)
            await run.start()
        async with Progress(run, placed) as progress:
            started, ended = await measure(run, progress, warmup=warmup, events=events)
        rss = run.peak_rss_mb()
        backlog = await spec.outbox_backlog(run.database_name)
        await run.stop()
        gate = await spec.gate(run.database_name, run_id, workload.events)
    finally:
        await run.stop()
        # A failed run keeps its database for inspection; the report names it.
        await run.cleanup(workload, keep_database=gate is None or not gate.passed)
    timed = ended.processed - started.processed
    seconds = ended.at - started.at
    if timed <= 0 or seconds <= 0:
        raise ArmFailed(f"{spec.name}: no events fell between the warm-up and the end; raise --events above {warmup + events}")
    return ArmResult(
        arm=arm or spec.name,
        repetition=repetition,
        timed_events=timed,
        seconds=round(seconds, 3),
        events_per_s=round(timed / seconds, 1),
        cpu_s_per_10k=round((ended.cpu_s - started.cpu_s) / timed * 10_000, 3),
        peak_rss_mb=max(rss),
        gate=gate,
        details={"peak_rss_mb_per_instance": rss, "outbox_backlog_at_end": backlog, "database": run.database_name},
    )
