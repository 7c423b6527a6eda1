"""The scenario of `make run`, started once for the end-to-end tests and stopped with Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medgov_shared.testing.infrastructure import REPO_ROOT
from medgov_shared.testing.services import free_port_block


@pytest.fixture(scope="session")
def demo_output(tmp_path_factory):
    """The file that receives the scenario's stdout and stderr (not a terminal, as in CI)."""
    return tmp_path_factory.mktemp("demo") / "demo-output.txt"


@pytest.fixture(scope="session")
def summary(infra, sample_data, demo_output):
    """Run the scenario as `make run` does, keep it running for the console tests, stop it with Ctrl-C."""
    output = demo_output
    path = output.with_name("demo-summary.json")
    # Ports of its own, so that a `make run` left running beside the tests does not stop the scenario.
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
           "DATABASE_URL": infra.database_url, "MEDGOV_SAMPLE_DATA": str(sample_data),
           "MEDGOV_DEMO_PORT": str(free_port_block(5))}
    with output.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "medgov_cli.main", "demo", "--keep-running", "--summary", str(path)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 600
            while not path.exists():
                assert process.poll() is None, output.read_text()[-4000:]
                assert time.monotonic() < deadline, "the scenario did not finish in 600 s"
                time.sleep(1)
            time.sleep(1)  # the summary file is complete once the console line is printed
            yield json.loads(path.read_text(encoding="utf-8"))
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()


