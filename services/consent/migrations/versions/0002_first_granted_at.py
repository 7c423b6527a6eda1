"""The time of each consent's first recorded version.

A revocation dated before the current version of its consent ends the
earlier version only; without this time the service could not tell such a
revocation from one dated before the consent itself.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute("ALTER TABLE consents ADD COLUMN first_granted_at timestamptz")
    # Versions recorded before this column are taken as first versions.
    op.execute("UPDATE consents SET first_granted_at = granted_at")
    op.execute("ALTER TABLE consents ALTER COLUMN first_granted_at SET NOT NULL")
