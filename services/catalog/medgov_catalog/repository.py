"""SQL of the catalog service on an asyncpg connection (jsonb travels as Python objects)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from medgov_shared.contracts.events.catalog import DatasetDescription, DatasetFigures

from medgov_catalog.domain.dataset import DatasetHistory, VersionRecord, Withdrawal
from medgov_catalog.domain.registration import RegisteredVersion

# Bulk copies of findings and subjects of a large dataset can take longer than
# the pool's 30-second command timeout.
_COPY_TIMEOUT_S = 600


@dataclass(frozen=True)
class DatasetRow:
    dataset_id: str
    institution_id: str
    region: str
    origin: str
    withdrawn_at: datetime | None
    withdrawal_reason: str | None


async def lock_dataset(connection: asyncpg.Connection, dataset_id: str) -> None:
    """Serialize changes of one dataset id, also before its first row exists."""
    await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended('dataset:' || $1, 0))", dataset_id)


async def get_dataset(connection: asyncpg.Connection, dataset_id: str) -> DatasetRow | None:
    row = await connection.fetchrow(
        "SELECT dataset_id, institution_id, region, origin, withdrawn_at, withdrawal_reason FROM datasets "
        "WHERE dataset_id = $1",
        dataset_id,
    )
    return DatasetRow(**dict(row)) if row else None


async def load_history(connection: asyncpg.Connection, dataset: DatasetRow) -> DatasetHistory:
    rows = await connection.fetch(
        "SELECT version, scan_status, registered_at FROM dataset_versions WHERE dataset_id = $1 ORDER BY version",
        dataset.dataset_id,
    )
    versions = tuple(
        VersionRecord(row["version"], row["scan_status"] == "published", row["registered_at"])
        for row in rows
        if row["scan_status"] != "pending"
    )
    withdrawal = (
        Withdrawal(dataset.withdrawal_reason or "", dataset.withdrawn_at) if dataset.withdrawn_at is not None else None
    )
    return DatasetHistory(dataset.dataset_id, dataset.institution_id, versions, withdrawal)


async def insert_dataset(
    connection: asyncpg.Connection, dataset_id: str, institution_id: str, region: str, origin: str, at: datetime
) -> None:
    await connection.execute(
        "INSERT INTO datasets (dataset_id, institution_id, region, origin, created_at) VALUES ($1, $2, $3, $4, $5) "
        "ON CONFLICT (dataset_id) DO NOTHING",
        dataset_id,
        institution_id,
        region,
        origin,
        at,
    )


async def insert_local_version(connection: asyncpg.Connection, registered: RegisteredVersion) -> None:
    """Store a registered version with its files, findings and subjects."""
    status = "published" if registered.verdict.publishable else "blocked"
    await connection.execute(
        "INSERT INTO dataset_versions (dataset_id, version, scan_status, description, figures, completeness_score, "
        "completeness, registered_at, published_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        registered.dataset_id,
        registered.version,
        status,
        registered.command.description.model_dump(mode="json"),
        registered.figures.model_dump(mode="json"),
        registered.completeness.total,
        [item.__dict__ for item in registered.completeness.criteria],
        registered.registered_at,
        registered.registered_at if registered.verdict.publishable else None,
    )
    await _insert_files(connection, registered)
    await _copy_findings(connection, registered)
    await _copy_subjects(connection, registered)


async def _insert_files(connection: asyncpg.Connection, registered: RegisteredVersion) -> None:
    key = (registered.dataset_id, registered.version)
    accepted = [
        (*key, item.path, True, item.format.value, item.size_bytes, item.sha256,
         item.figures.summary().model_dump(mode="json"), list(item.warnings), None, None, item.listed_by)
        for item in registered.inspection.accepted
    ]
    rejected = [
        (*key, item.path, False, None, None, None, None, [], item.reason.value, item.detail, None)
        for item in registered.inspection.rejected
    ]
    await connection.executemany(
        "INSERT INTO dataset_files (dataset_id, version, path, accepted, format, size_bytes, sha256, figures, "
        "warnings, reason, detail, listed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        accepted + rejected,
    )


async def _copy_findings(connection: asyncpg.Connection, registered: RegisteredVersion) -> None:
    records = [
        (registered.dataset_id, registered.version, item.file, item.location, item.kind.value, item.category.value)
        for item in registered.inspection.findings
    ]
    if records:
        await connection.copy_records_to_table(
            "dataset_findings",
            records=records,
            columns=["dataset_id", "version", "file", "location", "kind", "category"],
            timeout=_COPY_TIMEOUT_S,
        )


async def _copy_subjects(connection: asyncpg.Connection, registered: RegisteredVersion) -> None:
    if registered.subjects:
        await connection.copy_records_to_table(
            "dataset_subjects",
            records=[(registered.dataset_id, registered.version, subject) for subject in registered.subjects],
            columns=["dataset_id", "version", "subject"],
            timeout=_COPY_TIMEOUT_S,
        )


async def insert_flag(
    connection: asyncpg.Connection,
    *,
    flag_id: str,
    dataset_id: str,
    version: int,
    institution_id: str,
    rule: str,
    severity: str,
    findings: list[dict[str, Any]],
    flagged_at: datetime,
) -> None:
    await connection.execute(
        "INSERT INTO compliance_flags (flag_id, dataset_id, version, institution_id, rule, severity, findings, "
        "flagged_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (flag_id) DO NOTHING",
        flag_id,
        dataset_id,
        version,
        institution_id,
        rule,
        severity,
        findings,
        flagged_at,
    )


async def get_flag(connection: asyncpg.Connection, flag_id: str) -> asyncpg.Record | None:
    return await connection.fetchrow("SELECT * FROM compliance_flags WHERE flag_id = $1", flag_id)


async def clear_flag(connection: asyncpg.Connection, flag_id: str, at: datetime, note: str) -> None:
    await connection.execute(
        "UPDATE compliance_flags SET cleared_at = $2, cleared_note = $3 WHERE flag_id = $1", flag_id, at, note
    )


async def mark_withdrawn(connection: asyncpg.Connection, dataset_id: str, reason: str, at: datetime) -> None:
    await connection.execute(
        "UPDATE datasets SET withdrawn_at = $2, withdrawal_reason = $3 WHERE dataset_id = $1 AND withdrawn_at IS NULL",
        dataset_id,
        at,
        reason,
    )
    await connection.execute("DELETE FROM search_entries WHERE dataset_id = $1", dataset_id)


# -- versions projected from other regions ----------------------------------------------


async def upsert_remote_version(
    connection: asyncpg.Connection,
    *,
    dataset_id: str,
    version: int,
    description: DatasetDescription,
    figures: DatasetFigures,
    completeness_score: int,
    registered_at: datetime,
) -> None:
    await connection.execute(
        "INSERT INTO dataset_versions (dataset_id, version, scan_status, description, figures, completeness_score, "
        "registered_at) VALUES ($1, $2, 'pending', $3, $4, $5, $6) ON CONFLICT (dataset_id, version) DO NOTHING",
        dataset_id,
        version,
        description.model_dump(mode="json"),
        figures.model_dump(mode="json"),
        completeness_score,
        registered_at,
    )


async def set_version_status(
    connection: asyncpg.Connection, dataset_id: str, version: int, status: str, published_at: datetime | None = None
) -> bool:
    """Set the scan status of a stored version; return False if the version is not stored."""
    result = await connection.execute(
        "UPDATE dataset_versions SET scan_status = $3, published_at = COALESCE($4, published_at) "
        "WHERE dataset_id = $1 AND version = $2",
        dataset_id,
        version,
        status,
        published_at,
    )
    return result != "UPDATE 0"


# -- search index ----------------------------------------------------------------------


async def index_version(connection: asyncpg.Connection, dataset_id: str, version: int) -> None:
    """Make `version` the searchable one, unless a newer version is already indexed or the dataset is withdrawn."""
    await connection.execute(
        """
