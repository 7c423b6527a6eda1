"""Starting the four services as local processes for the scenario, and restarting one that dies."""

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

SERVICES = ("review", "catalog", "consent", "grants")
# The console listens on this port and the four services on the four after it.
DEFAULT_CONSOLE_PORT = 8100


def service_ports(console_port: int) -> dict[str, int]:
    """Return each service's HTTP port when the console is on `console_port`."""
    return {service: console_port + 1 + index for index, service in enumerate(SERVICES)}

MAX_RESTARTS = 5  # in a row; a service that keeps dying needs a person, not a loop
# A service that has run this long since its last restart gets its full restart budget back.
STABLE_AFTER_S = 300.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
SUPERVISION_INTERVAL_S = 0.5


@dataclass
class ServiceState:
    """Process state that the supervisor tracks for one service."""

    status: str = "starting"  # starting | running | restarting | failed | stopped
    restarts: int = 0  # since the service last ran for STABLE_AFTER_S
    total_restarts: int = 0
    last_exit_code: int | None = None
    pid: int | None = None
    running_since: float | None = field(default=None, repr=False)  # time.monotonic() when it became ready


def describe_exit(code: int) -> str:
    """Describe a Popen return code; a negative code is the signal that ended the process."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def local_state_dir(root: Path) -> Path:
    """Return the folder of local state: MEDGOV_LOCAL_VAR_DIR when set, as the launcher reads it, or else var/ in the checkout."""
    configured = os.environ.get("MEDGOV_LOCAL_VAR_DIR")
    return Path(configured).resolve() if configured else root / "var"


@dataclass
class Stack:
    """The running services of one scenario and the secrets they share."""

    root: Path
    sample_data: Path
    # The key of var/local.env when set, so `medgov token` signs tokens these services accept.
    jwt_secret: str = field(default_factory=lambda: os.environ.get("JWT_SECRET") or secrets.token_urlsafe(32))
    pseudonym_key: str = field(default_factory=lambda: secrets.token_hex(32))
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    database_prefix: str = "medgov"  # of the database names <prefix>_<service>_demo_<run id>
    console_port: int = DEFAULT_CONSOLE_PORT
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    states: dict[str, ServiceState] = field(default_factory=dict)
    stopping: bool = False
    _restarts: set[asyncio.Task] = field(default_factory=set)

    @property
    def ports(self) -> dict[str, int]:
        return service_ports(self.console_port)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def service_env(self, service: str) -> dict[str, str]:
        prefix = f"MEDGOV_{service.upper()}_"
        env = {
            **os.environ,
            "REGION": "daegu",
            "JWT_SECRET": self.jwt_secret,
            f"{prefix}HTTP_PORT": str(self.ports[service]),
            # A fresh database per scenario run keeps runs independent of each other.
            f"{prefix}DATABASE_URL": self._database_url(f"{self.database_prefix}_{service}_demo_{self.run_id}"),
            f"{prefix}KAFKA_GROUP_ID": f"medgov-{service}-demo-{self.run_id}",
            f"{prefix}LOG_FORMAT": "json",
        }
        env.update(self.extra_env.get(service, {}))
        return env

    def _database_url(self, name: str) -> str:
        base = os.environ["DATABASE_URL"]
        return base.rsplit("/", 1)[0] + "/" + name

    async def drop_earlier_databases(self, *, keep_runs: int = 1) -> list[str]:
        """Drop the databases of earlier scenario runs except the latest `keep_runs`; return the names dropped.

        Each run gets four fresh databases, so without this every `make run`
        leaves four more behind. The previous run's stay for inspection.
        """
        connection = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            services = "|".join(SERVICES)
            rows = await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname ~ $1",
                f"^{self.database_prefix}_({services})_demo_[0-9]{{14}}$",
            )
            by_run: dict[str, list[str]] = {}
            for row in rows:
                by_run.setdefault(row["datname"].rsplit("_", 1)[1], []).append(row["datname"])
            earlier = sorted(run for run in by_run if run != self.run_id)
            dropped = []
            for name in (name for run in earlier[: max(0, len(earlier) - keep_runs)] for name in sorted(by_run[run])):
                try:
                    # Without FORCE: a database something still uses (another scenario, a psql
                    # session) is skipped, not pulled from under it.
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
                except asyncpg.ObjectInUseError:
                    continue
                dropped.append(name)
            return dropped
        finally:
            await connection.close()

    def log_path(self, service: str) -> Path:
        return local_state_dir(self.root) / "log" / f"{service}.log"

    def start(self) -> None:
        for service in SERVICES:
            self.states[service] = ServiceState()
            self._spawn(service)

    def _spawn(self, service: str) -> None:
        path = self.log_path(service)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as log:
            # A session of its own: Ctrl-C in the terminal reaches only the
            # scenario, which then stops the services in order, instead of
            # each service exiting on its own and being restarted as a crash.
            process = subprocess.Popen(
                [sys.executable, "-m", f"medgov_{service}"], env=self.service_env(service),
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True,
            )
        self.processes[service] = process
        self.states[service].pid = process.pid

    def supervision(self) -> dict[str, dict]:
        """Return each service's status, restart count, last exit code, pid, URL and log file."""
        return {
            service: {
                **{name: value for name, value in state.__dict__.items() if name != "running_since"},
                "url": self.url(service), "log": str(self.log_path(service)),
            }
            for service, state in self.states.items()
        }

    async def supervise(self, notify: Callable[[str], None]) -> None:
        """Restart a service process that exits while the stack runs, with back-off, at most MAX_RESTARTS times.

        Runs until cancelled. `notify` gets one line per exit, restart,
        recovery and final failure.
        """
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                for service in SERVICES:
                    await self._check(service, client, notify)
                await asyncio.sleep(SUPERVISION_INTERVAL_S)

    async def _check(self, service: str, client: httpx.AsyncClient, notify: Callable[[str], None]) -> None:
        state = self.states[service]
        process = self.processes[service]
        if self.stopping or state.status in ("failed", "restarting"):
            return
        code = process.poll()
        if code is None:
            if state.status == "starting" and await self._ready(service, client):
                if state.restarts:
                    notify(f"{service} is ready again after restart {state.restarts} (pid {process.pid})")
                state.status = "running"
                state.running_since = time.monotonic()
            elif state.restarts and state.running_since and time.monotonic() - state.running_since >= STABLE_AFTER_S:
                state.restarts = 0
            return
        state.last_exit_code = code
        if state.restarts >= MAX_RESTARTS:
            state.status = "failed"
            notify(f"{service} exited ({describe_exit(code)}) and is not restarted: it already was restarted "
                   f"{MAX_RESTARTS} times; see {self.log_path(service)}")
            return
        state.restarts += 1
        state.total_restarts += 1
        state.status = "restarting"
        state.running_since = None
        backoff = min(FIRST_BACKOFF_S * 2 ** (state.restarts - 1), MAX_BACKOFF_S)
        notify(f"{service} exited unexpectedly ({describe_exit(code)}); see {self.log_path(service)}; "
               f"restart {state.restarts} of {MAX_RESTARTS} in {backoff:g} s")
        # A task of its own, so the back-off of one service does not delay the checks of the others.
        self._restarts.add(asyncio.create_task(self._restart_after(service, backoff)))

    async def _restart_after(self, service: str, backoff_s: float) -> None:
        try:
            await asyncio.sleep(backoff_s)
            if not self.stopping:
                self._spawn(service)
                self.states[service].status = "starting"
        finally:
            self._restarts.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def _ready(self, service: str, client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get(f"{self.url(service)}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(SERVICES)
        while pending:
            for service in sorted(pending):
                process = self.processes[service]
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited ({describe_exit(process.returncode)}); "
                                       f"see {self.log_path(service)}")
                try:
                    if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                        pending.discard(service)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"services not ready after {timeout_s}s: {', '.join(sorted(pending))}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.stopping = True
        for state in self.states.values():
            state.status = "stopped"
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for service, process in self.processes.items():
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
