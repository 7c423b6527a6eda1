"""Messaging tables, the input journal and the double-entry ledger of the grants service.

Revision ID: 0001
"""

from alembic import op

from medgov_shared.db.messaging_schema import create_messaging_tables

revision = "0001"
down_revision = None

STATEMENTS = (
    # One row that every change of grants state locks first, so changes are
    # applied one at a time in the order of the journal (see fund_service.py).
    "CREATE TABLE fund_lock (id integer PRIMARY KEY CHECK (id = 1))",
    "INSERT INTO fund_lock (id) VALUES (1)",
    """
CREATE TABLE fund_policy (
    id          integer PRIMARY KEY CHECK (id = 1),
    policy      jsonb NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now()
)
    """,
    # Every consumed event and HTTP command that changed grants state, in the
    # order it was applied; replaying it rebuilds the in-memory state.
    """
CREATE TABLE grant_inputs (
    seq         bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('event', 'command')),
    name        text NOT NULL,
    event_id    uuid UNIQUE,
    body        jsonb NOT NULL,
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE TABLE postings (
    posting_id     text PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('allocation', 'disbursement', 'clawback')),
    reference_id   text NOT NULL,
    institution_id text,
    posted_at      timestamptz NOT NULL,
    cause_id       text,
    input_seq      bigint NOT NULL REFERENCES grant_inputs (seq)
)
    """,
    """
CREATE TABLE posting_legs (
    posting_id  text NOT NULL REFERENCES postings (posting_id),
    account     text NOT NULL,
    amount_krw  bigint NOT NULL CHECK (amount_krw <> 0),
    PRIMARY KEY (posting_id, account)
)
    """,
    "CREATE INDEX posting_legs_account ON posting_legs (account)",
    # Running balance per account, updated in the transaction that inserts the
    # legs. The UPDATE takes the row lock of each pool it touches, and the
    # CHECK refuses any commit that would leave a pool or a grantee below zero.
    """
CREATE TABLE account_balances (
    account      text PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('funding', 'pool', 'grantee')),
    balance_krw  bigint NOT NULL,
    CONSTRAINT balance_not_negative CHECK (kind = 'funding' OR balance_krw >= 0)
)
    """,
    """
CREATE FUNCTION reject_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are append-only; post a correcting entry instead', TG_TABLE_NAME;
END $$
    """,
    """
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION reject_ledger_change()
    """,
    """
CREATE TRIGGER posting_legs_append_only BEFORE UPDATE OR DELETE ON posting_legs
    FOR EACH ROW EXECUTE FUNCTION reject_ledger_change()
    """,
    """
CREATE FUNCTION check_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced text;
BEGIN
    SELECT posting_id INTO unbalanced FROM new_legs GROUP BY posting_id HAVING sum(amount_krw) <> 0 LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'legs of posting % do not sum to zero', unbalanced;
    END IF;
    RETURN NULL;
END $$
    """,
    # Legs are inserted in one statement per change, so a statement-level check sees whole postings.
    """
CREATE TRIGGER posting_legs_balanced AFTER INSERT ON posting_legs
    REFERENCING NEW TABLE AS new_legs
    FOR EACH STATEMENT EXECUTE FUNCTION check_postings_balanced()
    """,
    """
CREATE TABLE pending_payouts (
    payout_id      text PRIMARY KEY,
    pool           text NOT NULL,
    institution_id text NOT NULL,
    amount_krw     bigint NOT NULL CHECK (amount_krw > 0),
    reason         text NOT NULL,
    reference_id   text NOT NULL,
    status         text NOT NULL CHECK (status IN ('waiting_for_funds', 'held_suspended')),
    requested_at   timestamptz NOT NULL
)
    """,
)


def upgrade() -> None:
    create_messaging_tables(op)
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the ledger is append-only; restore from a backup instead of downgrading")
