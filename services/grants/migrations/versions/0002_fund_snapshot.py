"""Snapshot of the in-memory fund, so a restart replays only the tail of the journal.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"

STATEMENTS = (
    # One row: the latest snapshot. It is written in the transaction that
    # appends journal entry `input_seq`, so it matches the committed journal.
    """
CREATE TABLE fund_snapshot (
    id          integer PRIMARY KEY CHECK (id = 1),
    input_seq   bigint NOT NULL REFERENCES grant_inputs (seq),
    format      text NOT NULL,
    state       bytea NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now()
)
    """,
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE fund_snapshot")