INSERT INTO search_entries (dataset_id, version, institution_id, region, origin, title, description, keywords,
    legal_basis, duo_codes, modalities, body_parts, condition_codes, completeness_score, record_count,
    subject_count, published_at, document)
SELECT d.dataset_id, v.version, d.institution_id, d.region, d.origin,
    v.description->>'title', v.description->>'description',
    ARRAY(SELECT jsonb_array_elements_text(v.description->'keywords')),
    v.description->>'legal_basis',
    ARRAY(SELECT jsonb_array_elements_text(v.description->'duo_codes')),
    ARRAY(SELECT jsonb_array_elements_text(v.figures->'modalities')),
    ARRAY(SELECT jsonb_array_elements_text(v.figures->'body_parts')),
    ARRAY(SELECT jsonb_array_elements_text(v.figures->'condition_codes')),
    v.completeness_score, (v.figures->>'record_count')::bigint, (v.figures->>'subject_count')::bigint,
    v.published_at,
    setweight(to_tsvector('english', v.description->>'title'), 'A')
        || setweight(to_tsvector('simple', v.description->>'title'), 'A')
        || setweight(to_tsvector('english', coalesce(v.description->>'description', '')), 'B')
        || setweight(to_tsvector('simple', coalesce(v.description->>'description', '')), 'B')
        || setweight(to_tsvector('simple', coalesce(v.description->'keywords', '[]'::jsonb)), 'A')
