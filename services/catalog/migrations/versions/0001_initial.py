"""Messaging tables, datasets with their versions, files, findings and subjects, flags and the search index.

Revision ID: 0001
"""

from alembic import op

from medgov_shared.db.messaging_schema import create_messaging_tables

revision = "0001"
down_revision = None

STATEMENTS = (
    # Local datasets are written by registrations here; remote ones (other
    # regions) are projected from their catalogs' events.
    """
CREATE TABLE datasets (
    dataset_id        text PRIMARY KEY,
    institution_id    text NOT NULL,
    region            text NOT NULL,
    origin            text NOT NULL CHECK (origin IN ('local', 'remote')),
    withdrawn_at      timestamptz,
    withdrawal_reason text,
    created_at        timestamptz NOT NULL
)
    """,
    """
CREATE TABLE dataset_versions (
    dataset_id         text NOT NULL REFERENCES datasets (dataset_id),
    version            integer NOT NULL CHECK (version >= 1),
    scan_status        text NOT NULL CHECK (scan_status IN ('pending', 'published', 'blocked')),
    description        jsonb NOT NULL,
    figures            jsonb NOT NULL,
    completeness_score integer NOT NULL CHECK (completeness_score BETWEEN 0 AND 100),
    completeness       jsonb NOT NULL DEFAULT '[]'::jsonb,
    registered_at      timestamptz NOT NULL,
    published_at       timestamptz,
    PRIMARY KEY (dataset_id, version)
)
    """,
    # One row per file of a local version, accepted or rejected, so the
    # hospital can see which files were kept and why others were not.
    """
CREATE TABLE dataset_files (
    dataset_id   text NOT NULL,
    version      integer NOT NULL,
    path         text NOT NULL,
    accepted     boolean NOT NULL,
    format       text,
    size_bytes   bigint,
    sha256       text,
    figures      jsonb,
    warnings     jsonb NOT NULL DEFAULT '[]'::jsonb,
    reason       text,
    detail       text,
    listed_by    text,
    PRIMARY KEY (dataset_id, version, path),
    FOREIGN KEY (dataset_id, version) REFERENCES dataset_versions (dataset_id, version)
)
    """,
    """
CREATE TABLE dataset_findings (
    dataset_id  text NOT NULL,
    version     integer NOT NULL,
    file        text NOT NULL,
    location    text NOT NULL,
    kind        text NOT NULL,
    category    text NOT NULL CHECK (category IN ('direct', 'quasi', 'link')),
    FOREIGN KEY (dataset_id, version) REFERENCES dataset_versions (dataset_id, version)
)
    """,
    "CREATE INDEX dataset_findings_version ON dataset_findings (dataset_id, version)",
    """
CREATE TABLE dataset_subjects (
    dataset_id  text NOT NULL,
    version     integer NOT NULL,
    subject     text NOT NULL,
    PRIMARY KEY (dataset_id, version, subject),
    FOREIGN KEY (dataset_id, version) REFERENCES dataset_versions (dataset_id, version)
)
    """,
    """
CREATE TABLE compliance_flags (
    flag_id        text PRIMARY KEY,
    dataset_id     text NOT NULL REFERENCES datasets (dataset_id),
    version        integer NOT NULL,
    institution_id text NOT NULL,
    rule           text NOT NULL,
    severity       text NOT NULL,
    findings       jsonb NOT NULL,
    flagged_at     timestamptz NOT NULL,
    cleared_at     timestamptz,
    cleared_note   text
)
    """,
    # The searchable current version of every dataset, local and remote. A
    # row exists only while the dataset has a published version and is not
    # withdrawn. `document` is matched with both the English and the 'simple'
    # configuration: the first stems English words, the second keeps Hangul
    # words (PostgreSQL ships no Korean configuration).
    """
CREATE TABLE search_entries (
    dataset_id         text PRIMARY KEY REFERENCES datasets (dataset_id),
    version            integer NOT NULL,
    institution_id     text NOT NULL,
    region             text NOT NULL,
    origin             text NOT NULL,
    title              text NOT NULL,
    description        text NOT NULL,
    keywords           text[] NOT NULL,
    legal_basis        text NOT NULL,
    duo_codes          text[] NOT NULL,
    modalities         text[] NOT NULL,
    body_parts         text[] NOT NULL,
    condition_codes    text[] NOT NULL,
    completeness_score integer NOT NULL,
    record_count       bigint NOT NULL,
    subject_count      bigint NOT NULL,
    published_at       timestamptz NOT NULL,
    document           tsvector NOT NULL
)
    """,
    "CREATE INDEX search_entries_document ON search_entries USING gin (document)",
    "CREATE INDEX search_entries_modalities ON search_entries USING gin (modalities)",
    "CREATE INDEX search_entries_conditions ON search_entries USING gin (condition_codes)",
    "CREATE INDEX search_entries_duo ON search_entries USING gin (duo_codes)",
)


def upgrade() -> None:
    create_messaging_tables(op)
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for table in ("search_entries", "compliance_flags", "dataset_subjects", "dataset_findings", "dataset_files",
                  "dataset_versions", "datasets"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
