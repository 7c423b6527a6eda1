#!/usr/bin/env python3
"""Start and stop a local Apache Kafka broker and PostgreSQL server without Docker.

Usage: python3 deploy/local/launcher.py up|down|status|env [--with-security]

Kafka 4.x runs in KRaft mode as one JVM from the Maven Central jars, which are
fetched once into ${MEDGOV_CACHE:-~/.cache/medgov}. PostgreSQL runs from the
Debian server binaries with a data directory under /tmp, as the `postgres` user
when the caller is root. Process state lives under var/ in the checkout.

The module is also imported by the test harness and the chaos tools (see up(),
down(), restart_kafka(), postgres_pid() and add_scram_user()). It uses the
standard library only, so it runs before any virtualenv exists.

A second, private pair can run beside the default one when these variables
are set before the module is loaded: MEDGOV_LOCAL_VAR_DIR (state directory
instead of var/), MEDGOV_KAFKA_PORT, MEDGOV_KAFKA_SASL_PORT,
MEDGOV_KAFKA_CONTROLLER_PORT and MEDGOV_POSTGRES_PORT. Unset, the defaults
below apply.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

log = logging.getLogger("medgov.launcher")


def _port_from_env(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"invalid {name}={value!r}; expected a TCP port number from 1 to 65535")
    return int(value)


HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_VAR_DIR = ROOT / "var"
VAR_DIR = Path(os.environ["MEDGOV_LOCAL_VAR_DIR"]).resolve() if os.environ.get("MEDGOV_LOCAL_VAR_DIR") else DEFAULT_VAR_DIR
RUN_DIR = VAR_DIR / "run"
LOG_DIR = VAR_DIR / "log"
ENV_FILE = VAR_DIR / "local.env"
JWT_SECRET_FILE = VAR_DIR / "jwt-secret"
KAFKA_DIR = VAR_DIR / "kafka"
KAFKA_DATA_DIR = KAFKA_DIR / "data"
KAFKA_TLS_DIR = KAFKA_DIR / "tls"
KAFKA_PID_FILE = RUN_DIR / "kafka.pid"
POSTGRES_PID_FILE = RUN_DIR / "postgres.pid"

HOST = "127.0.0.1"
KAFKA_PORT = _port_from_env("MEDGOV_KAFKA_PORT", 19092)
KAFKA_SASL_PORT = _port_from_env("MEDGOV_KAFKA_SASL_PORT", 19093)
KAFKA_CONTROLLER_PORT = _port_from_env("MEDGOV_KAFKA_CONTROLLER_PORT", 19094)
POSTGRES_PORT = _port_from_env("MEDGOV_POSTGRES_PORT", 15432)
POSTGRES_USER = "medgov"
KAFKA_ADMIN_USER = "admin"

KAFKA_BOOTSTRAP = f"{HOST}:{KAFKA_PORT}"
KAFKA_SASL_BOOTSTRAP = f"{HOST}:{KAFKA_SASL_PORT}"
DATABASE_URL = f"postgresql://{POSTGRES_USER}@{HOST}:{POSTGRES_PORT}/postgres"

# The launcher tries these in order, so 4.2.0 is used only when 4.1.1 cannot be fetched.
KAFKA_VERSIONS = ("4.1.1", "4.2.0")

KAFKA_START_TIMEOUT_S = 60.0
POSTGRES_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
KILL_TIMEOUT_S = 10.0

INSTALL_JAVA = "install OpenJDK 17: apt-get install openjdk-17-jre-headless"
INSTALL_MAVEN = "apt-get install maven"
INSTALL_POSTGRES = "apt-get install postgresql"

# Characters on which Kafka's SCRAM credential syntax ("name=...,password=...")
# splits. A user name or password containing one would be registered wrongly,
# so such values are rejected.
_SCRAM_UNSAFE = re.compile(r"[\s,\[\]=\\'\"]")


class LauncherError(Exception):
    """A start, stop or check failed. The message names the fix."""


# ---------------------------------------------------------------------------
# Processes, ports and locking
# ---------------------------------------------------------------------------


def _process_alive(pid: int) -> bool:
    """Return True if pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the command name, which is in parentheses and
    # may itself contain spaces or parentheses.
    state = stat_line.rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _port_in_use(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _require_ports_free(ports: Sequence[int], component: str) -> None:
    busy = [port for port in ports if _port_in_use(port)]
    if busy:
        listed = ", ".join(f"{HOST}:{port}" for port in busy)
        raise LauncherError(
            f"cannot start {component}: {listed} is already in use by a process this "
            f"launcher did not start (no live pid file under {RUN_DIR}). "
            f"If another medgov checkout runs it, stop it there with `make down`, or give this checkout "
            f"its own ports, for example MEDGOV_KAFKA_PORT=29192 MEDGOV_KAFKA_SASL_PORT=29193 "
            f"MEDGOV_KAFKA_CONTROLLER_PORT=29194 MEDGOV_POSTGRES_PORT=25532 make up"
        )


def _signal_process(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _kill_group_or_process(pid: int) -> None:
    """Send SIGKILL to pid's process group if pid leads it, else to pid alone.

    Both servers run as session leaders (setsid), so the group contains the
    server and its children, such as PostgreSQL backends, and nothing else.
    """
    try:
        leads_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    with contextlib.suppress(ProcessLookupError):
        if leads_group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def _wait_for_exit(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _process_alive(pid):
            return True
        time.sleep(0.2)
    return not _process_alive(pid)


def _stop_process(name: str, pid: int, stop_signal: int) -> None:
    """Stop pid with stop_signal, then SIGKILL after STOP_TIMEOUT_S.

    SIGCONT goes first because chaos tests may have frozen the process with
    SIGSTOP, and a stopped process never handles the stop signal.
    """
    _signal_process(pid, signal.SIGCONT)
    _signal_process(pid, stop_signal)
    if _wait_for_exit(pid, STOP_TIMEOUT_S):
        log.info("%s: stopped (pid %d, %s)", name, pid, signal.Signals(stop_signal).name)
        return

    log.warning(
        "%s: pid %d still runs %.0f s after %s; sending SIGKILL",
        name, pid, STOP_TIMEOUT_S, signal.Signals(stop_signal).name,
    )
    _kill_group_or_process(pid)
    if not _wait_for_exit(pid, KILL_TIMEOUT_S):
        raise LauncherError(f"{name}: pid {pid} still runs after SIGKILL; check it with ps")
    log.info("%s: killed (pid %d)", name, pid)


@contextlib.contextmanager
def _launcher_lock() -> Iterator[None]:
    """Hold an exclusive lock so parallel callers (pytest-xdist workers, a
    developer's `make up`) never start a second broker on the same data."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUN_DIR / "launcher.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _write_private(path: Path, text: str) -> None:
    """Write text to path with mode 0600, because the files hold passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} is not readable)"


# ---------------------------------------------------------------------------
# Pre-flight checks
# ---------------------------------------------------------------------------


def _java_path() -> str:
    java = shutil.which("java")
    if java is None:
        raise LauncherError(f"java not found on PATH; {INSTALL_JAVA}")
    return java


def _check_java_version(java: str) -> None:
    result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    if match is None:
        raise LauncherError(f"could not read the Java version from `{java} -version`: {result.stderr.strip()}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < 17:
        raise LauncherError(f"Kafka 4.x needs Java 17 or newer, but {java} is Java {major}; {INSTALL_JAVA}")


def _postgres_bin_dir() -> Path:
    """Return the bin directory of the newest installed PostgreSQL server."""
    candidates = []
    for bin_dir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bin_dir.parent.name
        needed = ("initdb", "pg_ctl", "postgres", "pg_isready")
        if version.isdigit() and all((bin_dir / name).is_file() for name in needed):
            candidates.append((int(version), bin_dir))
    if not candidates:
        raise LauncherError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_isready) not found "
            f"under /usr/lib/postgresql/<version>/bin; {INSTALL_POSTGRES}"
        )
    return max(candidates)[1]


