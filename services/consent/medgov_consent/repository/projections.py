"""The service's own projections of the catalog's datasets and the review service's applications and grants."""

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter

from medgov_shared.contracts.events.catalog import (
    DatasetPublished,
    DatasetRegistered,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.review import AccessGranted, ApplicationApproved, ApplicationSubmitted
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.types import LegalBasis

from medgov_consent.domain.fanout import GrantView
from medgov_consent.domain.policy import DataClass, DataClassKind, DatasetContent, DatasetTerms

_CONTENT = TypeAdapter(DatasetContent)


def content_of(payload: DatasetRegistered) -> DatasetContent:
    """Return what consent evaluation needs from a registration: data classes, coded content and clinical dates."""
    figures = payload.figures
    classes = {DataClass(DataClassKind.RESOURCE_TYPE, name) for name in figures.resource_counts}
    classes |= {DataClass(DataClassKind.MEDIA_TYPE, media) for media in payload.description.distribution_formats}
    return DatasetContent(
        data_classes=frozenset(classes),
        content_codes=frozenset(figures.condition_codes) | frozenset(figures.observation_codes),
        date_start=date.fromisoformat(figures.date_start) if figures.date_start else None,
        date_end=date.fromisoformat(figures.date_end) if figures.date_end else None,
    )


async def record_registration(connection: asyncpg.Connection, payload: DatasetRegistered) -> None:
    await connection.execute(
        """
        INSERT INTO datasets (dataset_id, holder_id, title, content) VALUES ($1, $2, $3, $4)
        ON CONFLICT (dataset_id) DO UPDATE SET holder_id = EXCLUDED.holder_id, title = EXCLUDED.title,
            content = EXCLUDED.content
        """,
        payload.dataset_id,
        payload.institution_id,
        payload.description.title,
        _CONTENT.dump_python(content_of(payload), mode="json"),
    )


async def add_members(
    connection: asyncpg.Connection, dataset_id: str, holder_id: str, version: int, subjects: Iterable[str]
) -> list[str]:
    """Record subjects of a dataset; return those not recorded before."""
    await connection.execute(
        "INSERT INTO datasets (dataset_id, holder_id) VALUES ($1, $2) ON CONFLICT (dataset_id) DO NOTHING",
        dataset_id,
        holder_id,
    )
    rows = await connection.fetch(
        """
        INSERT INTO dataset_subjects (dataset_id, subject, version)
        SELECT $1, subject, $2 FROM unnest($3::text[]) AS subject
        ON CONFLICT (dataset_id, subject) DO NOTHING
        RETURNING subject
        """,
        dataset_id,
        version,
        sorted(set(subjects)),
    )
    return sorted(row["subject"] for row in rows)


async def record_publication(connection: asyncpg.Connection, payload: DatasetPublished) -> bool:
    """Store the published terms; return True on the first publication and when the terms or the legal basis changed."""
    previous = await connection.fetchrow(
        "SELECT duo_codes, legal_basis FROM datasets WHERE dataset_id = $1 FOR UPDATE", payload.dataset_id
    )
    await connection.execute(
        """
        INSERT INTO datasets (dataset_id, holder_id, title, version, duo_codes, legal_basis, published_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (dataset_id) DO UPDATE SET holder_id = EXCLUDED.holder_id, title = EXCLUDED.title,
            version = EXCLUDED.version, duo_codes = EXCLUDED.duo_codes, legal_basis = EXCLUDED.legal_basis,
            published_at = EXCLUDED.published_at
        """,
        payload.dataset_id,
        payload.institution_id,
        payload.title,
        payload.version,
        list(payload.duo_codes),
        payload.legal_basis.value,
        payload.published_at,
    )
    if previous is None or previous["legal_basis"] is None:
        return True
    return list(previous["duo_codes"]) != list(payload.duo_codes) or previous["legal_basis"] != payload.legal_basis.value


async def record_withdrawal(connection: asyncpg.Connection, payload: DatasetWithdrawn) -> None:
    await connection.execute(
        """
        INSERT INTO datasets (dataset_id, holder_id, withdrawn_at, withdrawal_reason) VALUES ($1, $2, $3, $4)
        ON CONFLICT (dataset_id) DO UPDATE SET withdrawn_at = EXCLUDED.withdrawn_at,
            withdrawal_reason = EXCLUDED.withdrawal_reason
        """,
        payload.dataset_id,
        payload.institution_id,
        payload.withdrawn_at,
        payload.reason,
    )


async def dataset_terms(connection: asyncpg.Connection, dataset_ids: Iterable[str]) -> dict[str, DatasetTerms]:
    """Return the terms of each known dataset; a dataset not yet published is treated as needing consent."""
    rows = await connection.fetch("SELECT * FROM datasets WHERE dataset_id = ANY($1)", sorted(set(dataset_ids)))
    return {row["dataset_id"]: _terms(row) for row in rows}


def _terms(row: asyncpg.Record) -> DatasetTerms:
    # Until DatasetPublished states the legal basis, the strictest one applies.
    legal_basis = LegalBasis(row["legal_basis"]) if row["legal_basis"] else LegalBasis.CONSENT
    return DatasetTerms(
        dataset_id=row["dataset_id"],
        holder_id=row["holder_id"],
        duo_codes=tuple(row["duo_codes"]),
        legal_basis=legal_basis,
        content=_CONTENT.validate_python(row["content"]) if row["content"] is not None else None,
        withdrawn=row["withdrawn_at"] is not None,
        title=row["title"],
    )


async def datasets_of_subjects(connection: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, list[str]]:
    """Return the datasets each of `subjects` belongs to, in dataset id order; a subject in none is left out."""
    rows = await connection.fetch(
        "SELECT subject, dataset_id FROM dataset_subjects WHERE subject = ANY($1::text[]) ORDER BY subject, dataset_id",
        sorted(set(subjects)),
    )
    members: dict[str, list[str]] = {}
    for row in rows:
        members.setdefault(row["subject"], []).append(row["dataset_id"])
    return members


async def subjects_in_datasets(connection: asyncpg.Connection, subjects: Iterable[str]) -> set[str]:
    """Return those of `subjects` that belong to at least one dataset."""
    rows = await connection.fetch(
        "SELECT DISTINCT subject FROM dataset_subjects WHERE subject = ANY($1::text[])", sorted(set(subjects))
    )
    return {row["subject"] for row in rows}


async def members_of(connection: asyncpg.Connection, dataset_id: str) -> list[str]:
    rows = await connection.fetch("SELECT subject FROM dataset_subjects WHERE dataset_id = $1 ORDER BY subject", dataset_id)
    return [row["subject"] for row in rows]


async def record_application(connection: asyncpg.Connection, payload: ApplicationSubmitted) -> None:
    await connection.execute(
        """
        INSERT INTO applications (application_id, applicant_id, title, purpose_text) VALUES ($1, $2, $3, $4)
        ON CONFLICT (application_id) DO UPDATE SET applicant_id = EXCLUDED.applicant_id, title = EXCLUDED.title,
            purpose_text = EXCLUDED.purpose_text
        """,
        payload.application_id,
        payload.applicant_institution,
        payload.title,
        payload.purpose_text,
    )


async def record_approval(connection: asyncpg.Connection, payload: ApplicationApproved) -> None:
    await connection.execute(
        """
        INSERT INTO applications (application_id, applicant_id, decision_ids, approved_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (application_id) DO UPDATE SET decision_ids = EXCLUDED.decision_ids,
            approved_at = EXCLUDED.approved_at
        """,
        payload.application_id,
        payload.applicant_institution,
        list(payload.decision_ids),
        payload.decided_at,
    )


async def record_grant(connection: asyncpg.Connection, payload: AccessGranted, granted_at: datetime) -> None:
    """Store one (grant, dataset) row, ended at once if its ending arrived first."""
    ending = await connection.fetchrow("SELECT ended_at, reason FROM grant_endings WHERE grant_id = $1", payload.grant_id)
    await connection.execute(
        """
        INSERT INTO grants (grant_id, dataset_id, application_id, grantee_id, holder_id, purposes, data_environment,
                            conditions, granted_at, starts_at, expires_at, ended_at, end_reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
        ON CONFLICT (grant_id, dataset_id) DO NOTHING
        """,
        payload.grant_id,
        payload.dataset_id,
        payload.application_id,
        payload.grantee_institution,
        payload.holder_institution,
        list(payload.purpose_codes),
        payload.data_environment.value,
        list(payload.conditions),
        granted_at,
        payload.starts_at,
        payload.expires_at,
        ending["ended_at"] if ending else None,
        ending["reason"] if ending else None,
    )


async def end_grant(connection: asyncpg.Connection, grant_id: str, ended_at: datetime, reason: str) -> bool:
    """Mark every dataset of a grant ended; return False (and keep the ending for later) when the grant is unknown."""
    updated = await connection.fetch(
        "UPDATE grants SET ended_at = $2, end_reason = $3 WHERE grant_id = $1 AND ended_at IS NULL RETURNING dataset_id",
        grant_id,
        ended_at,
        reason,
    )
    if updated:
        return True
    known = await connection.fetchval("SELECT EXISTS (SELECT 1 FROM grants WHERE grant_id = $1)", grant_id)
    if not known:
        await connection.execute(
            "INSERT INTO grant_endings (grant_id, ended_at, reason) VALUES ($1, $2, $3) ON CONFLICT (grant_id) DO NOTHING",
            grant_id,
            ended_at,
            reason,
        )
    return known


async def grants_on(connection: asyncpg.Connection, dataset_ids: Iterable[str]) -> list[GrantView]:
    rows = await connection.fetch(
        "SELECT * FROM grants WHERE dataset_id = ANY($1) ORDER BY grant_id, dataset_id", sorted(set(dataset_ids))
    )
    return [grant_view(row) for row in rows]


def grant_view(row: asyncpg.Record | dict[str, Any]) -> GrantView:
    return GrantView(
        grant_id=row["grant_id"],
        dataset_id=row["dataset_id"],
        application_id=row["application_id"],
        grantee_id=row["grantee_id"],
        holder_id=row["holder_id"],
        purposes=tuple(row["purposes"]),
        grantee_for_profit=is_for_profit(row["grantee_id"]),
        granted_at=row["granted_at"],
        starts_at=row["starts_at"],
        expires_at=row["expires_at"],
        ended_at=row["ended_at"],
    )


def is_for_profit(institution_id: str) -> bool:
    """Tell whether an institution is a company; an institution missing from the register counts as one, the stricter reading."""
    institution = all_institutions().get(institution_id)
    return institution is None or institution.kind == "vendor"
