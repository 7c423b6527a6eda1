"""var/local.env from the local launcher: the development token key is written once and kept."""

import importlib.util
import stat
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parents[2] / "deploy" / "local" / "launcher.py"


def load_launcher(var_dir: Path, monkeypatch):
    # The launcher reads its state directory when loaded, so each test loads its own copy.
    monkeypatch.setenv("MEDGOV_LOCAL_VAR_DIR", str(var_dir))
    spec = importlib.util.spec_from_file_location(f"launcher_{var_dir.name}", LAUNCHER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_has_stable_jwt_secret(tmp_path, monkeypatch):
    launcher = load_launcher(tmp_path, monkeypatch)

    first = launcher._write_environment_file()
    second = launcher._write_environment_file()

    assert len(first["JWT_SECRET"]) >= 32
    assert first["JWT_SECRET"] == second["JWT_SECRET"]
    assert f"JWT_SECRET={first['JWT_SECRET']}\n" in (tmp_path / "local.env").read_text()
    assert stat.S_IMODE((tmp_path / "jwt-secret").stat().st_mode) == 0o600


def test_jwt_secret_differs_per_checkout(tmp_path, monkeypatch):
    first_checkout = load_launcher(tmp_path / "first", monkeypatch)._jwt_secret()
    second_checkout = load_launcher(tmp_path / "second", monkeypatch)._jwt_secret()

    assert first_checkout != second_checkout


def test_launcher_recognises_its_servers_on_other_ports(tmp_path, monkeypatch):
    from medgov_shared.testing.infrastructure import Infrastructure, launcher_runs_kafka, launcher_runs_postgres

    monkeypatch.setenv("MEDGOV_KAFKA_PORT", "29192")
    monkeypatch.setenv("MEDGOV_POSTGRES_PORT", "25532")
    launcher = load_launcher(tmp_path, monkeypatch)
    monkeypatch.setattr(launcher, "kafka_pid", lambda: 4242)
    monkeypatch.setattr(launcher, "postgres_pid", lambda: 4343)
    own = Infrastructure("127.0.0.1:29192", "postgresql://postgres@127.0.0.1:25532/postgres", "environment")
    other = Infrastructure("127.0.0.1:19092", "postgresql://postgres@127.0.0.1:15432/postgres", "environment")

    assert launcher_runs_kafka(launcher, own) and launcher_runs_postgres(launcher, own)
    assert not launcher_runs_kafka(launcher, other) and not launcher_runs_postgres(launcher, other)


def test_bare_up_keeps_last_security_mode(tmp_path, monkeypatch):
    launcher = load_launcher(tmp_path, monkeypatch)
    monkeypatch.delenv("MEDGOV_KAFKA_SECURITY", raising=False)
    started_secure: list[bool] = []
    # Only the start decision is under test; the servers themselves are not started here.
    monkeypatch.setattr(launcher, "_preflight", lambda **_: None)
    monkeypatch.setattr(launcher, "_start_postgres_locked", lambda: None)
    monkeypatch.setattr(launcher, "_start_kafka_locked", started_secure.append)
    monkeypatch.setattr(launcher, "_write_environment_file", dict)
    monkeypatch.setattr(launcher, "_postgres_scratch_dir", lambda: tmp_path)

    launcher.up()
    launcher.KAFKA_DIR.mkdir(parents=True, exist_ok=True)
    (launcher.KAFKA_DIR / "security-mode").write_text("scram\n")
    launcher.up()

    assert started_secure == [False, True]


def test_private_pair_ignores_the_checkout_postgres_directory(tmp_path, monkeypatch):
    # A private pair removes its PostgreSQL directory after a run; the checkout's must never be it.
    monkeypatch.setenv("MEDGOV_PG_DIR", str(tmp_path / "checkout-pg"))
    private = load_launcher(tmp_path / "private", monkeypatch)._postgres_scratch_dir()
    monkeypatch.delenv("MEDGOV_LOCAL_VAR_DIR")
    spec = importlib.util.spec_from_file_location("launcher_default", LAUNCHER)
    default_launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(default_launcher)

    assert default_launcher._postgres_scratch_dir() == tmp_path / "checkout-pg"
    assert private != tmp_path / "checkout-pg"
    assert private.name.startswith("medgov-pg-")
