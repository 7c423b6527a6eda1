"""Messaging tables, applications, the catalog projection, event history, SLA alerts and grants.

Revision ID: 0001
"""

from alembic import op

from medgov_shared.db.messaging_schema import create_messaging_tables, drop_messaging_tables

revision = "0001"
down_revision = None

STATEMENTS = (
    # One row per application. `document` is the whole aggregate as JSON
    # (format `document_version`); the other columns copy what queries filter on.
    """
CREATE TABLE applications (
    application_id        text PRIMARY KEY,
    applicant_institution text,
    home_region           text NOT NULL,
    regions               text[] NOT NULL DEFAULT '{}',
    status                text NOT NULL,
    received_at           timestamptz NOT NULL,
    decided_at            timestamptz,
    days_used             double precision,
    next_clock_check_at   timestamptz,
    correlation_id        uuid,
    document              jsonb NOT NULL,
    document_version      integer NOT NULL,
    updated_at            timestamptz NOT NULL
)
    """,
    "CREATE INDEX applications_open ON applications (status) WHERE status IN ('under_review', 'awaiting_revision')",
    "CREATE INDEX applications_clock_due ON applications (next_clock_check_at) WHERE next_clock_check_at IS NOT NULL",
    # Idempotency keys of submissions: a repeated key returns the stored result.
    """
CREATE TABLE submissions (
    application_id   text NOT NULL,
    idempotency_key  text NOT NULL,
    fingerprint      text NOT NULL,
    result           jsonb NOT NULL,
    submitted_at     timestamptz NOT NULL,
    PRIMARY KEY (application_id, idempotency_key)
)
    """,
    # What the catalog published: the data-use terms and holder of each dataset.
    """
CREATE TABLE datasets (
    dataset_id      text PRIMARY KEY,
    version         integer NOT NULL,
    institution_id  text NOT NULL,
    region          text NOT NULL,
    title           text NOT NULL,
    duo_codes       text[] NOT NULL,
    withdrawn       boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL
)
    """,
    # Every event an application caused, in the order emitted.
    """
CREATE TABLE application_events (
    position        bigserial PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    application_id  text NOT NULL,
    event_type      text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    envelope        jsonb NOT NULL
)
    """,
    "CREATE INDEX application_events_by_application ON application_events (application_id, position)",
    # The primary key makes a second warning of the same threshold fail its
    # transaction, so no restart or second replica can emit it twice.
    """
CREATE TABLE sla_alerts (
    application_id     text NOT NULL,
    threshold_percent  integer NOT NULL CHECK (threshold_percent IN (50, 75, 90, 100)),
    event_id           uuid NOT NULL,
    fired_at           timestamptz NOT NULL,
    PRIMARY KEY (application_id, threshold_percent)
)
    """,
    """
CREATE TABLE access_grants (
    grant_id        text PRIMARY KEY,
    application_id  text NOT NULL REFERENCES applications (application_id),
    dataset_id      text NOT NULL,
    region          text NOT NULL,
    status          text NOT NULL,
    starts_at       timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    ended_at        timestamptz
)
    """,
    "CREATE INDEX access_grants_active_expiry ON access_grants (expires_at) WHERE status = 'active'",
    # Status history, kept as rows so the dashboard can sum time per state in SQL.
    """
CREATE TABLE status_changes (
    application_id  text NOT NULL REFERENCES applications (application_id),
    sequence        integer NOT NULL,
    status          text NOT NULL,
    entered_at      timestamptz NOT NULL,
    PRIMARY KEY (application_id, sequence)
)
    """,
)


def upgrade() -> None:
    create_messaging_tables(op)
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    tables = ("status_changes", "access_grants", "sla_alerts", "application_events", "datasets", "submissions",
              "applications")
    for table in tables:
        op.execute(f"DROP TABLE IF EXISTS {table}")
    drop_messaging_tables(op)
