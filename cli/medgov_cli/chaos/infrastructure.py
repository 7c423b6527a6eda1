"""The Kafka broker and PostgreSQL server a chaos run uses, and how to restart them.

Restarting a broker or database that other people's test runs use would
break those runs. So a run that restarts either gets a private pair: a
second broker and server that the local launcher starts with their own ports
and state directory (var/chaos/). A run without restarts can use the pair
named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL instead.
"""

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from medgov_shared.testing.infrastructure import REPO_ROOT, load_launcher

log = logging.getLogger(__name__)

PRIVATE_VAR_DIR = REPO_ROOT / "var" / "chaos"

# The launcher's port variables with their defaults (deploy/local/launcher.py).
_LAUNCHER_PORTS: Mapping[str, int] = {
    "MEDGOV_KAFKA_PORT": 19092,
    "MEDGOV_KAFKA_SASL_PORT": 19093,
    "MEDGOV_KAFKA_CONTROLLER_PORT": 19094,
    "MEDGOV_POSTGRES_PORT": 15432,
}
_PRIVATE_PORT_OFFSET = 10000

# The private pair's ports for the launcher's defaults: 29092-29094 and 25432.
PRIVATE_PORTS: Mapping[str, str] = {variable: str(port + _PRIVATE_PORT_OFFSET) for variable, port in _LAUNCHER_PORTS.items()}


class ChaosSetupError(Exception):
    """The private broker or database could not be started; the message names the cause and the fix."""


@dataclass
class ChaosInfrastructure:
    """Addresses of the broker and database, and the launcher that restarts them (None: not ours to restart)."""

    kafka_bootstrap_servers: str
    database_url: str
    launcher: ModuleType | None = None

    @property
    def restartable(self) -> bool:
        return self.launcher is not None

    async def restart_kafka(self) -> None:
        """Stop the broker with SIGTERM and start it again on the same data; return once it serves metadata."""
        await asyncio.to_thread(self._require_launcher().restart_kafka)

    async def restart_postgres(self) -> None:
        """Stop PostgreSQL with a fast shutdown and start it again; blocks until it accepts connections."""
        await asyncio.to_thread(self._require_launcher().restart_postgres)

    def _require_launcher(self) -> ModuleType:
        if self.launcher is None:
            raise RuntimeError(
                "this chaos run uses a broker and database it did not start, so it must not restart them; "
                "run it with a private pair (any --kafka-restarts or --postgres-restarts above 0 starts one)"
            )
        return self.launcher


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block and restore their earlier values (or absence) after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def ephemeral_port_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> tuple[int, int]:
    """Return the ports this machine hands out to outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = path.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def private_ports(
    environment: Mapping[str, str] = os.environ, ephemeral: tuple[int, int] | None = None
) -> dict[str, str]:
    """Return the private pair's ports: each port of this checkout's launcher plus 10000, or minus 10000.

    A checkout whose launcher runs on other ports (set with the same
    variables, as for a second checkout on one machine) so gets a private
    pair of its own too. A port 10000 higher that falls in the range the
    machine hands out to outgoing connections could be taken by one of
    them when the broker or database starts, so the pair then goes 10000
    lower. Raise ChaosSetupError for a value that is not a port, or when
    neither side is free of that range.
    """
    low, high = ephemeral or ephemeral_port_range()
    ports = {}
    for variable, default in _LAUNCHER_PORTS.items():
        value = environment.get(variable) or str(default)
        if not value.isdigit() or not 0 < int(value) <= 65535:
            raise ChaosSetupError(f"{variable}={value!r} is not a port from 1 to 65535")
        candidates = [int(value) + _PRIVATE_PORT_OFFSET, int(value) - _PRIVATE_PORT_OFFSET]
        usable = [port for port in candidates if 1024 <= port <= 65535 and not low <= port <= high]
        if not usable:
            raise ChaosSetupError(
                f"{variable}={value}: the chaos run starts its private pair {_PRIVATE_PORT_OFFSET} ports above or "
                f"below the launcher's, and both {candidates[0]} and {candidates[1]} are outside 1024-65535 or "
                f"inside {low}-{high}, the ports this machine gives outgoing connections. Choose a launcher port "
                f"that gives a port from 1024 to {low - 1} when {_PRIVATE_PORT_OFFSET} is added or subtracted"
            )
        ports[variable] = str(usable[0])
    return ports


def load_private_launcher(var_dir: Path = PRIVATE_VAR_DIR, ports: Mapping[str, str] | None = None) -> ModuleType:
    """Load a separate copy of the launcher module bound to the given ports and state directory.

    The launcher reads its overrides when the module is executed, so the
    variables are set only around loading; the shared launcher is unaffected.
    """
    with environment({"MEDGOV_LOCAL_VAR_DIR": str(var_dir), **(private_ports() if ports is None else ports)}):
        return load_launcher()


@contextlib.contextmanager
def private_pair(
    var_dir: Path = PRIVATE_VAR_DIR, ports: Mapping[str, str] | None = None, *, remove_state: bool = False
) -> Iterator[ChaosInfrastructure]:
    """Start the private broker and database for one run and stop both afterwards.

    `ports` None means `private_ports()`.

    A broker that is not running starts from empty storage, so records of
    earlier runs never reach this run's consumers. With `remove_state`, the
    state directory and the PostgreSQL cluster are deleted after the stop
    (for a pair made for one test session).
    """
    launcher = load_private_launcher(var_dir, ports)
    if launcher.kafka_pid() is None:
        shutil.rmtree(launcher.KAFKA_DATA_DIR, ignore_errors=True)
    try:
        values = launcher.up(with_security=False)
    except launcher.LauncherError as error:
        _stop(launcher, var_dir, remove_state=remove_state)  # PostgreSQL may have started before Kafka failed
        raise ChaosSetupError(f"could not start the private Kafka and PostgreSQL in {var_dir}: {error}") from error
    try:
        yield ChaosInfrastructure(values["KAFKA_BOOTSTRAP_SERVERS"], values["DATABASE_URL"], launcher)
    finally:
        _stop(launcher, var_dir, remove_state=remove_state)


def _stop(launcher: ModuleType, var_dir: Path, *, remove_state: bool) -> None:
    launcher.down()
    if remove_state:
        # The launcher keeps the cluster under /tmp, named after the state directory.
        shutil.rmtree(launcher._postgres_scratch_dir(), ignore_errors=True)
        shutil.rmtree(var_dir, ignore_errors=True)


def default_sample_data() -> Path:
    """Return MEDGOV_SAMPLE_DATA, or the shared data folder beside the checkout."""
    configured = os.environ.get("MEDGOV_SAMPLE_DATA")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def shared_pair_from_environment() -> ChaosInfrastructure | None:
    """Return the pair named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL (never restarted), or None if unset."""
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    if not (kafka and database):
        return None
    return ChaosInfrastructure(kafka, database, launcher=None)
