"""Running the services as subprocesses and reading their CPU time and peak RSS from /proc."""

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from medgov_shared.testing.services import ServiceProcess, free_port

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """CPU seconds (user + system) of one process at a monotonic instant."""

    at: float
    cpu_s: float


def sample(pid: int) -> ProcessSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    cpu_ticks = int(fields[11]) + int(fields[12])
    return ProcessSample(time.monotonic(), cpu_ticks / _TICKS_PER_S)


def peak_rss_mb(pid: int) -> float:
    """Return VmHWM, the peak resident set size of a running process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


async def wait_ready(process: ServiceProcess, timeout_s: float) -> None:
    """Poll /readyz until it returns 200. On timeout, raise with the last response, which names the failing check."""
    deadline = time.monotonic() + timeout_s
    last_answer = "no answer"
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.process is not None and process.process.poll() is not None:
                raise RuntimeError(f"{process.module} exited with {process.process.returncode}; see {process.log_path}")
            try:
                response = await client.get(f"http://127.0.0.1:{process.port}/readyz")
            except httpx.HTTPError as error:
                last_answer = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    return
                last_answer = f"{response.status_code} {response.text}"
            await asyncio.sleep(0.3)
    raise TimeoutError(f"{process.module} not ready after {timeout_s:.0f} s; last /readyz answer: {last_answer}")


def database_url(maintenance_url: str, name: str) -> str:
    parts = urlsplit(maintenance_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def start_service(
    service: str, *, database: str, group_id: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> ServiceProcess:
    """Start `python -m medgov_<service>` with its own database and consumer group."""
    prefix = f"MEDGOV_{service.upper()}_"
    env = {
        f"{prefix}DATABASE_URL": database_url(os.environ["DATABASE_URL"], database),
        f"{prefix}KAFKA_GROUP_ID": group_id,
        f"{prefix}REGION": "daegu",
        f"{prefix}JWT_SECRET": secrets.token_urlsafe(32),
        f"{prefix}HTTP_PORT": str(free_port()),
        **(extra_env or {}),
    }
    process = ServiceProcess(f"medgov_{service}", env, port=int(env[f"{prefix}HTTP_PORT"]), log_path=log_path)
    process.start()
    return process