FROM datasets d JOIN dataset_versions v USING (dataset_id)
WHERE d.dataset_id = $1 AND v.version = $2 AND d.withdrawn_at IS NULL
ON CONFLICT (dataset_id) DO UPDATE SET
    version = EXCLUDED.version, title = EXCLUDED.title, description = EXCLUDED.description,
    keywords = EXCLUDED.keywords, legal_basis = EXCLUDED.legal_basis, duo_codes = EXCLUDED.duo_codes,
    modalities = EXCLUDED.modalities, body_parts = EXCLUDED.body_parts, condition_codes = EXCLUDED.condition_codes,
    completeness_score = EXCLUDED.completeness_score, record_count = EXCLUDED.record_count,
    subject_count = EXCLUDED.subject_count, published_at = EXCLUDED.published_at, document = EXCLUDED.document
WHERE search_entries.version < EXCLUDED.version
        """,
        dataset_id,
        version,
    )


# -- reads for the HTTP API ------------------------------------------------------------


async def list_versions(connection: asyncpg.Connection, dataset_id: str) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT version, scan_status, description, figures, completeness_score, completeness, registered_at, "
        "published_at FROM dataset_versions WHERE dataset_id = $1 ORDER BY version",
        dataset_id,
    )


async def list_files(connection: asyncpg.Connection, dataset_id: str, version: int) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT path, accepted, format, size_bytes, sha256, figures, warnings, reason, detail, listed_by "
        "FROM dataset_files WHERE dataset_id = $1 AND version = $2 ORDER BY accepted, path",
        dataset_id,
        version,
    )


async def list_flags(connection: asyncpg.Connection, dataset_id: str, version: int) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT flag_id, rule, severity, findings, flagged_at, cleared_at, cleared_note FROM compliance_flags "
        "WHERE dataset_id = $1 AND version = $2 ORDER BY rule",
        dataset_id,
        version,
    )


async def count_findings(connection: asyncpg.Connection, dataset_id: str, version: int) -> list[asyncpg.Record]:
    return await connection.fetch(
        "SELECT file, kind, category, count(*) AS count, min(location) AS first_location FROM dataset_findings "
        "WHERE dataset_id = $1 AND version = $2 GROUP BY file, kind, category ORDER BY file, kind",
        dataset_id,
        version,
    )


async def count_subjects(connection: asyncpg.Connection, dataset_id: str, version: int) -> int:
    return await connection.fetchval(
        "SELECT count(*) FROM dataset_subjects WHERE dataset_id = $1 AND version = $2", dataset_id, version
    )
