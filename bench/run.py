"""Benchmark of the medgov services against hand-written baselines (`make bench`).

Phases, all on the local Kafka broker and PostgreSQL server from var/local.env:

1. Throughput: B1, B2, B3 and the four services, interleaved, each repetition
   on freshly built events (a new topic or consumer group per run and a new
   database per arm run). The first `--warmup` events of each run are not
   timed.
2. Latency of the consent service under an open-loop load at 25, 50 and 75
   percent of its measured maximum, with timed revocations of subjects who
   are each in 50 active grants.
3. Revocation storm: revocations alone at `--storm-rate` per second (500 by
   default) for `--storm-seconds`, each subject in 50 active grants.
4. Scaling: one and then two consent instances in one consumer group on four
   partitions.

Every run checks that no sequence number was lost or applied twice; any
failure makes the exit status 1. The last line printed contains the key figures.
MEDGOV_BENCH_QUICK=1 (or --quick) runs 5,000 events once each, for smoke tests.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import structlog  # noqa: E402

from bench import arms, broker, database, infrastructure, latency, report, services, workload  # noqa: E402
from bench.arms import ArmResult  # noqa: E402
from bench.infrastructure import UNREACHABLE, InfrastructureDisturbed  # noqa: E402
from bench.latency import LatencyResult  # noqa: E402
from medgov_cli.chaos.infrastructure import ChaosSetupError  # noqa: E402
from medgov_shared.observability.logging import configure_logging  # noqa: E402

log = structlog.get_logger("bench")

T = TypeVar("T")

BASELINES = ("b1", "b2", "b3")
ALL_ARMS = (*BASELINES, "consent", "review", "catalog", "grants")
LOAD_FRACTIONS = (0.25, 0.50, 0.75)
SCALING_PARTITIONS = 4
PRIVATE_STATE = workload.REPO_ROOT / "var" / "bench" / "infrastructure"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    quick = os.environ.get("MEDGOV_BENCH_QUICK", "") not in ("", "0")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", default=quick, help="5,000 events, one repetition (also MEDGOV_BENCH_QUICK=1).")
    parser.add_argument("--events", type=int, help="Timed events per run (default 100,000; 5,000 with --quick).")
    parser.add_argument("--warmup", type=int, help="Untimed events before the timed ones (default events/20, at least 500).")
    parser.add_argument("--repetitions", type=int, help="Runs per arm (default 5; 1 with --quick).")
    parser.add_argument("--arms", default=",".join(ALL_ARMS), help=f"Comma-separated arms among {', '.join(ALL_ARMS)}.")
    parser.add_argument("--latency-seconds", type=float, help="Timed seconds per load level (default 60; 10 with --quick).")
    parser.add_argument("--revocations", type=int, help="Timed revocations per load level (default 200; 10 with --quick).")
    parser.add_argument(
        "--loads", default=",".join(str(item) for item in LOAD_FRACTIONS), help="Comma-separated load levels as fractions of the maximum."
    )
    parser.add_argument("--max-eps", type=float, help="Consent events/s that 100%% load means; measured when not given.")
    parser.add_argument("--skip-latency", action="store_true", help="Leave out the latency phase.")
    parser.add_argument("--storm-rate", type=float, default=500.0, help="Revocations per second in the storm phase (default 500).")
    parser.add_argument("--storm-seconds", type=float, help="Length of the storm phase in seconds (default 4; 2 with --quick).")
    parser.add_argument("--skip-storm", action="store_true", help="Leave out the revocation storm phase.")
    parser.add_argument("--skip-scaling", action="store_true", help="Leave out the scaling phase.")
    parser.add_argument(
        "--separate-relay", action="store_true",
        help="Run the consent service's outbox relay in a process of its own (role=relay) beside the consuming ones "
        "(role=worker) in every consent run; CPU and memory count both.",
    )
    parser.add_argument(
        "--shared-infrastructure",
        action="store_true",
        help="Use the Kafka broker and PostgreSQL server named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL instead of "
        "starting a private pair (ports 49092-49094 and 45432, state in var/bench/infrastructure).",
    )
    parser.add_argument(
        "--private-state", type=Path, default=PRIVATE_STATE,
        help="State folder of the private pair, deleted after the run (default var/bench/infrastructure).",
    )
    parser.add_argument(
        "--private-ports",
        help="Ports of the private pair as KAFKA,SASL,CONTROLLER,POSTGRES (default 49092,49093,49094,45432). "
        "Two runs at once need different ports and state folders, or the first to finish stops the other's pair.",
    )
    parser.add_argument("--output", type=Path, help="Folder for results.json and the process logs (default var/bench/<UTC time>).")
    args = parser.parse_args(argv)

    args.events = args.events or (5_000 if args.quick else 100_000)
    args.warmup = args.warmup if args.warmup is not None else max(args.events // 20, 500)
    args.repetitions = args.repetitions or (1 if args.quick else 5)
    args.latency_seconds = args.latency_seconds or (10.0 if args.quick else 60.0)
    args.revocations = args.revocations or (10 if args.quick else 200)
    args.storm_seconds = args.storm_seconds or (2.0 if args.quick else 4.0)
    if args.storm_rate <= 0 or args.storm_seconds <= 0:
        parser.error("--storm-rate and --storm-seconds must be positive")
    args.loads = [float(item) for item in args.loads.split(",") if item.strip()]
    args.arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    unknown = sorted(set(args.arms) - set(ALL_ARMS))
    if unknown:
        parser.error(f"unknown arms {', '.join(unknown)}; choose among {', '.join(ALL_ARMS)}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.output = args.output or workload.REPO_ROOT / "var" / "bench" / stamp
    return args


def require_environment(args: argparse.Namespace) -> None:
    for path in (workload.BASIC_CONSENT, workload.MII_CONSENT):
        if not path.exists():
            raise SystemExit(f"sample file {path} not found; set MEDGOV_SAMPLE_DATA to the shared data folder")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        self.logs = args.output / "logs"
        self.results: list[ArmResult] = []
        self.latencies: list[LatencyResult] = []
        self.scaling: list[ArmResult] = []
        self.failures: list[str] = []
        self.census: dict[str, int] = {}
        self.postgresql_version = "unknown"

    # -- throughput ------------------------------------------------------------------

    async def throughput(self) -> None:
        arms_in_order = list(self.args.arms)
        for repetition in range(1, self.args.repetitions + 1):
            # Rotating the order keeps any drift of the shared machine from favouring one arm.
            shift = (repetition - 1) % len(arms_in_order)
            order = arms_in_order[shift:] + arms_in_order[:shift]
            run_id = workload.new_run_id()
            consent_events = workload.record_consents(run_id, 0, self.args.warmup + self.args.events)
            prepared = await self._attempt(f"repetition {repetition} topic", lambda: self._baseline_topic(run_id, consent_events, order))
            if prepared is None:
                continue
            baseline_topic, placements = prepared
            try:
                for arm in order:
                    await self._run_arm(arm, repetition, run_id, consent_events, baseline_topic, placements)
            finally:
                if baseline_topic:
                    await broker.delete_topics(self.bootstrap, [baseline_topic, f"{baseline_topic}.dlq"])

    async def _baseline_topic(self, run_id: str, events: list, order: list[str]) -> tuple[str | None, list]:
        if not any(arm in BASELINES for arm in order):
            return None, []
        topic = f"bench.consent-{run_id}"
        await broker.create_topic(self.bootstrap, topic, 6)
        placements = await broker.produce(self.bootstrap, events, topic=topic)
        return topic, placements

    async def _run_arm(self, arm: str, repetition: int, run_id: str, consent_events: list, topic: str | None, placements: list) -> None:
        async def run_once() -> ArmResult:
            if arm in BASELINES:
                assert topic is not None
                return await arms.run_baseline(
                    arm, repetition, topic=topic, warmup=self.args.warmup, events=self.args.events, placements=placements, log_dir=self.logs
                )
            # A repeated attempt needs new event ids, so it gets a new run id and new events.
            attempt_run_id = run_id if arm == "consent" and not attempts else workload.new_run_id()
            attempts.append(attempt_run_id)
            return await arms.run_service(
                services.SERVICES[arm],
                repetition,
                self._workload(arm, attempt_run_id, consent_events if attempt_run_id == run_id else None),
                run_id=attempt_run_id,
                warmup=self.args.warmup,
                events=self.args.events,
                log_dir=self.logs,
            )

        attempts: list[str] = []
        log.info("arm started", arm=arm, repetition=repetition, events=self.args.events, warmup=self.args.warmup)
        started = time.monotonic()
        result = await self._attempt(f"{arm} run {repetition}", run_once)
        if result is None:
            return
        self.results.append(result)
        self._check_gate(f"{arm} run {repetition}", result.gate)
        log.info(
            "arm finished", arm=arm, repetition=repetition, events_per_s=result.events_per_s, cpu_s_per_10k=result.cpu_s_per_10k,
            peak_rss_mb=result.peak_rss_mb, lost=result.gate.lost, duplicated=result.gate.duplicated,
            wall_s=round(time.monotonic() - started, 1),
        )

    def _workload(self, arm: str, run_id: str, consent_events: list | None) -> workload.Workload:
        total = self.args.warmup + self.args.events
        if arm == "consent":
            return workload.Workload(events=consent_events or workload.record_consents(run_id, 0, total))
        if arm == "review":
            return workload.review_workload(run_id, total)
        if arm == "catalog":
            return workload.catalog_workload(run_id, total)
        return workload.grants_workload(run_id, total)

    # -- latency and scaling ----------------------------------------------------------

    async def latency(self) -> None:
        max_eps = self.args.max_eps or self._consent_median()
        if max_eps is None:
            log.info("measuring the consent maximum for the latency phase", events=self.args.events)
            await self._run_arm("consent", 0, workload.new_run_id(), [], None, [])
            max_eps = self._consent_median()
        if max_eps is None:
            self._fail("latency: no consent throughput to take the load levels from")
            return
        for fraction in self.args.loads:
            log.info("latency run started", load=fraction, events_per_s=round(fraction * max_eps, 1))
            result = await self._attempt(
                f"latency at {fraction:.0%}",
                lambda: latency.run_latency(
                    fraction, max_eps, warmup_s=min(10.0, self.args.latency_seconds / 2), measure_s=self.args.latency_seconds,
                    revocations=self.args.revocations, log_dir=self.logs,
                ),
            )
            if result is None:
                continue
            self.latencies.append(result)
            self._check_gate(f"latency at {fraction:.0%}", result.gate)
            log.info("latency run finished", load=fraction, commit_ms=result.commit_ms, fanout_ms=result.revocation_fanout_ms)

    async def storm(self) -> None:
        rate, seconds = self.args.storm_rate, self.args.storm_seconds
        log.info("revocation storm started", revocations_per_s=rate, seconds=seconds, grants_per_subject=latency.GRANTS_PER_SUBJECT)
        result = await self._attempt(
            f"revocation storm at {rate:g}/s", lambda: latency.run_revocation_storm(rate, seconds, log_dir=self.logs)
        )
        if result is None:
            return
        self.latencies.append(result)
        self._check_gate(f"revocation storm at {rate:g}/s", result.gate)
        log.info(
            "revocation storm finished", fanout_ms=result.revocation_fanout_ms, exclusions_per_s=result.details["exclusions_per_s"]
        )

    def _consent_median(self) -> float | None:
        values = [item.events_per_s for item in self.results if item.arm == "consent"]
        return statistics.median(values) if values else None

    async def scaling_runs(self) -> None:
        for instances in (1, 2):

            async def run_once() -> ArmResult:
                run_id = workload.new_run_id()
                events = workload.record_consents(run_id, 0, self.args.warmup + self.args.events)
                return await arms.run_service(
                    services.CONSENT, instances, workload.Workload(events=events), run_id=run_id, warmup=self.args.warmup,
                    events=self.args.events, log_dir=self.logs, instances=instances, partitions=SCALING_PARTITIONS,
                    arm=f"consent x{instances}",
                )

            log.info("scaling run started", instances=instances, partitions=SCALING_PARTITIONS)
            result = await self._attempt(f"scaling with {instances} instances", run_once)
            if result is None:
                continue
            self.scaling.append(result)
            self._check_gate(f"scaling with {instances} instances", result.gate)
            log.info("scaling run finished", instances=instances, events_per_s=result.events_per_s)

    async def _attempt(self, label: str, run: Callable[[], Awaitable[T]]) -> T | None:
        """Run once; after a failure while the broker or database was away, wait for them and run once more.

        Other people's chaos runs restart the shared pair, and a run cut by a
        restart says nothing about the services. Any other failure, or a second
        one, is recorded and the benchmark goes on with the next run.
        """
        for attempt in (1, 2):
            try:
                await infrastructure.wait_until_reachable()
                return await run()
            except Exception as error:  # recorded below; one failed run must not stop the others
                disturbed = isinstance(error, (InfrastructureDisturbed, *UNREACHABLE)) or await infrastructure.reachable() is not None
                if attempt == 1 and disturbed:
                    log.warning("run disturbed by the broker or database; repeating it", run=label, error=f"{type(error).__name__}: {error}")
                    continue
                log.exception("run failed", run=label)
                self._fail(f"{label}: {type(error).__name__}: {error}")
        return None

    # -- outcome -------------------------------------------------------------------------

    def _check_gate(self, label: str, gate) -> None:  # noqa: ANN001 - a GateResult
        if not gate.passed:
            self._fail(f"{label}: {gate.lost} lost and {gate.duplicated} duplicated sequence numbers "
                       f"(lost e.g. {list(gate.lost_sample)}, duplicated e.g. {list(gate.duplicated_sample)}; {'; '.join(gate.notes)})")

    def _fail(self, message: str) -> None:
        log.error("benchmark run failed", failure=message)
        self.failures.append(message)

    def finish(self) -> int:
        gate = report.total_gate(self.results, self.latencies, self.scaling)
        config = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(self.args).items()}
        environment = {**report.environment(), "postgresql": self.postgresql_version, "kafka_topics": self.census}
        document = report.to_json(config, environment, self.results, self.latencies, self.scaling, self.failures)
        self.args.output.mkdir(parents=True, exist_ok=True)
        (self.args.output / "results.json").write_text(json.dumps(document, indent=2, default=str))
        print(report.table(self.results))
        for name, value in document["ratios"].items():
            if value:
                print(f"{name}: median {value['median']:.3f} (min {value['min']:.3f}, max {value['max']:.3f})")
        if self.latencies:
            print(report.latency_table(self.latencies))
        for item in self.scaling:
            print(f"{item.arm} on {SCALING_PARTITIONS} partitions: {item.events_per_s:.1f} events/s, peak RSS per instance {item.details['peak_rss_mb_per_instance']} MB")
        for failure in self.failures:
            print(f"FAILED: {failure}")
        print(f"results: {self.args.output / 'results.json'}")
        print(report.key_line(self.results, self.latencies, gate, self.failures))
        return 0 if gate.passed and not self.failures else 1


async def main_async(args: argparse.Namespace) -> int:
    bench = Bench(args)
    if args.separate_relay:
        arms.ServiceRun.separate_relay = frozenset({"consent"})
    bench.logs.mkdir(parents=True, exist_ok=True)
    # SIGTERM and SIGINT cancel the phases, so each run's cleanup stops its service processes.
    current = asyncio.current_task()
    assert current is not None
    loop = asyncio.get_running_loop()
    signalled: list[str] = []

    def interrupt(name: str) -> None:
        signalled.append(name)
        current.cancel()

    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, interrupt, signal.Signals(signal_number).name)
    try:
        await broker.ensure_registry_topics(bench.bootstrap)
        bench.postgresql_version = await database.server_version()
        bench.census = await broker.topic_census(
            bench.bootstrap, {f"matched by {name}": spec.pattern for name, spec in services.SERVICES.items()}
        )
        if args.arms:
            await bench.throughput()
        if not args.skip_latency and "consent" in args.arms:
            await bench.latency()
        if not args.skip_storm and "consent" in args.arms:
            await bench.storm()
        if not args.skip_scaling and "consent" in args.arms:
            await bench.scaling_runs()
    except asyncio.CancelledError:
        if not signalled:
            raise
        bench.failures.append(f"interrupted by {signalled[0]}; the figures cover the runs finished before it")
    return bench.finish()


def main() -> None:
    args = parse_args()
    configure_logging(level="INFO", fmt="console")
    # httpx logs every readiness probe at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    require_environment(args)
    if args.shared_infrastructure:
        sys.exit(run_on_shared_pair(args))
    try:
        ports = infrastructure.private_ports(args.private_ports)
    except ValueError as error:
        raise SystemExit(str(error)) from error
    log.info("starting a private Kafka broker and PostgreSQL server", state=str(args.private_state), ports=ports)
    try:
        with infrastructure.private_pair(args.private_state, ports) as pair:
            args.infrastructure = f"private pair started for this run ({pair['kafka_bootstrap_servers']})"
            status = asyncio.run(main_async(args))
    except ChaosSetupError as error:
        log.warning("no private pair; running on the shared one", error=str(error))
        status = run_on_shared_pair(args)
    sys.exit(status)


def run_on_shared_pair(args: argparse.Namespace) -> int:
    if not (os.environ.get("KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("DATABASE_URL")):
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are not set; run `make up` and source var/local.env")
    args.infrastructure = f"shared pair from the environment ({os.environ['KAFKA_BOOTSTRAP_SERVERS']})"
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
