"""Summaries of the runs: medians and spread per arm, the S/B ratios, the environment, and the one-line verdict."""

import os
import platform
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.arms import ArmResult
from bench.gate import GateResult
from bench.latency import LatencyResult
from bench.workload import REPO_ROOT
from medgov_shared.testing.infrastructure import load_launcher

SERVICE_ARMS = ("consent", "review", "catalog", "grants")


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, minimum, maximum and the range relative to the median."""
    median = statistics.median(values)
    return {
        "median": round(median, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "range_pct": round((max(values) - min(values)) / median * 100, 1) if median else 0.0,
        "runs": len(values),
    }


def summarize_arms(results: Sequence[ArmResult]) -> dict[str, dict]:
    by_arm: dict[str, list[ArmResult]] = defaultdict(list)
    for result in results:
        by_arm[result.arm].append(result)
    return {
        arm: {
            "events_per_s": spread([item.events_per_s for item in items]),
            "cpu_s_per_10k": spread([item.cpu_s_per_10k for item in items]),
            "peak_rss_mb": max(item.peak_rss_mb for item in items),
        }
        for arm, items in by_arm.items()
    }


def ratios(results: Sequence[ArmResult], service: str, baseline: str) -> dict[str, float] | None:
    """S/B per repetition (the arms of one repetition ran back to back), then their spread."""
    by_repetition: dict[int, dict[str, float]] = defaultdict(dict)
    for result in results:
        by_repetition[result.repetition][result.arm] = result.events_per_s
    values = [arms[service] / arms[baseline] for arms in by_repetition.values() if service in arms and baseline in arms]
    return spread(values) if values else None


def total_gate(results: Sequence[ArmResult], latencies: Sequence[LatencyResult], scaling: Sequence[ArmResult]) -> GateResult:
    total = GateResult(expected=0, lost=0, duplicated=0)
    for item in [*results, *latencies, *scaling]:
        total = total.merge(item.gate)
    return total


def environment() -> dict[str, object]:
    import aiokafka
    import asyncpg
    import pydantic

    return {
        "nproc": str(os.cpu_count()),
        "memory": _memory(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "asyncpg": asyncpg.__version__,
        "pydantic": pydantic.VERSION,
        "kafka": _kafka_version(),
        "kernel": platform.release(),
    }


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _kafka_version() -> str:
    """Read the broker's version from the shared pair's log, or else from the jars the launcher starts brokers from."""
    log_file = REPO_ROOT / "var" / "log" / "kafka.log"
    if log_file.exists():
        found = None
        with log_file.open(errors="replace") as lines:
            for line in lines:
                match = re.search(r"Kafka version: (\S+)", line)
                if match:
                    found = match.group(1)  # the last start counts
        if found:
            return found
    # The private pair's log is deleted with its state at the end of the run.
    cached = load_launcher().cached_kafka_version()
    return f"{cached} (the local launcher's jars)" if cached else "unknown (no var/log/kafka.log and no cached jars)"


def to_json(config: dict, env: dict[str, object], results: Sequence[ArmResult], latencies: Sequence[LatencyResult], scaling: Sequence[ArmResult], failures: Sequence[str]) -> dict:
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": config,
        "environment": env,
        "arms": summarize_arms(results),
        "ratios": {
            f"{service}/{baseline}": ratios(results, service, baseline)
            for service in SERVICE_ARMS
            for baseline in ("b3", "b2")
        },
        "runs": [asdict(item) for item in results],
        "latency": [asdict(item) for item in latencies],
        "scaling": [asdict(item) for item in scaling],
        "failures": list(failures),
    }


def table(results: Sequence[ArmResult]) -> str:
    lines = [f"{'arm':<10} {'events/s median':>16} {'min':>9} {'max':>9} {'range':>7} {'CPU s/10k':>10} {'peak RSS MB':>12} {'runs':>5}"]
    for arm, summary in summarize_arms(results).items():
        rate = summary["events_per_s"]
        lines.append(
            f"{arm:<10} {rate['median']:>16.1f} {rate['min']:>9.1f} {rate['max']:>9.1f} {rate['range_pct']:>6.1f}% "
            f"{summary['cpu_s_per_10k']['median']:>10.2f} {summary['peak_rss_mb']:>12.1f} {rate['runs']:>5}"
        )
    return "\n".join(lines)


def latency_table(latencies: Sequence[LatencyResult]) -> str:
    header = (
        f"{'load':>6} {'events/s':>9} {'commit p50/p95/p99/p99.9 ms':>32} {'fan-out p50/p95/p99/p99.9 ms':>33} "
        f"{'revocations':>12} {'per s':>6}"
    )
    lines = [header]
    for item in latencies:
        load = "storm" if item.is_storm else f"{item.load_fraction:.0%}"
        lines.append(
            f"{load:>6} {item.sent_eps:>9.1f} {_quantiles(item.commit_ms):>32} "
            f"{_quantiles(item.revocation_fanout_ms):>33} {item.revocations:>12} {item.revocations_per_s:>6.1f}"
        )
    return "\n".join(lines)


def _quantiles(values: dict[str, float]) -> str:
    if not values:
        return "-"
    return "/".join(f"{values[key]:.0f}" for key in ("p50", "p95", "p99", "p99.9"))


def key_line(results: Sequence[ArmResult], latencies: Sequence[LatencyResult], gate: GateResult, failures: Sequence[str]) -> str:
    """Return the last line `make bench` prints: the key figures, then the lost and duplicated sequence numbers."""
    parts = []
    s_b3 = ratios(results, "consent", "b3")
    s_b2 = ratios(results, "consent", "b2")
    if s_b3:
        parts.append(f"S/B3={s_b3['median']:.2f}")
    if s_b2:
        parts.append(f"S/B2={s_b2['median']:.2f}")
    consent = [item.events_per_s for item in results if item.arm == "consent"]
    if consent:
        parts.append(f"consent_eps={statistics.median(consent):.0f}")
    half_load = [item for item in latencies if abs(item.load_fraction - 0.5) < 1e-9 and item.revocation_fanout_ms]
    if half_load:
        parts.append(f"revoke_p99_ms={half_load[0].revocation_fanout_ms['p99']:.0f}")
    storms = [item for item in latencies if item.is_storm and item.revocation_fanout_ms]
    if storms:
        parts.append(f"storm{storms[0].revocations_per_s:.0f}_p99_ms={storms[0].revocation_fanout_ms['p99']:.0f}")
    rss = [item.peak_rss_mb for item in results if item.arm in SERVICE_ARMS]
    if rss:
        parts.append(f"service_rss_max_mb={max(rss):.0f}")
    parts.append(f"lost={gate.lost} dup={gate.duplicated}")
    if failures:
        parts.append(f"failed_runs={len(failures)}")
    return " ".join(parts)
