"""Example analytics subscriber built with FastStream.

It follows medgov.review.v1 and medgov.consent.v1 and keeps aggregate
figures (applications per ISO week, median decision time, opt-out rate per
hospital) in its own PostgreSQL database. It stores no subject pseudonyms:
only counts per application and per hospital.

Acknowledgement is manual on purpose. FastStream's default for Kafka commits
the offset before the handler runs; here the offset is committed only after
the database transaction that records the event and its effect, so a crash
re-delivers the event and the inbox table drops the duplicate. A database
failure is retried in place (the partition waits) rather than skipped,
because a later ack would commit past a skipped event.
"""

import asyncio
import logging
import statistics
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.security import SASLScram256, SASLScram512
from pydantic import ValidationError

from medgov_cli.settings import KafkaClientSettings
from medgov_shared.contracts.envelope import Envelope
from medgov_shared.db.pool import ensure_database

log = structlog.get_logger(__name__)

TOPICS = ("medgov.review.v1", "medgov.consent.v1")
DEFAULT_GROUP = "medgov-analytics-example"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (event_id uuid PRIMARY KEY, processed_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS applications (application_id text PRIMARY KEY, submitted_at timestamptz, "
    "decided_at timestamptz, outcome text)",
    "CREATE TABLE IF NOT EXISTS consent_counts (institution_id text PRIMARY KEY, "
    "granted integer NOT NULL DEFAULT 0, revoked integer NOT NULL DEFAULT 0)",
)


def analytics_database_url(base_url: str) -> str:
    return urlunsplit(urlsplit(base_url)._replace(path="/medgov_analytics"))


async def open_store(database_url: str) -> asyncpg.Pool:
    await ensure_database(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    async with pool.acquire() as connection:
        for statement in SCHEMA:
            await connection.execute(statement)
    return pool


async def apply_event(connection: asyncpg.Connection, envelope: Envelope) -> bool:
    """Record one event's effect on the aggregates; False when it was seen before."""
    first = await connection.fetchval(
        "INSERT INTO inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true", envelope.id
    )
    if not first:
        return False
    data = envelope.data
    match envelope.type:
        case "ApplicationSubmitted":
            await connection.execute(
                "INSERT INTO applications (application_id, submitted_at) VALUES ($1, $2) "
                "ON CONFLICT (application_id) DO UPDATE SET submitted_at = LEAST(applications.submitted_at, $2)",
                data["application_id"], envelope.time,
            )
        case "ApplicationApproved" | "ApplicationRejected":
            outcome = "approved" if envelope.type == "ApplicationApproved" else "rejected"
            await connection.execute(
                "INSERT INTO applications (application_id, decided_at, outcome) VALUES ($1, $2, $3) "
                "ON CONFLICT (application_id) DO UPDATE SET decided_at = $2, outcome = $3",
                data["application_id"], envelope.time, outcome,
            )
        case "ConsentGranted" | "ConsentRevoked":
            column = "granted" if envelope.type == "ConsentGranted" else "revoked"
            await connection.execute(
                f"INSERT INTO consent_counts (institution_id, {column}) VALUES ($1, 1) "
                f"ON CONFLICT (institution_id) DO UPDATE SET {column} = consent_counts.{column} + 1",
                data["institution_id"],
            )
    return True


async def figures(pool: asyncpg.Pool) -> dict:
    """The aggregates the subscriber maintains, as plain data."""
    weeks = await pool.fetch(
        "SELECT to_char(submitted_at, 'IYYY-\"W\"IW') AS week, count(*) AS applications FROM applications "
        "WHERE submitted_at IS NOT NULL GROUP BY 1 ORDER BY 1"
    )
    durations = await pool.fetch(
        "SELECT extract(epoch FROM decided_at - submitted_at) / 86400.0 AS days FROM applications "
        "WHERE decided_at IS NOT NULL AND submitted_at IS NOT NULL"
    )
    consents = await pool.fetch("SELECT institution_id, granted, revoked FROM consent_counts ORDER BY 1")
    days = [float(row["days"]) for row in durations]
    return {
        "applications_per_week": {row["week"]: row["applications"] for row in weeks},
        "median_decision_days": round(statistics.median(days), 2) if days else None,
        "opt_out_rate": {
            row["institution_id"]: round(row["revoked"] / row["granted"], 4) if row["granted"] else None
            for row in consents
        },
    }


def broker_for(kafka: KafkaClientSettings) -> KafkaBroker:
    """A FastStream broker with the same authentication as the publisher (SCRAM over TLS when configured)."""
    security = None
    if kafka.kafka_security_protocol.startswith("SASL"):
        options = kafka.client_options()
        scram = SASLScram512 if kafka.kafka_sasl_mechanism == "SCRAM-SHA-512" else SASLScram256
        security = scram(options["sasl_plain_username"], options["sasl_plain_password"],
                         ssl_context=options.get("ssl_context"), use_ssl=kafka.kafka_security_protocol == "SASL_SSL")
    # FastStream logs "Received" and "Processed" for every message at the broker's level.
    # At debug, these two lines per event stay out of the output, and errors keep their own level.
    return KafkaBroker(kafka.kafka_bootstrap_servers, security=security, log_level=logging.DEBUG)


def build_app(broker: KafkaBroker, pool: asyncpg.Pool, group: str = DEFAULT_GROUP) -> FastStream:
    @broker.subscriber(*TOPICS, group_id=group, auto_offset_reset="earliest", ack_policy=AckPolicy.MANUAL)
    async def on_event(message: KafkaMessage) -> None:
        # The raw bytes, not FastStream's decoded body: the envelope is validated here.
        try:
            envelope = Envelope.from_json(message.body)
        except (ValidationError, ValueError):
            log.warning("skipping a message that is not a CloudEvent", topic=message.raw_message.topic)
            await message.ack()
            return
        delay = 0.5
        while True:
            try:
                async with pool.acquire() as connection, connection.transaction():
                    await apply_event(connection, envelope)
                break
            except (asyncpg.PostgresConnectionError, OSError) as error:
                log.warning("analytics store unreachable; retrying", error=str(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        await message.ack()

    return FastStream(broker)


async def run_subscriber(database_url: str | None, *, once: bool = False, group: str = DEFAULT_GROUP) -> dict:
    import os

    kafka = KafkaClientSettings()
    base = database_url or os.environ.get("DATABASE_URL")
    if not base:
        raise SystemExit("set DATABASE_URL or pass --database-url for the analytics store")
    pool = await open_store(analytics_database_url(base) if not database_url else database_url)
    broker = broker_for(kafka)
    app = build_app(broker, pool, group)
    try:
        if once:
            await broker.start()
            previous = -1
            while True:  # caught up when two consecutive reads see the same count
                await asyncio.sleep(2)
                count = await pool.fetchval("SELECT count(*) FROM inbox")
                if count == previous:
                    break
                previous = count
            await broker.stop()
        else:
            await app.run()
        result = await figures(pool)
        print(result)
        return result
    finally:
        await pool.close()
