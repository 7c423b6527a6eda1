"""Read models of the transparency dashboard: a patient's datasets, the projects that used them, consents and revocations."""

from datetime import datetime

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
            SELECT consent_id, institution_id, channel, policy, permitted_scope, granted_at, withdrawn_at
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


# Each directive of a subject at a hospital: a consent (an opt-out when it
# permits nothing, which the stored permitted_scope marks as NULL) or a
# revocation, which counts for the hospital of the consent it revokes.
_DIRECTIVES = """
    SELECT subject, institution_id, granted_at AS effective_at, sequence, permitted_scope IS NULL AS opted_out
    FROM consents
    UNION ALL
    SELECT r.subject, coalesce(c.institution_id, r.institution_id), r.effective_at, r.sequence, true
    FROM revocations r LEFT JOIN consents c ON c.subject = r.subject AND c.consent_id = r.consent_id
"""


async def opt_out_counts(connection: asyncpg.Connection, month_ends: list[datetime]) -> list[asyncpg.Record]:
    """Count, per hospital and month end, the subjects with a directive there before it and those opted out.

    A subject's status at a month end is its latest directive at the hospital
    before that instant, by effective time and then by recording sequence.
    Rows: institution_id, month_end, subjects, opted_out; hospitals without
    any subject before a month end have no row for it.
    """
    return list(
        await connection.fetch(
            f"""
            WITH directives AS ({_DIRECTIVES}),
            latest AS (
                SELECT DISTINCT ON (months.month_end, d.institution_id, d.subject)
                       months.month_end, d.institution_id, d.opted_out
                FROM unnest($1::timestamptz[]) AS months (month_end)
                JOIN directives d ON d.effective_at < months.month_end
                ORDER BY months.month_end, d.institution_id, d.subject, d.effective_at DESC, d.sequence DESC
            )
            SELECT institution_id, month_end, count(*) AS subjects, count(*) FILTER (WHERE opted_out) AS opted_out
            FROM latest
            GROUP BY institution_id, month_end
            """,
            month_ends,
        )
    )


async def institutions_with_directives(connection: asyncpg.Connection) -> list[str]:
    rows = await connection.fetch(f"SELECT DISTINCT institution_id FROM ({_DIRECTIVES}) AS directives ORDER BY 1")
    return [row["institution_id"] for row in rows]
