"""Re-identification key material is in its own database, which the keys role can read and no service role can.

The test applies deploy/local/keystore.sql (twice, to show it is idempotent)
to the session's PostgreSQL server and then opens real connections as each
role. The local server trusts local connections, so a role logs in without a
password and only privileges decide what it may do.
"""

import secrets
import string
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

from medgov_shared.testing.infrastructure import REPO_ROOT


pytestmark = [pytest.mark.integration]

KEYSTORE_SQL = REPO_ROOT / "deploy" / "local" / "keystore.sql"
KEYS_DATABASE = "medgov_keys"
KEYS_ROLE = "medgov_keys"
SERVICE_ROLES = ("medgov_review", "medgov_catalog", "medgov_consent", "medgov_grants")
KEY_TABLE = "keys.pseudonym_keys"


def url_as(infra_url: str, role: str, database: str) -> str:
    parts = urlsplit(infra_url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{role}@{host}{port}", path=f"/{database}"))


def psql_steps(script: str) -> list[tuple[str, str]]:
    """Split a psql script into (kind, text) steps: 'sql', 'gexec' (run the rows it returns) or 'connect'.

    Only the psql features keystore.sql uses are understood: dollar-quoted
    blocks, statements ending with ';' or '\\gexec' at a line's end, and
    '\\connect <database>' on a line of its own.
    """
    steps: list[tuple[str, str]] = []
    buffer: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        if not buffer and stripped.startswith("\\connect "):
            steps.append(("connect", stripped.split(maxsplit=1)[1]))
            continue
        buffer.append(line)
        inside_dollar_quote = "\n".join(buffer).count("$$") % 2 == 1
        if inside_dollar_quote:
            continue
        if stripped.endswith("\\gexec"):
            steps.append(("gexec", "\n".join(buffer).rstrip()[: -len("\\gexec")]))
            buffer = []
        elif stripped.endswith(";"):
            steps.append(("sql", "\n".join(buffer)))
            buffer = []
    assert not buffer, f"unterminated statement at the end of the script: {buffer!r}"
    return steps


async def apply_keystore_sql(maintenance_url: str) -> None:
    """Run keystore.sql as the superuser of `maintenance_url`, the way psql would."""
    connection = await asyncpg.connect(maintenance_url)
    try:
        for kind, text in psql_steps(KEYSTORE_SQL.read_text(encoding="utf-8")):
            if kind == "connect":
                await connection.close()
                connection = await asyncpg.connect(urlunsplit(urlsplit(maintenance_url)._replace(path=f"/{text}")))
            elif kind == "gexec":
                for row in await connection.fetch(text):
                    await connection.execute(row[0])
            else:
                await connection.execute(text)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def keystore(infra) -> str:  # type: ignore[no-untyped-def]
    await apply_keystore_sql(infra.database_url)
    await apply_keystore_sql(infra.database_url)
    return infra.database_url


def test_psql_steps_of_keystore_script() -> None:
    kinds = [kind for kind, _ in psql_steps(KEYSTORE_SQL.read_text(encoding="utf-8"))]

    assert kinds.count("connect") == 1
    assert kinds.count("gexec") == 1
    assert kinds[0] == "sql"
    assert kinds.index("gexec") < kinds.index("connect")


async def test_keys_role_reads_and_writes_key_table(keystore: str) -> None:
    region = "t" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))
    material = secrets.token_bytes(32)
    connection = await asyncpg.connect(url_as(keystore, KEYS_ROLE, KEYS_DATABASE))
    try:
        await connection.execute(
            f"INSERT INTO {KEY_TABLE} (region, key_version, key_material) VALUES ($1, 1, $2)", region, material
        )
        stored = await connection.fetchval(f"SELECT key_material FROM {KEY_TABLE} WHERE region = $1", region)
        await connection.execute(f"DELETE FROM {KEY_TABLE} WHERE region = $1", region)
    finally:
        await connection.close()

    assert stored == material


@pytest.mark.parametrize("role", SERVICE_ROLES)
async def test_service_role_cannot_connect_to_key_database(keystore: str, role: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for database"):
        connection = await asyncpg.connect(url_as(keystore, role, KEYS_DATABASE))
        await connection.close()


@pytest.mark.parametrize("role", SERVICE_ROLES)
async def test_service_role_has_no_path_to_key_table(keystore: str, role: str) -> None:
    connection = await asyncpg.connect(keystore)
    try:
        row = await connection.fetchrow(
            """
            SELECT r.rolsuper, r.rolcreaterole, r.rolbypassrls,
                   pg_has_role($1, $2, 'MEMBER') AS member_of_keys,
                   has_database_privilege($1, $3, 'CONNECT') AS can_connect
            FROM pg_roles r WHERE r.rolname = $1
            """,
            role, KEYS_ROLE, KEYS_DATABASE,
        )
    finally:
        await connection.close()

    assert row is not None, f"role {role} missing after keystore.sql"
    assert row["rolsuper"] is False
    assert row["rolcreaterole"] is False
    assert row["rolbypassrls"] is False
    assert row["member_of_keys"] is False
    assert row["can_connect"] is False


async def test_table_denied_even_with_connect_privilege(keystore: str) -> None:
    """A role that somehow got CONNECT (a mistaken grant) still cannot read the table or its schema."""
    probe = f"medgov_keys_probe_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(url_as(keystore, urlsplit(keystore).username or "medgov", KEYS_DATABASE))
    try:
        await admin.execute(f'CREATE ROLE "{probe}" LOGIN')
        await admin.execute(f'GRANT CONNECT ON DATABASE {KEYS_DATABASE} TO "{probe}"')
        connection = await asyncpg.connect(url_as(keystore, probe, KEYS_DATABASE))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await connection.fetch(f"SELECT key_material FROM {KEY_TABLE}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await connection.execute("CREATE TABLE public.copied_keys (key_material bytea)")
        finally:
            await connection.close()
    finally:
        await admin.execute(f'REVOKE ALL ON DATABASE {KEYS_DATABASE} FROM "{probe}"')
        await admin.execute(f'DROP ROLE "{probe}"')
        await admin.close()


async def test_key_table_owned_by_keys_role_only(keystore: str) -> None:
    connection = await asyncpg.connect(url_as(keystore, urlsplit(keystore).username or "medgov", KEYS_DATABASE))
    try:
        owner = await connection.fetchval("SELECT tableowner FROM pg_tables WHERE schemaname || '.' || tablename = $1",
                                          KEY_TABLE)
        grantees = await connection.fetch(
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
            "WHERE table_schema = 'keys' AND table_name = 'pseudonym_keys'"
        )
    finally:
        await connection.close()

    assert owner == KEYS_ROLE
    assert {row["grantee"] for row in grantees} <= {KEYS_ROLE}


def secret_references(manifest: Path) -> set[str]:
    """Return the names of the Secrets that the containers of a manifest read through env or envFrom."""
    names: set[str] = set()
    for document in yaml.safe_load_all(manifest.read_text(encoding="utf-8")):
        pod = (document or {}).get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    names.add(reference["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    names.add(source["secretRef"]["name"])
    return names


@pytest.mark.parametrize("service", ["review", "grants", "catalog", "consent"])
def test_service_pods_get_no_pseudonym_key(service: str) -> None:
    manifest = REPO_ROOT / "deploy" / "k8s" / "base" / "services" / f"{service}.yaml"

    references = secret_references(manifest)

    assert references, f"{manifest} reads no Secret at all; the parser missed its containers"
    assert "medgov-pseudonym" not in references
