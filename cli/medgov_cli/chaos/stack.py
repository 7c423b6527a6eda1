"""The four services of a chaos run as subprocesses that can be killed and restarted.

Each service gets a fresh database and consumer group per run. Before the
first start, each group's offsets are set to the current end of every topic
it subscribes to, so a run reads only records written after it began, even
on a broker whose topics hold other runs' records.
"""

import asyncio
import importlib
import re
import secrets
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from medgov_shared.messaging.topics import ensure_topics
from medgov_shared.service import consumed_topics_pattern
from medgov_shared.settings import ServiceSettings
from medgov_shared.testing.services import ServiceProcess, free_port

from medgov_cli.chaos.infrastructure import ChaosInfrastructure

log = structlog.get_logger(__name__)

SERVICES = ("review", "catalog", "consent", "grants")

READY_TIMEOUT_S = 120.0
# The liveness probe of the services' Kubernetes manifests (deploy/k8s/base/
# services/*.yaml): every 10 s, 2 s timeout, restart after 3 failures in a row.
LIVENESS_PERIOD_S = 10.0
LIVENESS_TIMEOUT_S = 2.0
LIVENESS_FAILURES_BEFORE_RESTART = 3
EXIT_CHECK_INTERVAL_S = 1.0
# A start is tried again after 1, 2, 4, 8 and then 16 s, over a minute in all,
# as Kubernetes backs off a crashing container: enough for a service started
# while the broker or the database restarts. Five tries 1 s apart were used
# up by a broker outage of 17 s.
START_ATTEMPTS = 8
START_BACKOFF_MAX_S = 16.0


@dataclass(frozen=True)
class ServiceSpec:
    """Configuration of one service in this run, and its handler table and topics from its composition root."""

    name: str
    env: Mapping[str, str]
    port: int
    database_url: str
    settings: ServiceSettings
    handled_types: frozenset[str]
    consumed_topics: tuple[str, ...]
    consumes_inbound: bool
    topic_pattern: str

    def consumes_topic(self, topic: str) -> bool:
        return re.match(self.topic_pattern, topic) is not None


def _database_url(maintenance_url: str, name: str) -> str:
    return urlunsplit(urlsplit(maintenance_url)._replace(path=f"/{name}"))


def _settings_class(name: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"medgov_{name}.settings")
    return getattr(module, f"{name.capitalize()}Settings")


def build_spec(name: str, infrastructure: ChaosInfrastructure, *, run_id: str, sample_data: Path) -> ServiceSpec:
    """Configure one service; its handler table comes from its own build_service, not from a copy here."""
    prefix = f"MEDGOV_{name.upper()}_"
    port = free_port()
    database_url = _database_url(infrastructure.database_url, f"medgov_{name}_chaos_{run_id}")
    values: dict[str, str] = {
        "region": "daegu",
        "database_url": database_url,
        "kafka_bootstrap_servers": infrastructure.kafka_bootstrap_servers,
        "kafka_group_id": f"medgov-{name}-chaos-{run_id}",
        "jwt_secret": secrets.token_urlsafe(32),
        "http_port": str(port),
        "log_format": "json",
        # Per-event INFO lines of 50,000 events cost more CPU than the
        # services' work on a small machine; warnings and errors still show.
        "log_level": "WARNING",
        "relay_poll_interval_s": "0.5",
        "drain_timeout_s": "5",
    }
    if name == "catalog":
        # The shared layout lets every hospital read the sample-data folder as its staging area.
        values.update(staging_root=str(sample_data), staging_per_institution="false")

    settings = _settings_class(name)(**values)
    service = importlib.import_module(f"medgov_{name}.main").build_service(settings)
    return ServiceSpec(
        name=name,
        env={f"{prefix}{key.upper()}": value for key, value in values.items()},
        port=port,
        database_url=settings.database_url,
        settings=settings,
        handled_types=frozenset(service.handlers),
        consumed_topics=tuple(service.consumes),
        consumes_inbound=service.consume_inbound,
        topic_pattern=consumed_topics_pattern(service.consumes, inbound=service.consume_inbound),
    )


