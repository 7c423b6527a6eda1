"""Messaging tables, consent histories, exclusions and the projections of datasets and grants.

Revision ID: 0001
"""

from alembic import op

from medgov_shared.db.messaging_schema import create_messaging_tables

revision = "0001"
down_revision = None

STATEMENTS = (
    # One row per subject; every change of a subject's history locks it first,
    # so HTTP commands and consumed events of one subject apply one at a time.
    """
CREATE TABLE subjects (
    subject        text PRIMARY KEY,
    next_sequence  integer NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL
)
    """,
    """
CREATE TABLE consents (
    subject          text NOT NULL REFERENCES subjects (subject),
    consent_id       text NOT NULL,
    institution_id   text NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('fhir', 'dashboard')),
    policy           jsonb NOT NULL,
    permitted_scope  jsonb,
    granted_at       timestamptz NOT NULL,
    sequence         integer NOT NULL,
    withdrawn_at     timestamptz,
    recorded_at      timestamptz NOT NULL,
    PRIMARY KEY (subject, consent_id)
)
    """,
    "CREATE INDEX consents_institution ON consents (institution_id)",
    """
CREATE TABLE revocations (
    subject                 text NOT NULL REFERENCES subjects (subject),
    sequence                integer NOT NULL,
    consent_id              text NOT NULL,
    institution_id          text NOT NULL,
    channel                 text NOT NULL CHECK (channel IN ('fhir', 'dashboard')),
    standalone              boolean NOT NULL,
    requested_effective_at  timestamptz NOT NULL,
    requested_scope         jsonb,
    denied_scope            jsonb,
    effective_at            timestamptz NOT NULL,
    recorded_at             timestamptz NOT NULL,
    fanned_out_at           timestamptz,
    PRIMARY KEY (subject, sequence)
)
    """,
    "CREATE INDEX revocations_due ON revocations (effective_at) WHERE fanned_out_at IS NULL",
    """
CREATE TABLE parked_revocations (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL REFERENCES subjects (subject),
    consent_id      text NOT NULL,
    institution_id  text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('fhir', 'dashboard')),
    effective_at    timestamptz NOT NULL,
    scope           jsonb,
    parked_at       timestamptz NOT NULL
)
    """,
    "CREATE INDEX parked_revocations_subject ON parked_revocations (subject)",
    """
CREATE TABLE exclusions (
    exclusion_id             text PRIMARY KEY,
    grant_id                 text NOT NULL,
    dataset_id               text NOT NULL,
    subject                  text NOT NULL,
    consent_id               text NOT NULL,
    grantee_id               text NOT NULL,
    holder_id                text NOT NULL,
    reason                   text NOT NULL,
    requested_at             timestamptz NOT NULL,
    acknowledge_by           timestamptz NOT NULL,
    grantee_acknowledged_at  timestamptz,
    holder_acknowledged_at   timestamptz,
    overdue_at               timestamptz
)
    """,
    "CREATE INDEX exclusions_subject ON exclusions (subject)",
    "CREATE INDEX exclusions_grantee ON exclusions (grantee_id)",
    "CREATE INDEX exclusions_holder ON exclusions (holder_id)",
    """
CREATE INDEX exclusions_open ON exclusions (acknowledge_by)
    WHERE overdue_at IS NULL AND (grantee_acknowledged_at IS NULL OR holder_acknowledged_at IS NULL)
    """,
    # Projections of the catalog's events.
    """
CREATE TABLE datasets (
    dataset_id         text PRIMARY KEY,
    holder_id          text NOT NULL,
    title              text NOT NULL DEFAULT '',
    version            integer NOT NULL DEFAULT 0,
    duo_codes          text[] NOT NULL DEFAULT '{}',
    legal_basis        text,
    content            jsonb,
    published_at       timestamptz,
    withdrawn_at       timestamptz,
    withdrawal_reason  text
)
    """,
    """
CREATE TABLE dataset_subjects (
    dataset_id  text NOT NULL,
    subject     text NOT NULL,
    version     integer NOT NULL,
    PRIMARY KEY (dataset_id, subject)
)
    """,
    "CREATE INDEX dataset_subjects_subject ON dataset_subjects (subject)",
    # Projections of the review service's events.
    """
CREATE TABLE applications (
    application_id    text PRIMARY KEY,
    applicant_id      text NOT NULL,
    title             text NOT NULL DEFAULT '',
    purpose_text      text NOT NULL DEFAULT '',
    decision_ids      text[] NOT NULL DEFAULT '{}',
    approved_at       timestamptz
)
    """,
    """
CREATE TABLE grants (
    grant_id          text NOT NULL,
    dataset_id        text NOT NULL,
    application_id    text NOT NULL,
    grantee_id        text NOT NULL,
    holder_id         text NOT NULL,
    purposes          text[] NOT NULL,
    data_environment  text NOT NULL,
    conditions        text[] NOT NULL DEFAULT '{}',
    granted_at        timestamptz NOT NULL,
    starts_at         timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    end_reason        text,
    PRIMARY KEY (grant_id, dataset_id)
)
    """,
    "CREATE INDEX grants_dataset ON grants (dataset_id)",
    # An AccessRevoked or AccessExpired that arrived before its AccessGranted
    # (replayed out of order, or the grant was dead-lettered); applied when the grant arrives.
    """
CREATE TABLE grant_endings (
    grant_id   text PRIMARY KEY,
    ended_at   timestamptz NOT NULL,
    reason     text NOT NULL
)
    """,
    # Active grants that no longer match a subject's consent or a dataset's
    # terms; subject '' marks a finding about the whole grant.
    """
CREATE TABLE grant_mismatches (
    grant_id     text NOT NULL,
    dataset_id   text NOT NULL,
    subject      text NOT NULL,
    reason       text NOT NULL,
    detected_at  timestamptz NOT NULL,
    PRIMARY KEY (grant_id, dataset_id, subject)
)
    """,
    "CREATE INDEX grant_mismatches_subject ON grant_mismatches (subject)",
)


def upgrade() -> None:
    create_messaging_tables(op)
    for statement in STATEMENTS:
        op.execute(statement)
