"""Messaging tables plus one effects table for the runtime tests.

Revision ID: 0001
"""

from alembic import op

from medgov_shared.db.messaging_schema import create_messaging_tables

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_messaging_tables(op)
    op.execute(
        "CREATE TABLE effects (event_id uuid PRIMARY KEY, subject text NOT NULL, "
        "sequence integer, applied_at timestamptz NOT NULL DEFAULT now())"
    )