async def pin_group_to_topic_ends(spec: ServiceSpec, bootstrap_servers: str) -> int:
    """Commit the current end offset of every partition the service subscribes to; return the partition count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        topics = [name for name in await admin.list_topics() if spec.consumes_topic(name)]
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    partitions = [
        TopicPartition(item["topic"], partition["partition"]) for item in described for partition in item["partitions"]
    ]
    if not partitions:
        return 0

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=spec.settings.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()
    return len(partitions)


@dataclass
class ServiceStack:
    """The running services; kills, restarts and a supervisor that acts like Kubernetes probes."""

    infrastructure: ChaosInfrastructure
    run_id: str
    sample_data: Path
    log_dir: Path
    specs: dict[str, ServiceSpec] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    unexpected_exits: list[str] = field(default_factory=list)
    liveness_restarts: list[str] = field(default_factory=list)
    start_failures: list[str] = field(default_factory=list)
    started: bool = False  # every service was ready once, so its database exists
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            self.specs[name] = build_spec(name, self.infrastructure, run_id=self.run_id, sample_data=self.sample_data)
            self._locks[name] = asyncio.Lock()
        await ensure_topics(self.specs["review"].settings)
        for spec in self.specs.values():
            count = await pin_group_to_topic_ends(spec, self.infrastructure.kafka_bootstrap_servers)
            log.info("consumer group pinned to topic ends", service=spec.name, partitions=count)
        for spec in self.specs.values():
            self.processes[spec.name] = ServiceProcess(
                f"medgov_{spec.name}", spec.env, port=spec.port, log_path=self.log_dir / f"{spec.name}.log"
            )
            self.processes[spec.name].start()
        await asyncio.gather(*(process.wait_ready(READY_TIMEOUT_S) for process in self.processes.values()))
        self.started = True

    def pid(self, name: str) -> int:
        process = self.processes[name].process
        assert process is not None
        return process.pid

    async def kill_and_restart(self, name: str) -> int:
        """SIGKILL the service, start it again and wait until it is ready; return the killed pid."""
        async with self._locks[name]:
            killed = self.pid(name)
            await asyncio.to_thread(self.processes[name].kill, signal.SIGKILL)
            await self._restart_locked(name)
            return killed

    async def _restart_locked(self, name: str) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.processes[name].start()
            try:
                await self.processes[name].wait_ready(READY_TIMEOUT_S)
                return
            except RuntimeError as error:
                # The process exited while starting, e.g. because PostgreSQL
                # was restarting during its migrations; Kubernetes would start it again.
                log.warning("service exited while starting; starting it again", service=name,
                            attempt=attempt, error=str(error))
                self.start_failures.append(name)
                await asyncio.sleep(min(2.0 ** (attempt - 1), START_BACKOFF_MAX_S))
        raise RuntimeError(
            f"{name} exited during start {START_ATTEMPTS} times in a row; see {self.processes[name].log_path}"
        )

    async def supervise(self) -> None:
        """Restart a service that exits by itself, or whose /healthz fails as the Kubernetes liveness probe counts."""
        async with httpx.AsyncClient() as client:
            await asyncio.gather(*(self._watch(client, name) for name in SERVICES))

    async def _watch(self, client: httpx.AsyncClient, name: str) -> None:
        failures: list[str] = []
        next_probe = time.monotonic() + LIVENESS_PERIOD_S
        while True:
            await asyncio.sleep(EXIT_CHECK_INTERVAL_S)
            if self._locks[name].locked():
                failures.clear()  # a kill or restart is under way
                continue
            async with self._locks[name]:
                process = self.processes[name].process
                assert process is not None
                if process.poll() is not None:
                    log.error("service exited without being killed; restarting it", service=name,
                              exit_code=process.returncode, log=str(self.processes[name].log_path))
                    self.unexpected_exits.append(f"{name} (exit code {process.returncode})")
                    failures.clear()
                    await self._restart_locked(name)
                    continue
                if time.monotonic() < next_probe:
                    continue
                next_probe = time.monotonic() + LIVENESS_PERIOD_S
                failure = await self._probe(client, name)
                if failure is None:
                    failures.clear()
                    continue
                failures.append(failure)
                if len(failures) >= LIVENESS_FAILURES_BEFORE_RESTART:
                    log.error("service failed its liveness probe; restarting it", service=name,
                              failures=failures, log=str(self.processes[name].log_path))
                    self.liveness_restarts.append(f"{name} ({'; '.join(failures)})")
                    failures.clear()
                    await asyncio.to_thread(self.processes[name].kill, signal.SIGKILL)
                    await self._restart_locked(name)

    async def _probe(self, client: httpx.AsyncClient, name: str) -> str | None:
        """Return None if /healthz returns 200 within the probe timeout, else the error or status."""
        try:
            response = await client.get(
                f"http://127.0.0.1:{self.specs[name].port}/healthz", timeout=LIVENESS_TIMEOUT_S
            )
        except httpx.HTTPError as error:
            return type(error).__name__
        if response.status_code != 200:
            return f"HTTP {response.status_code} {response.text[:100]}"
        return None

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Send SIGTERM to every service at once (graceful drain), then SIGKILL what still runs after `timeout_s`."""
        running = [item.process for item in self.processes.values() if item.process and item.process.poll() is None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in running:
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            if process.poll() is None:
                process.kill()
                process.wait()

    async def drop_databases(self) -> None:
        connection = await asyncpg.connect(self.infrastructure.database_url)
        try:
            for spec in self.specs.values():
                name = urlsplit(spec.database_url).path.lstrip("/")
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
