"""The demo stack's supervisor: a service process that dies is logged, restarted with back-off, and given up on."""

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from medgov_cli.demo import stack as stack_module
from medgov_cli.demo.stack import MAX_RESTARTS, SERVICES, Stack, describe_exit


class ScriptStack(Stack):
    """A stack whose "services" are small Python processes, so the supervisor runs without Kafka or PostgreSQL."""

    script = "import time; time.sleep(600)"

    def _spawn(self, service: str) -> None:
        process = subprocess.Popen([sys.executable, "-c", self.script])
        self.processes[service] = process
        self.states[service].pid = process.pid

    async def _ready(self, service, client) -> bool:  # noqa: ANN001 - the parent's signature
        return self.processes[service].poll() is None


class CrashingStack(ScriptStack):
    script = "raise SystemExit(3)"


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(stack_module, "FIRST_BACKOFF_S", 0.05)
    monkeypatch.setattr(stack_module, "SUPERVISION_INTERVAL_S", 0.05)


async def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_killed_service_restarted(tmp_path, fast_backoff):
    stack = ScriptStack(root=tmp_path, sample_data=tmp_path)
    stack.start()
    lines: list[str] = []
    supervisor = asyncio.create_task(stack.supervise(lines.append))
    try:
        await wait_for(lambda: all(state.status == "running" for state in stack.states.values()))
        first_pid = stack.states["review"].pid
        os.kill(first_pid, signal.SIGKILL)

        await wait_for(lambda: stack.states["review"].restarts == 1 and stack.states["review"].status == "running")
    finally:
        supervisor.cancel()
        stack.stop()

    state = stack.states["review"]
    assert state.pid != first_pid
    assert state.last_exit_code == -signal.SIGKILL
    assert f"review exited unexpectedly (killed by SIGKILL); see {tmp_path / 'var/log/review.log'}" in lines[0]
    assert f"restart 1 of {MAX_RESTARTS}" in lines[0]
    assert lines[1].startswith("review is ready again after restart 1")
    assert all(stack.states[other].restarts == 0 for other in SERVICES if other != "review")


async def test_crash_loop_given_up(tmp_path, fast_backoff, monkeypatch):
    monkeypatch.setattr(stack_module, "MAX_BACKOFF_S", 0.05)
    stack = CrashingStack(root=tmp_path, sample_data=tmp_path)
    stack.start()
    lines: list[str] = []
    supervisor = asyncio.create_task(stack.supervise(lines.append))
    try:
        await wait_for(lambda: all(state.status == "failed" for state in stack.states.values()))
    finally:
        supervisor.cancel()
        stack.stop()

    assert all(state.restarts == MAX_RESTARTS for state in stack.states.values())
    assert all(state.last_exit_code == 3 for state in stack.states.values())
    given_up = [line for line in lines if "is not restarted" in line]
    assert len(given_up) == len(SERVICES)
    assert "grants exited (exit code 3) and is not restarted" in " ".join(given_up)


def test_exit_described():
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"


def test_supervision_report_names_log(tmp_path):
    stack = ScriptStack(root=tmp_path, sample_data=tmp_path)
    stack.start()
    try:
        report = stack.supervision()
    finally:
        stack.stop()

    assert set(report) == set(SERVICES)
    assert report["consent"]["log"] == str(tmp_path / "var" / "log" / "consent.log")
    assert report["consent"]["url"] == "http://127.0.0.1:8103"
    assert report["consent"]["restarts"] == 0


async def test_restart_budget_renewed_after_stable_run(tmp_path, fast_backoff, monkeypatch):
    monkeypatch.setattr(stack_module, "STABLE_AFTER_S", 0.3)
    stack = ScriptStack(root=tmp_path, sample_data=tmp_path)
    stack.start()
    supervisor = asyncio.create_task(stack.supervise(lambda line: None))
    try:
        await wait_for(lambda: stack.states["grants"].status == "running")
        os.kill(stack.states["grants"].pid, signal.SIGKILL)
        await wait_for(lambda: stack.states["grants"].total_restarts == 1)
        await wait_for(lambda: stack.states["grants"].status == "running" and stack.states["grants"].restarts == 0)
    finally:
        supervisor.cancel()
        stack.stop()

    report = stack.supervision()["grants"]
    assert (report["restarts"], report["total_restarts"]) == (0, 1)
    assert "running_since" not in report


def test_services_start_in_their_own_session(tmp_path, monkeypatch):
    started: list[dict] = []

    class Recorder:
        pid = 4242

        def __init__(self, command, **options) -> None:
            started.append(options)

    monkeypatch.setattr(stack_module.subprocess, "Popen", Recorder)
    stack = Stack(root=tmp_path, sample_data=tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql://127.0.0.1:1/postgres")
    stack.start()

    # Ctrl-C in the terminal must reach only the scenario, which stops the services itself.
    assert len(started) == len(SERVICES)
    assert all(options["start_new_session"] for options in started)


def test_console_server_leaves_ctrl_c_to_the_scenario():
    import uvicorn

    from medgov_cli.demo.scenario import _ConsoleServer

    server = _ConsoleServer(uvicorn.Config(lambda scope, receive, send: None))
    before = signal.getsignal(signal.SIGINT)
    with server.capture_signals():
        during = signal.getsignal(signal.SIGINT)

    assert during is before