def _preflight(need_kafka: bool, need_postgres: bool) -> None:
    """Raise one LauncherError that lists every missing tool, before anything starts."""
    problems = []
    if need_kafka:
        try:
            _check_java_version(_java_path())
        except LauncherError as error:
            problems.append(str(error))
        if shutil.which("setsid") is None:
            problems.append("setsid not found on PATH (needed to detach the broker); apt-get install util-linux")
        if _cached_kafka_libs() is None and shutil.which("mvn") is None:
            problems.append(f"mvn not found on PATH (needed once to fetch the Kafka jars); {INSTALL_MAVEN}")
    if need_postgres:
        try:
            _postgres_bin_dir()
        except LauncherError as error:
            problems.append(str(error))
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                problems.append("runuser not found on PATH (needed to run PostgreSQL as the postgres user); apt-get install util-linux")
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                problems.append(f"user `postgres` does not exist (PostgreSQL refuses to run as root); {INSTALL_POSTGRES}")
    if problems:
        raise LauncherError("pre-flight check failed:\n  - " + "\n  - ".join(problems))


# ---------------------------------------------------------------------------
# Kafka jars and command-line tools
# ---------------------------------------------------------------------------


def _cache_dir() -> Path:
    configured = os.environ.get("MEDGOV_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "medgov"


def _cached_kafka_libs() -> Path | None:
    for version in KAFKA_VERSIONS:
        libs = _cache_dir() / f"kafka-{version}" / "libs"
        if (libs / ".complete").is_file():
            return libs
    return None


def cached_kafka_version() -> str | None:
    """Return the Kafka version whose jars the launcher starts the broker from, or None before they are fetched."""
    libs = _cached_kafka_libs()
    return libs.parent.name.removeprefix("kafka-") if libs is not None else None


def kafka_libs() -> Path:
    """Return the directory of Kafka jars, fetching them with mvn on first use.

    The `.complete` marker is written last, so an interrupted fetch is redone
    instead of leaving a half-filled classpath.
    """
    cached = _cached_kafka_libs()
    if cached is not None:
        return cached

    mvn = shutil.which("mvn")
    if mvn is None:
        raise LauncherError(f"mvn not found on PATH (needed once to fetch the Kafka jars); {INSTALL_MAVEN}")

    failures = []
    for version in KAFKA_VERSIONS:
        target = _cache_dir() / f"kafka-{version}"
        libs = target / "libs"
        partial = target / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        log.info("Kafka: fetching kafka_2.13 %s and its dependencies with mvn into %s (once)", version, libs)
        command = [
            # -U retries artifacts that an earlier failed run marked as
            # missing in the local repository.
            mvn, "-B", "-q", "-U", "-Dstyle.color=never",
            "-f", str(HERE / "kafka-pom.xml"),
            f"-Dkafka.version={version}",
            f"-Dlibs.dir={partial}",
            f"-Dmaven.repo.local={_cache_dir() / 'm2-repository'}",
            "dependency:copy-dependencies",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        broker_jar = partial / f"kafka_2.13-{version}.jar"
        if result.returncode == 0 and broker_jar.is_file():
            shutil.rmtree(libs, ignore_errors=True)
            partial.rename(libs)
            (libs / ".complete").write_text(f"org.apache.kafka:kafka_2.13:{version}\n")
            return libs
        shutil.rmtree(partial, ignore_errors=True)
        # Maven's first lines name the artifact that failed; the rest is
        # generic help. Debian's mvn colours its output even with -B.
        plain_output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        output = "\n".join(plain_output.strip().splitlines()[:3])
        failures.append(f"kafka_2.13 {version}: mvn exited with {result.returncode}\n{output}")
        log.warning("Kafka: fetching %s failed (mvn exit code %d)", version, result.returncode)

    raise LauncherError(
        "could not fetch the Kafka jars from Maven Central with mvn:\n" + "\n\n".join(failures)
    )


def _tool_command(main_class: str, args: Sequence[str]) -> list[str]:
    # Client tools live a few seconds, so C1-only JIT and the serial GC start
    # them faster and lighter than the broker's settings would.
    return [
        _java_path(),
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2-tools.xml'}",
        "-cp", f"{kafka_libs()}/*",
        main_class,
        *args,
    ]


def run_kafka_tool(main_class: str, args: Sequence[str], timeout_s: float = 120.0) -> str:
    """Run a Kafka command-line class on the broker's classpath and return its stdout.

    For example run_kafka_tool("org.apache.kafka.tools.AclCommand",
    ["--bootstrap-server", KAFKA_BOOTSTRAP, "--list"]). Raises LauncherError
    with the tool's output when it exits non-zero.
    """
    command = _tool_command(main_class, args)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise LauncherError(f"{main_class} timed out after {timeout_s:.0f} s") from error
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise LauncherError(f"{main_class} exited with {result.returncode}:\n{output}")
    return result.stdout


def _validate_scram_value(kind: str, value: str) -> None:
    if not value or _SCRAM_UNSAFE.search(value):
        raise ValueError(
            f"invalid SCRAM {kind}: it must be non-empty and contain no whitespace, "
            "quotes, backslash or any of , [ ] ="
        )


def add_scram_user(name: str, password: str) -> None:
    """Create or update a SCRAM-SHA-512 user on the running broker.

    Runs kafka.admin.ConfigCommand against the PLAINTEXT listener, whose
    ANONYMOUS principal is a super user. The password goes through a
    temporary 0600 file, so it never appears in the process list.
    """
    _validate_scram_value("user name", name)
    _validate_scram_value("password", password)
    with tempfile.TemporaryDirectory(prefix="medgov-scram-") as temp_dir:
        config_file = Path(temp_dir) / "scram.properties"
        # In a config file ConfigCommand takes the credential without the
        # brackets that --add-config needs (checked against Kafka 4.1.1).
        _write_private(config_file, f"SCRAM-SHA-512=password={password}\n")
        run_kafka_tool(
            "kafka.admin.ConfigCommand",
            [
                "--bootstrap-server", KAFKA_BOOTSTRAP,
                "--alter",
                "--add-config-file", str(config_file),
                "--entity-type", "users",
                "--entity-name", name,
            ],
        )


# ---------------------------------------------------------------------------
# Kafka broker
# ---------------------------------------------------------------------------


def _security_from_env() -> bool:
    value = os.environ.get("MEDGOV_KAFKA_SECURITY", "").strip().lower()
    if value in ("", "none", "off"):
        return False
    if value == "scram":
        return True
    raise LauncherError(f"invalid MEDGOV_KAFKA_SECURITY={value!r}; expected `scram` or empty")


def _last_security_mode() -> bool:
    """Return whether the broker last started with the SCRAM listener."""
    try:
        return (KAFKA_DIR / "security-mode").read_text().strip() == "scram"
    except OSError:
        return False


def kafka_pid() -> int | None:
    """Return the pid of the broker this launcher started, or None if it is not running.

    A pid is accepted only if its command line is kafka.Kafka started for
    this checkout, so a recycled pid is never mistaken for the broker.
    """
    pid = _read_pid(KAFKA_PID_FILE)
    if pid is None or not _process_alive(pid):
        return None
    command = _cmdline(pid)
    # The configuration file path distinguishes two brokers of one checkout
    # that use different state directories (MEDGOV_LOCAL_VAR_DIR).
    if (
        "kafka.Kafka" in command
        and f"-Dmedgov.launcher.root={ROOT}" in command
        and str(KAFKA_DIR / "server.properties") in command
    ):
        return pid
    return None


def _kafka_metadata_ready(port: int, timeout_s: float = 2.0) -> bool:
    """Send a Kafka Metadata v4 request for no topics and return True if a broker is listed.

    Metadata v4 is the oldest version that Kafka 4.x still accepts. A broker
    lists itself only once it is registered and unfenced, which a bare TCP
    connect cannot tell.
    """
    client_id = b"medgov-launcher"
    correlation_id = 7
    header = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body = struct.pack(">i?", 0, False)  # empty topic array, no auto-creation
    request = header + body
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s) as connection:
            connection.sendall(struct.pack(">i", len(request)) + request)
            size = struct.unpack(">i", _receive_exactly(connection, 4))[0]
            response = _receive_exactly(connection, size)
    except (OSError, struct.error, ConnectionError):
        return False
    if len(response) < 12:
        return False
    response_correlation_id, _throttle_ms, broker_count = struct.unpack_from(">iii", response)
    return response_correlation_id == correlation_id and broker_count > 0


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = connection.recv(min(remaining, 65536))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _new_cluster_id() -> str:
    # Same text form as Kafka's Uuid.randomUuid(): URL-safe base64 of 16
    # random bytes without padding, never starting with "-" because the
    # storage tool would read such an id as an option.
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _kafka_cluster_id() -> str | None:
    try:
        text = (KAFKA_DATA_DIR / "meta.properties").read_text()
    except OSError:
        return None
    match = re.search(r"^cluster\.id=(\S+)", text, re.MULTILINE)
    return match.group(1) if match else None


def _admin_password() -> str:
    """Return the SCRAM password of the `admin` user and store it in var/kafka.

    MEDGOV_KAFKA_ADMIN_PASSWORD wins. Otherwise the stored password is reused,
    so var/local.env stays valid across restarts, or a random one is made.
    """
    password_file = KAFKA_DIR / "admin-password"
    password = os.environ.get("MEDGOV_KAFKA_ADMIN_PASSWORD", "")
    if not password:
        with contextlib.suppress(OSError):
            password = password_file.read_text().strip()
    if not password:
        password = secrets.token_urlsafe(24)
    _validate_scram_value("password in MEDGOV_KAFKA_ADMIN_PASSWORD", password)
    _write_private(password_file, password + "\n")
    return password


def _admin_marker(cluster_id: str, password: str) -> str:
    # Records which password is registered in which storage, so a later start
    # with another password, or on storage formatted without SCRAM, can
    # register it through ConfigCommand.
    return f"{cluster_id} {hashlib.sha256(password.encode()).hexdigest()}\n"


def _ensure_tls_keystore() -> tuple[Path, str, Path]:
    """Return (PKCS12 keystore, its password, PEM certificate for clients).

    The self-signed certificate names 127.0.0.1 and localhost, so clients
    that trust the PEM file can verify the host name. It is made once with
    keytool and reused.
    """
    keystore = KAFKA_TLS_DIR / "broker.p12"
    password_file = KAFKA_TLS_DIR / "keystore-password"
    certificate = KAFKA_TLS_DIR / "ca.pem"
    if keystore.is_file() and password_file.is_file() and certificate.is_file():
        return keystore, password_file.read_text().strip(), certificate

    keytool = shutil.which("keytool") or str(Path(_java_path()).resolve().parent / "keytool")
    if not Path(keytool).is_file():
        raise LauncherError(f"keytool not found (needed for the SASL_SSL listener); {INSTALL_JAVA}")

    shutil.rmtree(KAFKA_TLS_DIR, ignore_errors=True)
    KAFKA_TLS_DIR.mkdir(parents=True, mode=0o700)
    password = secrets.token_urlsafe(24)
    # keytool reads the password from this variable, so it stays out of ps.
    environment = {**os.environ, "MEDGOV_KEYSTORE_PASSWORD": password}
    store_options = ["-keystore", str(keystore), "-storetype", "PKCS12", "-storepass:env", "MEDGOV_KEYSTORE_PASSWORD"]
    commands = [
        [
            keytool, "-genkeypair", "-noprompt", "-alias", "broker",
            "-keyalg", "RSA", "-keysize", "2048", "-validity", "3650",
            "-dname", "CN=localhost, O=medgov local",
            "-ext", f"SAN=IP:{HOST},DNS:localhost",
            *store_options,
        ],
        [keytool, "-exportcert", "-rfc", "-alias", "broker", "-file", str(certificate), *store_options],
    ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
        if result.returncode != 0:
            raise LauncherError(f"keytool failed creating {keystore}:\n{(result.stdout + result.stderr).strip()}")
    _write_private(password_file, password + "\n")
    return keystore, password, certificate


def _server_properties(with_security: bool) -> str:
    listeners = [f"PLAINTEXT://{HOST}:{KAFKA_PORT}", f"CONTROLLER://{HOST}:{KAFKA_CONTROLLER_PORT}"]
    advertised = [f"PLAINTEXT://{HOST}:{KAFKA_PORT}"]
    if with_security:
        listeners.append(f"SASL_SSL://{HOST}:{KAFKA_SASL_PORT}")
        advertised.append(f"SASL_SSL://{HOST}:{KAFKA_SASL_PORT}")

    lines = [
        "# Written by deploy/local/launcher.py at every start; edits here are overwritten.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={HOST}:{KAFKA_CONTROLLER_PORT}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"listeners={','.join(listeners)}",
        f"advertised.listeners={','.join(advertised)}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        f"log.dirs={KAFKA_DATA_DIR}",
        "num.partitions=3",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
    ]
    if with_security:
        keystore, keystore_password, _certificate = _ensure_tls_keystore()
        lines += [
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"listener.name.sasl_ssl.ssl.keystore.location={keystore}",
            "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
            f"listener.name.sasl_ssl.ssl.keystore.password={keystore_password}",
            f"listener.name.sasl_ssl.ssl.key.password={keystore_password}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
            # Clients on the PLAINTEXT and CONTROLLER listeners authenticate as
            # ANONYMOUS, so making it a super user keeps the development
            # listener open while SASL_SSL enforces ACLs.
            f"super.users=User:ANONYMOUS;User:{KAFKA_ADMIN_USER}",
        ]
    return "\n".join(lines) + "\n"


def _format_kafka_storage(config_file: Path, admin_password: str | None) -> None:
    cluster_id = _new_cluster_id()
    args = ["format", "--config", str(config_file), "--cluster-id", cluster_id, "--standalone"]
    if admin_password is not None:
        # NOTE: the storage tool accepts SCRAM credentials only as an argument,
        # so the admin password shows in the process list for the few seconds
        # that the format takes.
        args += ["--add-scram", f"SCRAM-SHA-512=[name={KAFKA_ADMIN_USER},password={admin_password}]"]
    log.info("Kafka: formatting new storage in %s (cluster id %s)", KAFKA_DATA_DIR, cluster_id)
    run_kafka_tool("kafka.tools.StorageTool", args)
    if admin_password is not None:
        _write_private(KAFKA_DIR / "admin-registered", _admin_marker(cluster_id, admin_password))


def _spawn_broker(config_file: Path) -> int:
    """Start kafka.Kafka detached from the caller and return its pid.

    `setsid -f` forks the broker into its own session, so it outlives the
    caller (a pytest run, a make target) and is never the caller's zombie.
    The shell writes its pid before exec, and exec keeps the pid.
    """
    libs = kafka_libs()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    KAFKA_PID_FILE.unlink(missing_ok=True)
    java_command = [
        _java_path(),
        # A small starting heap, because the development machines and CI share
        # 2 cores with PostgreSQL and the services under test. The maximum is
        # 1 GiB: a broker kept across many test runs held about 5,000
        # partitions of test topics and exited on OutOfMemoryError at 512 MiB.
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={LOG_DIR}",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2-broker.xml'}",
        f"-Dmedgov.launcher.root={ROOT}",
        "-cp", f"{libs}/*",
        "kafka.Kafka", str(config_file),
    ]
    wrapper = 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0" && exec "$@"'
    with open(LOG_DIR / "kafka.out", "ab") as console_log:
        subprocess.run(
            ["setsid", "-f", "sh", "-c", wrapper, str(KAFKA_PID_FILE), *java_command],
            stdin=subprocess.DEVNULL, stdout=console_log, stderr=subprocess.STDOUT,
            cwd=ROOT, check=True,
        )

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = _read_pid(KAFKA_PID_FILE)
        if pid is not None:
            return pid
        time.sleep(0.05)
    raise LauncherError(f"Kafka: the broker process did not start; see {LOG_DIR / 'kafka.out'}")


def _wait_for_kafka(pid: int) -> None:
    deadline = time.monotonic() + KAFKA_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _kafka_metadata_ready(KAFKA_PORT):
            return
        if not _process_alive(pid):
            raise LauncherError(
                f"Kafka: the broker (pid {pid}) exited during startup. Last lines of "
                f"{LOG_DIR / 'kafka.log'}:\n{_tail(LOG_DIR / 'kafka.log')}\n"
                f"Last lines of {LOG_DIR / 'kafka.out'}:\n{_tail(LOG_DIR / 'kafka.out')}"
            )
        time.sleep(0.5)
    raise LauncherError(
        f"Kafka: the broker (pid {pid}) did not respond to a metadata request on {KAFKA_BOOTSTRAP} "
        f"within {KAFKA_START_TIMEOUT_S:.0f} s. It is still running (frozen by SIGSTOP?); "
        f"see {LOG_DIR / 'kafka.log'}, or run down and up again."
    )


def _register_admin_if_needed(password: str) -> None:
    cluster_id = _kafka_cluster_id()
    if cluster_id is None:
        raise LauncherError(f"Kafka: {KAFKA_DATA_DIR / 'meta.properties'} is missing or has no cluster.id")
    marker_file = KAFKA_DIR / "admin-registered"
    expected = _admin_marker(cluster_id, password)
    with contextlib.suppress(OSError):
        if marker_file.read_text() == expected:
            return
    log.info("Kafka: registering SCRAM-SHA-512 user %s", KAFKA_ADMIN_USER)
    add_scram_user(KAFKA_ADMIN_USER, password)
    _write_private(marker_file, expected)


def _start_kafka_locked(with_security: bool) -> None:
    pid = kafka_pid()
    if pid is not None:
        running_secure = _last_security_mode()
        if with_security and not running_secure:
            # The secured broker only adds a listener, so a restart keeps
            # every client of the PLAINTEXT listener working.
            log.info("Kafka: running without the SCRAM listener; restarting it with security on")
            _stop_kafka_locked()
        else:
            _wait_for_kafka(pid)
            log.info("Kafka: already running (pid %d)", pid)
            if running_secure:
                # Also covers a registration that failed on an earlier start.
                _register_admin_if_needed(_admin_password())
            return

    ports = [KAFKA_PORT, KAFKA_CONTROLLER_PORT] + ([KAFKA_SASL_PORT] if with_security else [])
    _require_ports_free(ports, "Kafka")
    _check_java_version(_java_path())
    kafka_libs()

    KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    config_file = KAFKA_DIR / "server.properties"
    _write_private(config_file, _server_properties(with_security))

    admin_password = _admin_password() if with_security else None
    if not (KAFKA_DATA_DIR / "meta.properties").is_file():
        _format_kafka_storage(config_file, admin_password)

    (KAFKA_DIR / "security-mode").write_text("scram\n" if with_security else "none\n")
    pid = _spawn_broker(config_file)
    log.info("Kafka: started broker (pid %d), waiting up to %.0f s for it to respond", pid, KAFKA_START_TIMEOUT_S)
    _wait_for_kafka(pid)
    if admin_password is not None:
        _register_admin_if_needed(admin_password)


def _stop_kafka_locked() -> bool:
    pid = kafka_pid()
    if pid is None:
        KAFKA_PID_FILE.unlink(missing_ok=True)
        return False
    # SIGTERM makes the broker shut down cleanly, so the next start skips
    # log recovery.
    _stop_process("Kafka", pid, signal.SIGTERM)
    KAFKA_PID_FILE.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------


def _postgres_owner() -> pwd.struct_passwd:
    """Return the account that owns and runs PostgreSQL: `postgres` for root, else the caller."""
    if os.geteuid() == 0:
        return pwd.getpwnam("postgres")
    return pwd.getpwuid(os.geteuid())


def _postgres_scratch_dir() -> Path:
    """Return the PostgreSQL scratch directory (data, socket, fallback log).

    It sits under /tmp rather than var/ because the checkout may be under a
    directory that the postgres user cannot traverse. MEDGOV_PG_DIR overrides
    it for the default state directory only: a private pair (MEDGOV_LOCAL_VAR_DIR,
    as the chaos run and the benchmark start) must never share, and on removal
    delete, the cluster of the checkout's own pair. The short hash keeps two
    checkouts, or two state directories, apart.
    """
    configured = os.environ.get("MEDGOV_PG_DIR")
    if configured and VAR_DIR == DEFAULT_VAR_DIR:
        return Path(configured)
    # A private state directory gets its own cluster; the default keeps the
    # name it always had, so an existing cluster is found again.
    owner = ROOT if VAR_DIR == DEFAULT_VAR_DIR else VAR_DIR
    digest = hashlib.sha256(f"{owner}:{_postgres_owner().pw_uid}".encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"medgov-pg-{digest}"


def _postgres_data_dir() -> Path:
    return _postgres_scratch_dir() / "data"


def _as_postgres_owner(command: Sequence[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return list(command)


def _run_as_postgres_owner(command: Sequence[str], timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    # The working directory must be one that the postgres user can enter,
    # otherwise initdb and pg_ctl fail on startup.
    return subprocess.run(
        _as_postgres_owner(command), capture_output=True, text=True,
        cwd=_postgres_scratch_dir(), timeout=timeout_s, check=False,
    )


def _prepare_scratch_dir() -> Path:
    scratch = _postgres_scratch_dir()
    owner = _postgres_owner()
    if not scratch.exists():
        scratch.mkdir(mode=0o700, parents=True)
        if os.geteuid() == 0:
            os.chown(scratch, owner.pw_uid, owner.pw_gid)
    info = scratch.lstat()
    # /tmp is shared, so reject a directory that someone else prepared.
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner.pw_uid:
        raise LauncherError(
            f"PostgreSQL: {scratch} exists but is not a directory owned by {owner.pw_name}; "
            f"remove it or set MEDGOV_PG_DIR to another path"
        )
    os.chmod(scratch, 0o700)
    return scratch


def _postgres_log_file() -> Path:
    """Return var/log/postgres.log if the postgres owner can append to it, else a file in the scratch dir."""
    preferred = LOG_DIR / "postgres.log"
    owner = _postgres_owner()
    try:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        preferred.touch(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(preferred, owner.pw_uid, owner.pw_gid)
    except OSError:
        pass
    probe = _run_as_postgres_owner(["sh", "-c", ': >> "$0"', str(preferred)])
    if probe.returncode == 0:
        return preferred
    fallback = _postgres_scratch_dir() / "postgres.log"
    log.info("PostgreSQL: %s is not writable by %s; logging to %s", preferred, owner.pw_name, fallback)
    return fallback


def postgres_pid() -> int | None:
    """Return the postmaster pid of the server this launcher started, or None.

    Chaos tests send SIGSTOP and SIGCONT to this pid to freeze the database.
    """
    pid = _read_pid(POSTGRES_PID_FILE)
    if pid is None or not _process_alive(pid):
        return None
    if str(_postgres_data_dir()) in _cmdline(pid):
        return pid
    return None


def _postgres_ready(bin_dir: Path) -> bool:
    command = [str(bin_dir / "pg_isready"), "-q", "-h", HOST, "-p", str(POSTGRES_PORT), "-U", POSTGRES_USER, "-d", "postgres"]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def _wait_for_postgres(bin_dir: Path, pid: int) -> None:
    deadline = time.monotonic() + POSTGRES_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _postgres_ready(bin_dir):
            return
        if not _process_alive(pid):
            raise LauncherError(f"PostgreSQL: the server (pid {pid}) exited; see its log")
        time.sleep(0.3)
    raise LauncherError(
        f"PostgreSQL: the server (pid {pid}) did not accept connections on {HOST}:{POSTGRES_PORT} "
        f"within {POSTGRES_START_TIMEOUT_S:.0f} s (frozen by SIGSTOP?)"
    )


def _initdb(bin_dir: Path, data_dir: Path) -> None:
    log.info("PostgreSQL: creating a new cluster in %s", data_dir)
    result = _run_as_postgres_owner([
        str(bin_dir / "initdb"),
        "-D", str(data_dir),
        "-U", POSTGRES_USER,
        "-E", "UTF8",
        "--locale=C",
        # Trust is acceptable only because the server listens on 127.0.0.1
        # and on a Unix socket in a 0700 directory.
        "--auth=trust",
    ])
    if result.returncode != 0:
        raise LauncherError(f"PostgreSQL: initdb failed:\n{(result.stdout + result.stderr).strip()}")


def _start_postgres_locked() -> None:
    bin_dir = _postgres_bin_dir()
    pid = postgres_pid()
    if pid is not None:
        _wait_for_postgres(bin_dir, pid)
        log.info("PostgreSQL: already running (pid %d)", pid)
        return

    _require_ports_free([POSTGRES_PORT], "PostgreSQL")
    scratch = _prepare_scratch_dir()
    data_dir = _postgres_data_dir()
    version_file = data_dir / "PG_VERSION"
    if not version_file.is_file():
        _initdb(bin_dir, data_dir)
    else:
        data_version = version_file.read_text().strip()
        if data_version != bin_dir.parent.name:
            raise LauncherError(
                f"PostgreSQL: {data_dir} was created by PostgreSQL {data_version}, but the newest "
                f"installed server is {bin_dir.parent.name}; remove {scratch} to start empty"
            )

    log_file = _postgres_log_file()
    server_options = " ".join([
        "-c", f"listen_addresses={HOST}",
        "-c", f"port={POSTGRES_PORT}",
        "-c", shlex.quote(f"unix_socket_directories={scratch}"),
        "-c", "max_connections=300",
        # The services' working sets stay in memory, where an index probe costs
        # about what a sequential page read does; see ADR 0039.
        "-c", "random_page_cost=1.1",
    ])
    result = _run_as_postgres_owner([
        str(bin_dir / "pg_ctl"),
        "-D", str(data_dir),
        "-l", str(log_file),
        "-o", server_options,
        "-w", "-t", str(int(POSTGRES_START_TIMEOUT_S)),
        "start",
    ], timeout_s=POSTGRES_START_TIMEOUT_S + 30)
    if result.returncode != 0:
        raise LauncherError(
            f"PostgreSQL: pg_ctl start failed:\n{(result.stdout + result.stderr).strip()}\n"
            f"Last lines of {log_file}:\n{_tail(log_file)}"
        )

    # pg_ctl does not print the pid, but the first line of postmaster.pid contains it.
    pid = _read_pid(data_dir / "postmaster.pid")
    if pid is None:
        raise LauncherError(f"PostgreSQL: started, but {data_dir / 'postmaster.pid'} has no pid")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    POSTGRES_PID_FILE.write_text(f"{pid}\n")
    _wait_for_postgres(bin_dir, pid)
    log.info("PostgreSQL: started (pid %d), log %s", pid, log_file)


def _stop_postgres_locked() -> bool:
    pid = postgres_pid()
    if pid is None:
        POSTGRES_PID_FILE.unlink(missing_ok=True)
        return False
    # SIGINT is PostgreSQL's "fast" shutdown: it disconnects clients and
    # writes a checkpoint. SIGTERM ("smart") would wait for every client,
    # such as a leftover test connection pool, to disconnect on its own.
    _stop_process("PostgreSQL", pid, signal.SIGINT)
    POSTGRES_PID_FILE.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------
# Environment file and public API
# ---------------------------------------------------------------------------


def _jwt_secret() -> str:
    """Return the development key for HS256 bearer tokens, made once and kept in var/jwt-secret.

    The services verify tokens with it and `medgov token` signs with it, so
    both read it from var/local.env. Keeping it across `up` calls keeps
    issued tokens valid.
    """
    secret = ""
    with contextlib.suppress(OSError):
        secret = JWT_SECRET_FILE.read_text().strip()
    if not secret:
        secret = secrets.token_urlsafe(32)
        _write_private(JWT_SECRET_FILE, secret + "\n")
    return secret


def _environment_values() -> dict[str, str]:
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA_BOOTSTRAP,
        "DATABASE_URL": DATABASE_URL,
        "JWT_SECRET": _jwt_secret(),
    }
    if kafka_pid() is not None and _last_security_mode():
        values.update({
            "KAFKA_SASL_BOOTSTRAP_SERVERS": KAFKA_SASL_BOOTSTRAP,
            "KAFKA_SASL_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SSL_CAFILE": str(KAFKA_TLS_DIR / "ca.pem"),
            "KAFKA_ADMIN_USERNAME": KAFKA_ADMIN_USER,
            "KAFKA_ADMIN_PASSWORD": (KAFKA_DIR / "admin-password").read_text().strip(),
        })
    return values


def _write_environment_file() -> dict[str, str]:
    values = _environment_values()
    text = "".join(f"{key}={value}\n" for key, value in values.items())
    _write_private(ENV_FILE, text)
    return values


def up(with_security: bool = False) -> dict[str, str]:
    """Start PostgreSQL and Kafka unless they run already, and return the values of var/local.env.

    with_security adds the SASL_SSL listener with SCRAM-SHA-512 and ACLs, as
    does MEDGOV_KAFKA_SECURITY=scram. A broker already running without it is
    restarted with it. A broker that last ran secured comes back secured,
    running or not, because its PLAINTEXT listener serves plain clients
    unchanged: a bare `up` after `make up` and `make down` keeps the SCRAM
    listener and the ACL tests working.
    """
    with_security = with_security or _security_from_env()
    with _launcher_lock():
        _preflight(need_kafka=True, need_postgres=True)
        _start_postgres_locked()
        _start_kafka_locked(with_security or _last_security_mode())
        values = _write_environment_file()

    log.info("PostgreSQL: %s (socket directory %s)", DATABASE_URL, _postgres_scratch_dir())
    log.info("Kafka: PLAINTEXT %s, controller %s:%d", KAFKA_BOOTSTRAP, HOST, KAFKA_CONTROLLER_PORT)
    if "KAFKA_SASL_BOOTSTRAP_SERVERS" in values:
        log.info(
            "Kafka: SASL_SSL with SCRAM-SHA-512 and ACLs on %s (user %s, CA certificate %s)",
            KAFKA_SASL_BOOTSTRAP, KAFKA_ADMIN_USER, values["KAFKA_SSL_CAFILE"],
        )
    log.info("Environment written to %s", ENV_FILE)
    return values


def down() -> None:
    """Stop the Kafka broker and PostgreSQL server that this launcher started, if they run."""
    with _launcher_lock():
        if not _stop_kafka_locked():
            log.info("Kafka: not running")
        if not _stop_postgres_locked():
            log.info("PostgreSQL: not running")


def start_kafka(with_security: bool | None = None) -> None:
    """Start the broker. with_security=None keeps the security mode of its last start."""
    if with_security is None:
        with_security = _last_security_mode()
    with _launcher_lock():
        _preflight(need_kafka=True, need_postgres=False)
        _start_kafka_locked(with_security)
        _write_environment_file()


def stop_kafka() -> None:
    """Stop the broker and leave PostgreSQL running."""
    with _launcher_lock():
        if not _stop_kafka_locked():
            log.info("Kafka: not running")


def restart_kafka() -> None:
    """Stop and start the broker in the security mode of its last start, keeping its data."""
    with_security = _last_security_mode()
    with _launcher_lock():
        _stop_kafka_locked()
        _start_kafka_locked(with_security)
        _write_environment_file()


def restart_postgres() -> None:
    """Stop and start PostgreSQL, keeping its data."""
    with _launcher_lock():
        _preflight(need_kafka=False, need_postgres=True)
        _stop_postgres_locked()
        _start_postgres_locked()


def status() -> dict[str, dict[str, str]]:
    """Return what runs: one entry per server with its pid, addresses and whether it responds."""
    result: dict[str, dict[str, str]] = {}

    pid = kafka_pid()
    kafka: dict[str, str] = {"running": "yes" if pid else "no"}
    if pid is not None:
        kafka["pid"] = str(pid)
        kafka["responds"] = "yes" if _kafka_metadata_ready(KAFKA_PORT) else "no"
        kafka["PLAINTEXT"] = KAFKA_BOOTSTRAP
        kafka["CONTROLLER"] = f"{HOST}:{KAFKA_CONTROLLER_PORT}"
        if _last_security_mode():
            kafka["SASL_SSL"] = KAFKA_SASL_BOOTSTRAP
    kafka["data"] = str(KAFKA_DATA_DIR)
    kafka["log"] = str(LOG_DIR / "kafka.log")
    result["Kafka"] = kafka

    pid = postgres_pid()
    postgres: dict[str, str] = {"running": "yes" if pid else "no"}
    if pid is not None:
        postgres["pid"] = str(pid)
        try:
            responds = _postgres_ready(_postgres_bin_dir())
        except LauncherError:
            responds = False
        postgres["responds"] = "yes" if responds else "no"
        postgres["url"] = DATABASE_URL
    postgres["data"] = str(_postgres_data_dir())
    result["PostgreSQL"] = postgres
    return result


def clean() -> None:
    """Stop both servers and delete PostgreSQL's scratch directory, which lives outside var/."""
    down()
    scratch = _postgres_scratch_dir()
    if scratch.exists():
        shutil.rmtree(scratch)
        log.info("PostgreSQL: removed %s", scratch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start and stop the local Kafka broker and PostgreSQL server of medgov.",
    )
    parser.add_argument("command", choices=["up", "down", "status", "env", "clean"])
    parser.add_argument(
        "--with-security", action="store_true",
        help="also open a SASL_SSL listener with SCRAM-SHA-512 and ACLs on port "
             f"{KAFKA_SASL_PORT} (same as MEDGOV_KAFKA_SECURITY=scram)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    try:
        if args.command == "up":
            up(with_security=args.with_security)
        elif args.command == "down":
            down()
        elif args.command == "clean":
            clean()
        elif args.command == "status":
            report = status()
            for name, fields in report.items():
                print(f"{name}:")
                for key, value in fields.items():
                    print(f"  {key}: {value}")
            # 3 is the LSB status code for "not running".
            return 0 if all(fields["running"] == "yes" for fields in report.values()) else 3
        else:
            if not ENV_FILE.is_file():
                raise LauncherError(f"{ENV_FILE} not found; run `python3 {Path(__file__).relative_to(ROOT)} up` first")
            sys.stdout.write(ENV_FILE.read_text())
    except (LauncherError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
