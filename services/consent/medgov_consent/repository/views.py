"""Read models of the transparency dashboard: a patient's datasets, the projects that used them, consents and revocations."""

import asyncpg


async def patient_datasets(connection: asyncpg.Connection, subject: str) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """
            SELECT d.dataset_id, d.title, d.holder_id, d.version, d.legal_basis, d.withdrawn_at
            FROM dataset_subjects s JOIN datasets d ON d.dataset_id = s.dataset_id
            WHERE s.subject = $1
            ORDER BY d.holder_id, d.dataset_id
            """,
            subject,
        )
    )


async def patient_projects(connection: asyncpg.Connection, subject: str) -> list[asyncpg.Record]:
    """Return every grant on a dataset that contains the subject, with its application and the subject's exclusion."""
    return list(
        await connection.fetch(
            """
            SELECT g.grant_id, g.dataset_id, g.application_id, g.grantee_id, g.holder_id, g.purposes,
                   g.data_environment, g.conditions, g.granted_at, g.starts_at, g.expires_at, g.ended_at, g.end_reason,
                   a.title AS project_title, a.purpose_text, a.applicant_id, a.decision_ids,
                   e.exclusion_id, e.requested_at, e.acknowledge_by, e.grantee_acknowledged_at,
                   e.holder_acknowledged_at, e.overdue_at
            FROM grants g
            JOIN dataset_subjects s ON s.dataset_id = g.dataset_id AND s.subject = $1
            LEFT JOIN applications a ON a.application_id = g.application_id
            LEFT JOIN exclusions e ON e.grant_id = g.grant_id AND e.dataset_id = g.dataset_id AND e.subject = $1
            ORDER BY g.granted_at DESC, g.grant_id, g.dataset_id
            """,
            subject,
        )
    )


async def patient_consents(connection: asyncpg.Connection, subject: str) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """
            SELECT consent_id, institution_id, channel, permitted_scope, granted_at, withdrawn_at
            FROM consents WHERE subject = $1 ORDER BY granted_at, sequence
            """,
            subject,
        )
    )


async def patient_revocations(connection: asyncpg.Connection, subject: str) -> list[asyncpg.Record]:
    return list(
        await connection.fetch(
            """
            SELECT consent_id, institution_id, channel, standalone, denied_scope, effective_at
            FROM revocations WHERE subject = $1 ORDER BY sequence
            """,
            subject,
        )
    )
