"""The benchmark's quick mode on a small number of events: its correctness gate must find nothing lost or doubled.

The run covers B3, the consent service's throughput and one latency level
with timed revocations; scaling and the other services are left out to keep
it under about a minute.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medgov_shared.testing.infrastructure import REPO_ROOT, Infrastructure

# NOTE: skipped until the benchmark harness is finished; its quick run still
# fails its gate on this machine (see docs/benchmarks.md).
pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skip(reason="benchmark harness unfinished: the quick run does not pass its gate yet")]

SMOKE_ARGS = [
    "--events", "1000",
    "--warmup", "200",
    "--arms", "b3,consent",
    "--loads", "0.5",
    "--latency-seconds", "4",
    "--revocations", "3",
    "--skip-scaling",
]


def key_figures(stdout: str) -> dict[str, str]:
    """Parse the last line the benchmark prints: `name=value` pairs separated by spaces."""
    last_line = stdout.strip().splitlines()[-1]
    return dict(item.split("=", 1) for item in last_line.split())


def test_quick_bench_finds_nothing_lost(infra: Infrastructure, sample_data: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MEDGOV_BENCH_QUICK": "1",
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "DATABASE_URL": infra.database_url,
        "MEDGOV_SAMPLE_DATA": str(sample_data),
    }
    result = subprocess.run(
        [sys.executable, "bench/run.py", *SMOKE_ARGS, "--output", str(tmp_path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    figures = key_figures(result.stdout)
    assert figures["lost"] == "0", output
    assert figures["dup"] == "0", output
    assert "failed_runs" not in figures, output
    assert result.returncode == 0, output

    document = json.loads((tmp_path / "results.json").read_text())
    assert [run["arm"] for run in document["runs"]] == ["b3", "consent"]
    assert document["latency"][0]["revocations"] == 3
    assert float(figures["consent_eps"]) > 0
