"""Starting the four services as local processes for the scenario."""

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICE_PORTS = {"review": 8101, "catalog": 8102, "consent": 8103, "grants": 8104}
CONSOLE_PORT = 8100


@dataclass
class Stack:
    """The running services of one scenario and the secrets they share."""

    root: Path
    sample_data: Path
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    pseudonym_key: str = field(default_factory=lambda: secrets.token_hex(32))
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d%H%M%S"))
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{SERVICE_PORTS[service]}"

    def service_env(self, service: str) -> dict[str, str]:
        prefix = f"MEDGOV_{service.upper()}_"
        env = {
            **os.environ,
            "REGION": "daegu",
            "JWT_SECRET": self.jwt_secret,
            f"{prefix}HTTP_PORT": str(SERVICE_PORTS[service]),
            # A fresh database per scenario run keeps runs independent of each other.
            f"{prefix}DATABASE_URL": self._database_url(f"medgov_{service}_demo_{self.run_id}"),
            f"{prefix}KAFKA_GROUP_ID": f"medgov-{service}-demo-{self.run_id}",
            f"{prefix}LOG_FORMAT": "json",
        }
        env.update(self.extra_env.get(service, {}))
        return env

    def _database_url(self, name: str) -> str:
        base = os.environ["DATABASE_URL"]
        return base.rsplit("/", 1)[0] + "/" + name

    def start(self) -> None:
        logs = self.root / "var" / "log"
        logs.mkdir(parents=True, exist_ok=True)
        for service in SERVICE_PORTS:
            log = (logs / f"{service}.log").open("ab")
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"medgov_{service}"], env=self.service_env(service),
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
            )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = set(SERVICE_PORTS)
        while pending:
            for service in sorted(pending):
                process = self.processes[service]
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited with code {process.returncode}; see var/log/{service}.log")
                try:
                    if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                        pending.discard(service)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"services not ready after {timeout_s}s: {', '.join(sorted(pending))}")
            time.sleep(0.5)

    def stop(self) -> None:
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
