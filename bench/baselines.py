"""Baseline consumers, each run in its own process over a pre-filled topic.

B1 drains the topic with a raw aiokafka getmany loop: the client's ceiling.
B2 adds what every service does first: pydantic validation of each CloudEvent
and its payload through the contracts (including the personal-data guards).
B3 adds the delivery guarantees the services give, written by hand: per poll
batch and partition one asyncpg transaction with set-based inserts of the
inbox rows, the effects and an outbox row per event into the runtime's own
messaging tables, then the offset commit.

All three use the services' batch size and fetch settings, time the events
after the first `--warmup` ones, and print one JSON object on stdout.

Usage: python -m bench.baselines b1|b2|b3 --topic T --warmup W --events N [--database-url URL]
"""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.registry import parse_payload
from medgov_shared.db.messaging_schema import MESSAGING_DDL

# The services' defaults (ServiceSettings.consumer_batch_size and
# medgov_shared.messaging.kafka.consumer_options), so every arm fetches alike.
BATCH_SIZE = 500
CONSUMER_OPTIONS = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "isolation_level": "read_committed",
    "fetch_max_wait_ms": 100,
    "session_timeout_ms": 10_000,
    "heartbeat_interval_ms": 1_000,
}

EFFECTS_DDL = "CREATE TABLE effects (event_id uuid PRIMARY KEY, subject text NOT NULL, sequence bigint)"


@dataclass
class Window:
    """Wall-clock and CPU time between the end of the warm-up and the last timed event."""

    warmup: int
    events: int
    started: tuple[float, float, int] | None = None
    ended: tuple[float, float, int] | None = None

    def observe(self, processed: int) -> None:
        if self.started is None and processed >= self.warmup:
            self.started = (time.perf_counter(), time.process_time(), processed)
        if self.ended is None and processed >= self.warmup + self.events:
            self.ended = (time.perf_counter(), time.process_time(), processed)

    def result(self) -> dict:
        assert self.started is not None and self.ended is not None, "the topic ran out before the timed events ended"
        seconds = self.ended[0] - self.started[0]
        cpu = self.ended[1] - self.started[1]
        timed = self.ended[2] - self.started[2]
        return {
            "timed_events": timed,
            "seconds": round(seconds, 3),
            "events_per_s": round(timed / seconds, 1),
            "cpu_s_per_10k": round(cpu / timed * 10_000, 3),
        }


@dataclass
class Tally:
    """What an arm saw, for the correctness gate."""

    ranges: list[tuple[int, int, int]] = field(default_factory=list)  # partition, first offset, record count
    sequences: list[int] = field(default_factory=list)


async def drain(arm: str, topic: str, warmup: int, events: int, database_url: str | None) -> dict:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    pool = await _prepare_database(database_url) if arm == "b3" else None
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bench-{arm}-{uuid.uuid4().hex[:8]}", **CONSUMER_OPTIONS)
    await consumer.start()
    window = Window(warmup, events)
    tally = Tally()
    processed = 0
    try:
        while processed < warmup + events:
            batches = await consumer.getmany(timeout_ms=500, max_records=BATCH_SIZE)
            for partition, records in batches.items():
                processed += await _consume(arm, consumer, pool, partition, records, tally)
                window.observe(processed)
    finally:
        await consumer.stop()
        if pool is not None:
            await pool.close()
    return {
        "arm": arm,
        "processed": processed,
        **window.result(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "ranges": tally.ranges,
        "sequences": tally.sequences,
    }


async def _consume(
    arm: str,
    consumer: AIOKafkaConsumer,
    pool: asyncpg.Pool | None,
    partition: TopicPartition,
    records: list[ConsumerRecord],
    tally: Tally,
) -> int:
    if arm == "b1":
        tally.ranges.append((partition.partition, records[0].offset, len(records)))
        return len(records)

    parsed = [(record, *_parse(record)) for record in records]
    if arm == "b2":
        tally.sequences.extend(getattr(payload, "sequence", -1) for _, _, payload in parsed)
        return len(parsed)

    assert pool is not None
    async with pool.acquire() as connection, connection.transaction():
        await connection.executemany(
            "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            [(envelope.id, envelope.type, record.topic, record.partition, record.offset) for record, envelope, _ in parsed],
        )
        await connection.executemany(
            "INSERT INTO effects (event_id, subject, sequence) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
            [(envelope.id, envelope.subject, getattr(payload, "sequence", None)) for _, envelope, payload in parsed],
        )
        await connection.executemany(
            "INSERT INTO outbox (event_id, topic, key, event_type, value) VALUES ($1, $2, $3, $4, $5)",
            [(uuid.uuid4(), "bench.b3.out", envelope.subject, "Applied", record.value) for record, envelope, _ in parsed],
        )
    await consumer.commit({partition: records[-1].offset + 1})
    return len(parsed)


def peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over execve,
    # so a child of a large parent would report the parent's peak.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def _parse(record: ConsumerRecord) -> tuple[Envelope, object]:
    envelope = Envelope.from_json(record.value)
    return envelope, parse_payload(envelope, from_json=True)


async def _prepare_database(database_url: str | None) -> asyncpg.Pool:
    if not database_url:
        raise SystemExit("b3 needs --database-url")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    async with pool.acquire() as connection:
        for statement in (*MESSAGING_DDL, EFFECTS_DDL):
            await connection.execute(statement)
    return pool


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one baseline consumer over a pre-filled topic.")
    parser.add_argument("arm", choices=["b1", "b2", "b3"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--warmup", type=int, required=True, help="Events consumed before timing starts.")
    parser.add_argument("--events", type=int, required=True, help="Events timed after the warm-up.")
    parser.add_argument("--database-url", help="Empty database for b3's tables.")
    args = parser.parse_args()
    result = asyncio.run(drain(args.arm, args.topic, args.warmup, args.events, args.database_url))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
