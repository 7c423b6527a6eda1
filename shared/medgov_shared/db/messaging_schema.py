"""DDL of the outbox, inbox and dead-letter bookkeeping tables.

Every service's first migration calls `create_messaging_tables(op)` so the
four services share one definition of these tables while each keeps them in
its own database.
"""

MESSAGING_DDL: tuple[str, ...] = (
    """
CREATE TABLE outbox (
    position     bigserial PRIMARY KEY,
    event_id     uuid NOT NULL UNIQUE,
    topic        text NOT NULL,
    key          text NOT NULL,
    event_type   text NOT NULL,
    value        bytea NOT NULL,
    headers      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz,
    failed_at    timestamptz,
    last_error   text
)
    """,
    """
CREATE INDEX outbox_pending ON outbox (position) WHERE sent_at IS NULL AND failed_at IS NULL
    """,
    """
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('medgov_outbox', '');
    RETURN NULL;
END $$
    """,
    """
CREATE TRIGGER outbox_inserted AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()
    """,
    """
CREATE TABLE inbox (
    event_id      uuid PRIMARY KEY,
    event_type    text NOT NULL,
    topic         text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset  bigint NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
)
    """,
    """
CREATE TABLE dead_letters (
    id            bigserial PRIMARY KEY,
    event_id      text,
    topic         text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset  bigint NOT NULL,
    reason        text NOT NULL,
    error         text NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now()
)
    """,
)


def create_messaging_tables(op) -> None:  # noqa: ANN001 - alembic's op proxy has no public type
    # One statement per call: SQLAlchemy's asyncpg driver prepares each one.
    for statement in MESSAGING_DDL:
        op.execute(statement)


def drop_messaging_tables(op) -> None:  # noqa: ANN001
    for table in ("dead_letters", "inbox", "outbox"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")
