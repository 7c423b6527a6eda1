"""The benchmark's quick mode on a small number of events: its correctness gate must find nothing lost or doubled.

The run covers B3, the consent service's throughput, one latency level
with timed revocations and a short revocation storm; scaling and the other services are left out to keep
it under about a minute. The gate itself is checked first on made-up
sequence numbers, so a gate that could never fail would be caught.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gate import check
from medgov_shared.testing.infrastructure import REPO_ROOT, Infrastructure
from medgov_shared.testing.services import free_port_block

SMOKE_ARGS = [
    "--events", "1000",
    "--warmup", "200",
    "--arms", "b3,consent",
    "--loads", "0.5",
    "--latency-seconds", "4",
    "--revocations", "3",
    "--storm-rate", "20",
    "--storm-seconds", "1",
    "--skip-scaling",
]


def key_figures(stdout: str) -> dict[str, str]:
    """Parse the last line the benchmark prints: `name=value` pairs separated by spaces."""
    last_line = stdout.strip().splitlines()[-1]
    return dict(item.split("=", 1) for item in last_line.split())


def test_gate_counts_lost_and_duplicated() -> None:
    result = check(range(5), [0, 1, 1, 3, 4, 7])

    assert result.lost == 1
    assert result.lost_sample == (2,)
    assert result.duplicated == 2
    assert result.duplicated_sample == (1, 7)
    assert result.passed is False


def test_key_figures_read_last_line() -> None:
    stdout = "table\nS/B3=0.12 consent_eps=660 lost=2 dup=0 failed_runs=1\n"

    assert key_figures(stdout) == {"S/B3": "0.12", "consent_eps": "660", "lost": "2", "dup": "0", "failed_runs": "1"}


@pytest.mark.integration
@pytest.mark.slow
def test_quick_bench_finds_nothing_lost(infra: Infrastructure, sample_data: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MEDGOV_BENCH_QUICK": "1",
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "DATABASE_URL": infra.database_url,
        "MEDGOV_SAMPLE_DATA": str(sample_data),
    }
    # Its own ports and state folder: a run stops its private pair when it ends,
    # so sharing the default pair with a `make bench` in progress would stop that run's broker.
    first_port = free_port_block(4)  # below the ephemeral range, as in test_chaos_small
    private = ["--private-state", str(tmp_path / "infrastructure"),
               "--private-ports", ",".join(str(first_port + index) for index in range(4))]
    result = subprocess.run(
        [sys.executable, "bench/run.py", *SMOKE_ARGS, *private, "--output", str(tmp_path)],
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
    storm = document["latency"][1]
    assert (storm["load_fraction"], storm["revocations"], storm["revocations_per_s"]) == (0.0, 20, 20.0)
    assert storm["details"]["exclusions_per_s"] > 0
    assert float(figures["storm20_p99_ms"]) > 0
    assert float(figures["consent_eps"]) > 0
