"""SQL of the review service, on the connection of the current unit of work.

An application is stored as one JSON document (the aggregate, serialized by
pydantic) plus copies of the columns that queries filter on. Grants, status
changes, SLA alerts and emitted events also go to tables of their own, written
in the same transaction as the document.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.events.catalog import DatasetPublished, DatasetWithdrawn
from medgov_shared.contracts.types import Region

from medgov_review.domain.aggregate import Application, ReviewRules
from medgov_review.domain.purpose import DatasetTerms

# Format of `applications.document`; a change to the aggregate's fields that
# old documents cannot be read into needs a new version and an upcaster here.
DOCUMENT_VERSION = 1
_DOCUMENT = TypeAdapter(Application)


@dataclass(frozen=True)
class StoredApplication:
    application: Application
    # Flow id of the application's first event; later events carry it too.
    correlation_id: uuid.UUID | None


class ApplicationRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    # -- the aggregate ------------------------------------------------------------

    async def lock_id(self, application_id: str) -> None:
        """Serialize commands on an application id that may not have a row yet (a first submission).

        The key equals the outbox's per-key lock. PostgreSQL grants an advisory
        lock that the session already holds at once, so the outbox taking it
        again in this transaction does not wait.
        """
        await self.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", application_id)

    async def get(self, application_id: str, *, for_update: bool = False) -> StoredApplication | None:
        query = "SELECT document, document_version, correlation_id FROM applications WHERE application_id = $1"
        row = await self.connection.fetchrow(query + (" FOR UPDATE" if for_update else ""), application_id)
        return _stored(row) if row else None

    async def save(self, stored: StoredApplication, *, rules: ReviewRules, now: datetime) -> None:
        application = stored.application
        await self.connection.execute(
            """
            INSERT INTO applications (application_id, applicant_institution, home_region, regions, status,
                                      received_at, decided_at, days_used, next_clock_check_at, correlation_id,
                                      document, document_version, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $6)
            ON CONFLICT (application_id) DO UPDATE SET
                applicant_institution = EXCLUDED.applicant_institution,
                home_region = EXCLUDED.home_region,
                regions = EXCLUDED.regions,
                status = EXCLUDED.status,
                decided_at = EXCLUDED.decided_at,
                days_used = EXCLUDED.days_used,
                next_clock_check_at = EXCLUDED.next_clock_check_at,
                correlation_id = COALESCE(applications.correlation_id, EXCLUDED.correlation_id),
                document = EXCLUDED.document,
                document_version = EXCLUDED.document_version,
                updated_at = EXCLUDED.updated_at
            """,
            application.application_id,
            application.applicant_institution,
            application.home_region.value,
            [region.value for region in application.regions],
            application.status.value,
            now,
            application.decided_at,
            application.days_used_at_decision(rules),
            application.next_clock_check_at(rules),
            stored.correlation_id,
            _DOCUMENT.dump_python(application, mode="json"),
            DOCUMENT_VERSION,
        )
        await self._save_status_changes(application)
        await self._save_grants(application)

    async def _save_status_changes(self, application: Application) -> None:
        await self.connection.executemany(
            "INSERT INTO status_changes (application_id, sequence, status, entered_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (application_id, sequence) DO NOTHING",
            [
                (application.application_id, sequence, change.status.value, change.entered_at)
                for sequence, change in enumerate(application.timeline.changes)
            ],
        )

    async def _save_grants(self, application: Application) -> None:
        await self.connection.executemany(
            """
            INSERT INTO access_grants (grant_id, application_id, dataset_id, region, status,
                                       starts_at, expires_at, ended_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (grant_id) DO UPDATE SET status = EXCLUDED.status, ended_at = EXCLUDED.ended_at
            """,
            [
                (grant.grant_id, grant.application_id, grant.dataset_id, grant.region.value, grant.status.value,
                 grant.starts_at, grant.expires_at, grant.ended_at)
                for grant in application.grants.values()
            ],
        )

    async def due_for_clock_check(self, now: datetime, limit: int) -> list[StoredApplication]:
        """Lock and return applications whose next SLA alert is due; rows another replica holds are skipped."""
        rows = await self.connection.fetch(
            """
            SELECT document, document_version, correlation_id FROM applications
            WHERE next_clock_check_at <= $1
            ORDER BY next_clock_check_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
            """,
            now,
            limit,
        )
        return [_stored(row) for row in rows]

    async def with_grants_due_to_expire(self, now: datetime, limit: int) -> list[StoredApplication]:
        rows = await self.connection.fetch(
            """
            SELECT document, document_version, correlation_id FROM applications
            WHERE application_id IN (
                SELECT application_id FROM access_grants WHERE status = 'active' AND expires_at <= $1 LIMIT $2
            )
            FOR UPDATE SKIP LOCKED
            """,
            now,
            limit,
        )
        return [_stored(row) for row in rows]

    async def open_requesting(self, dataset_id: str) -> list[StoredApplication]:
        """Lock and return the open applications whose current content requests `dataset_id`."""
        rows = await self.connection.fetch(
            """
            SELECT document, document_version, correlation_id FROM applications
            WHERE status IN ('under_review', 'awaiting_revision')
              AND document -> 'content' -> 'dataset_ids' ? $1
            FOR UPDATE
            """,
            dataset_id,
        )
        return [_stored(row) for row in rows]

    async def application_of_grant(self, grant_id: str) -> str | None:
        return await self.connection.fetchval("SELECT application_id FROM access_grants WHERE grant_id = $1", grant_id)

    # -- what happened ------------------------------------------------------------

    async def append_history(self, application_id: str, envelope: Envelope) -> None:
        await self.connection.execute(
            "INSERT INTO application_events (event_id, application_id, event_type, occurred_at, envelope) "
            "VALUES ($1, $2, $3, $4, $5)",
            envelope.id,
            application_id,
            envelope.type,
            envelope.time,
            envelope.model_dump(mode="json", exclude_none=True),
        )

    async def record_alert(self, application_id: str, percent: int, event_id: uuid.UUID, fired_at: datetime) -> None:
        """Insert the alert row; a second alert of the same threshold raises UniqueViolationError."""
        await self.connection.execute(
            "INSERT INTO sla_alerts (application_id, threshold_percent, event_id, fired_at) VALUES ($1, $2, $3, $4)",
            application_id,
            percent,
            event_id,
            fired_at,
        )

    async def history(self, application_id: str) -> list[dict[str, Any]]:
        rows = await self.connection.fetch(
            "SELECT envelope FROM application_events WHERE application_id = $1 ORDER BY position", application_id
        )
        return [row["envelope"] for row in rows]

    # -- idempotency --------------------------------------------------------------

    async def find_submission(self, application_id: str, idempotency_key: str) -> tuple[str, dict[str, Any]] | None:
        row = await self.connection.fetchrow(
            "SELECT fingerprint, result FROM submissions WHERE application_id = $1 AND idempotency_key = $2",
            application_id,
            idempotency_key,
        )
        return (row["fingerprint"], row["result"]) if row else None

    async def save_submission(
        self, application_id: str, idempotency_key: str, fingerprint: str, result: dict[str, Any], at: datetime
    ) -> None:
        await self.connection.execute(
            "INSERT INTO submissions (application_id, idempotency_key, fingerprint, result, submitted_at) "
            "VALUES ($1, $2, $3, $4, $5)",
            application_id,
            idempotency_key,
            fingerprint,
            result,
            at,
        )

    # -- views --------------------------------------------------------------------

    async def open_applications(self, region: Region | None) -> list[Application]:
        rows = await self.connection.fetch(
            """
            SELECT document, document_version, correlation_id FROM applications
            WHERE status IN ('under_review', 'awaiting_revision') AND ($1::text IS NULL OR $1 = ANY (regions))
            ORDER BY received_at
            """,
            region.value if region else None,
        )
        return [_stored(row).application for row in rows]

    async def decision_days(self) -> list[float]:
        rows = await self.connection.fetch("SELECT days_used FROM applications WHERE days_used IS NOT NULL")
        return [row["days_used"] for row in rows]

    async def status_counts(self) -> dict[str, int]:
        rows = await self.connection.fetch("SELECT status, count(*) AS total FROM applications GROUP BY status")
        return {row["status"]: row["total"] for row in rows}

    async def mean_time_in_states(self, now: datetime) -> dict[str, float]:
        """Return the mean wall-clock seconds an application spends in each open state per visit."""
        rows = await self.connection.fetch(
            """
            WITH spans AS (
                SELECT status, entered_at,
                       lead(entered_at) OVER (PARTITION BY application_id ORDER BY sequence) AS left_at
                FROM status_changes
            )
            SELECT status, avg(extract(epoch FROM coalesce(left_at, $1) - entered_at)) AS mean_seconds
            FROM spans
            WHERE status IN ('under_review', 'awaiting_revision')
            GROUP BY status
            """,
            now,
        )
        return {row["status"]: float(row["mean_seconds"]) for row in rows}


class CatalogProjection:
    """The datasets the catalog published, with their data-use terms, as the review service needs them."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def apply_published(self, event: DatasetPublished, at: datetime) -> None:
        # A redelivered older version never overwrites a newer one.
        await self.connection.execute(
            """
            INSERT INTO datasets (dataset_id, version, institution_id, region, title, duo_codes, withdrawn, updated_at)
            VALUES ($1, $2, $3, $4, $5, $6, false, $7)
            ON CONFLICT (dataset_id) DO UPDATE SET
                version = EXCLUDED.version, institution_id = EXCLUDED.institution_id, region = EXCLUDED.region,
                title = EXCLUDED.title, duo_codes = EXCLUDED.duo_codes, withdrawn = false,
                updated_at = EXCLUDED.updated_at
            WHERE datasets.version <= EXCLUDED.version
            """,
            event.dataset_id,
            event.version,
            event.institution_id,
            event.region.value,
            event.title,
            list(event.duo_codes),
            at,
        )

    async def apply_withdrawn(self, event: DatasetWithdrawn, at: datetime) -> bool:
        """Mark the dataset withdrawn; return False if it was never published here."""
        status = await self.connection.execute(
            "UPDATE datasets SET withdrawn = true, updated_at = $2 WHERE dataset_id = $1", event.dataset_id, at
        )
        return status != "UPDATE 0"

    async def terms_of(self, dataset_ids: Iterable[str]) -> dict[str, DatasetTerms]:
        rows = await self.connection.fetch(
            "SELECT dataset_id, version, institution_id, region, title, duo_codes, withdrawn "
            "FROM datasets WHERE dataset_id = ANY ($1::text[])",
            list(dataset_ids),
        )
        return {
            row["dataset_id"]: DatasetTerms(
                dataset_id=row["dataset_id"],
                version=row["version"],
                institution_id=row["institution_id"],
                region=Region(row["region"]),
                title=row["title"],
                duo_codes=tuple(row["duo_codes"]),
                withdrawn=row["withdrawn"],
            )
            for row in rows
        }


def _stored(row: asyncpg.Record) -> StoredApplication:
    if row["document_version"] != DOCUMENT_VERSION:
        raise ValueError(
            f"application document version {row['document_version']} is unknown to this build "
            f"(expects {DOCUMENT_VERSION}); deploy a build with its upcaster"
        )
    application = _DOCUMENT.validate_python(row["document"])
    return StoredApplication(application=application, correlation_id=row["correlation_id"])
