"""Running services inside a test: in-process for most tests, as a subprocess for crash tests."""

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx

from medgov_shared.service import Service


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# Tags this session's tests put in the names of the topics they create. The broker
# keeps every partition, and a full run creates about 130 topics, so the infra
# fixture deletes those topics when the session ends.
TOPIC_TAGS: list[str] = []


def topic_tag() -> str:
    """Return a fresh tag for private test topic names; every topic whose name contains it is deleted at the end of the session."""
    tag = uuid.uuid4().hex[:8]
    TOPIC_TAGS.append(tag)
    return tag


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_block(count: int) -> int:
    """Return the first of `count` consecutive ports that are free on 127.0.0.1 now."""
    for _ in range(50):
        first = random.randrange(20_000, 30_000)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports found between 20000 and 30000")


@contextlib.asynccontextmanager
async def running(service: Service) -> AsyncIterator[Service]:
    """Start a service in this event loop and stop it afterwards."""
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def http_client(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to the service's app without a socket (the service must be started)."""
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        yield client


async def wait_until(predicate, *, timeout_s: float = 30.0, interval_s: float = 0.1, message: str = "condition"):
    """Poll an async or sync predicate until it returns a truthy value; fail with `message` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {message}")
        await asyncio.sleep(interval_s)


class ServiceProcess:
    """A service (or any python -m module) in its own process, so a test can SIGKILL it."""

    def __init__(self, module: str, env: Mapping[str, str], *, port: int, log_path: Path) -> None:
        self.module = module
        self.env = {**os.environ, **env}
        self.port = port
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        async def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.module} exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                async with httpx.AsyncClient() as client:
                    response = await client.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                return response.status_code == 200
            except httpx.HTTPError:
                return False

        await wait_until(ready, timeout_s=timeout_s, interval_s=0.3, message=f"{self.module} to be ready")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
