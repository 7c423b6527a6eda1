"""Baseline consumers for the benchmark, each run in its own process.

B1 drains the topic with a raw aiokafka getmany loop (the client's ceiling).
B2 adds pydantic validation of each CloudEvent and its payload.
B3 adds what the services guarantee, written by hand: per poll batch one
asyncpg transaction with the inbox insert, the effect and an outbox insert,
then the offset commit.

Usage: python bench/baselines.py b1|b2|b3 TOPIC COUNT [DATABASE_URL]
Prints one JSON line: events, seconds, events_per_s, cpu_s_per_10k, peak_rss_mb.
"""

import asyncio
import json
import resource
import sys
import time
import uuid

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer

from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.registry import parse_payload

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS inbox (event_id uuid PRIMARY KEY, topic text, kafka_partition int, kafka_offset bigint)",
    "CREATE TABLE IF NOT EXISTS effects (event_id uuid PRIMARY KEY, subject text NOT NULL, sequence bigint)",
    "CREATE TABLE IF NOT EXISTS outbox (position bigserial PRIMARY KEY, event_id uuid UNIQUE, value bytea)",
)


async def drain(arm: str, topic: str, count: int, database_url: str | None, bootstrap: str) -> dict:
    pool = None
    if arm == "b3":
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        async with pool.acquire() as connection:
            for statement in SCHEMA:
                await connection.execute(statement)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bench-{arm}-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = None
    cpu_started = None
    try:
        while seen < count:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            if started is None and batches:
                started, cpu_started = time.perf_counter(), time.process_time()
            for partition, records in batches.items():
                if arm == "b1":
                    seen += len(records)
                    continue
                parsed = []
                for record in records:
                    envelope = Envelope.from_json(record.value)
                    payload = parse_payload(envelope)
                    parsed.append((record, envelope, payload))
                if arm == "b3":
                    assert pool is not None
                    async with pool.acquire() as connection, connection.transaction():
                        await connection.executemany(
                            "INSERT INTO inbox VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                            [(e.id, r.topic, r.partition, r.offset) for r, e, _ in parsed],
                        )
                        await connection.executemany(
                            "INSERT INTO effects VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                            [(e.id, p.subject, getattr(p, "sequence", None)) for _, e, p in parsed],
                        )
                        await connection.executemany(
                            "INSERT INTO outbox (event_id, value) VALUES ($1, $2)",
                            [(uuid.uuid4(), orjson.dumps({"caused_by": str(e.id)})) for _, e, _ in parsed],
                        )
                    await consumer.commit({partition: records[-1].offset + 1})
                seen += len(parsed)
    finally:
        await consumer.stop()
        if pool is not None:
            await pool.close()
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - (cpu_started or time.process_time())
    return {
        "arm": arm,
        "events": seen,
        "seconds": round(elapsed, 3),
        "events_per_s": round(seen / elapsed, 1) if elapsed else None,
        "cpu_s_per_10k": round(cpu / seen * 10_000, 3) if seen else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    import os

    arm, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    database = sys.argv[4] if len(sys.argv) > 4 else None
    result = asyncio.run(drain(arm, topic, count, database, os.environ["KAFKA_BOOTSTRAP_SERVERS"]))
    print(json.dumps(result))
