"""Finding the Kafka broker and PostgreSQL server for a test session.

In order of preference: KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL from the
environment; containers through testcontainers when a Docker engine answers;
the project's local launcher (deploy/local/launcher.py) otherwise.
"""

import importlib.util
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[3]
LAUNCHER_PATH = REPO_ROOT / "deploy" / "local" / "launcher.py"


@dataclass(frozen=True)
class Infrastructure:
    kafka_bootstrap_servers: str
    database_url: str  # URL of the maintenance database; tests create their own databases
    provider: str  # environment | testcontainers | launcher


def load_launcher() -> ModuleType:
    spec = importlib.util.spec_from_file_location("medgov_local_launcher", LAUNCHER_PATH)
    assert spec and spec.loader, f"launcher not found at {LAUNCHER_PATH}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launcher_runs_kafka(launcher: ModuleType, infra: Infrastructure) -> bool:
    """True when the session's broker is the one this checkout's launcher started, on whatever port it was given."""
    return launcher.kafka_pid() is not None and f"127.0.0.1:{launcher.KAFKA_PORT}" in infra.kafka_bootstrap_servers


def launcher_runs_postgres(launcher: ModuleType, infra: Infrastructure) -> bool:
    """True when the session's PostgreSQL server is the one this checkout's launcher started."""
    return launcher.postgres_pid() is not None and f":{launcher.POSTGRES_PORT}/" in infra.database_url


def _docker_answers() -> bool:
    try:
        import docker  # installed with testcontainers

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:  # no engine, no socket, no permission: all mean "use the launcher"
        return False


def _from_testcontainers(stack: list) -> Infrastructure:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = KafkaContainer("apache/kafka:4.1.1").with_kraft()
    postgres = PostgresContainer("postgres:16", driver=None)
    kafka.start()
    stack.append(kafka)
    postgres.start()
    stack.append(postgres)
    return Infrastructure(kafka.get_bootstrap_server(), postgres.get_connection_url(), "testcontainers")


def start_infrastructure(stack: list) -> Infrastructure:
    """Return the infrastructure to test against; containers started here are appended to `stack`."""
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    if kafka and database:
        return Infrastructure(kafka, database, "environment")
    if _docker_answers():
        return _from_testcontainers(stack)
    values = load_launcher().up()
    return Infrastructure(values["KAFKA_BOOTSTRAP_SERVERS"], values["DATABASE_URL"], "launcher")


def new_jwt_secret() -> str:
    return secrets.token_urlsafe(32)
