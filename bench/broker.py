"""Kafka side of the benchmark: topics, pre-filling, consumer-group positions and progress."""

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import OffsetAndMetadata

from medgov_shared.contracts.registry import all_topics
from medgov_shared.messaging.topics import topics_with_dead_letters

from bench.workload import BenchEvent

log = structlog.get_logger("bench")


@dataclass(frozen=True)
class Placement:
    """Partition and offset one event was written to, with its sequence number."""

    sequence: int
    partition: int
    offset: int


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1), NewTopic(f"{name}.dlq", 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def ensure_registry_topics(bootstrap: str) -> None:
    """Create the registry's topics and their dead-letter topics where missing, as a service does at start.

    On a new broker the benchmark produces before any service has started.
    """
    wanted = dict(topics_with_dead_letters(all_topics()))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in wanted.items() if name not in existing]
        if missing:
            await admin.create_topics(missing)
    except TopicAlreadyExistsError:
        pass  # a service created some of them at the same moment
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    """Delete topics the benchmark created; a failure is logged, because leftover topics harm no result."""
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(list(names))
    except KafkaError as error:
        log.warning("benchmark topics not deleted; delete them by hand", topics=list(names), error=str(error))
    finally:
        await admin.close()


def new_producer(bootstrap: str) -> AIOKafkaProducer:
    # Idempotent like the services' producers, so a retried batch never
    # duplicates an event and breaks the correctness gate by itself.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )


async def produce(
    bootstrap: str, events: Sequence[BenchEvent], *, topic: str | None = None, partitions: int | None = None
) -> list[Placement]:
    """Send every event (to `topic` instead of its own when given) and return where each one landed.

    With `partitions`, each event goes to a partition chosen from its key
    among the first `partitions` only, so one key still stays in one partition.
    """
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        futures = []
        for event in events:
            partition = _partition_for(event.key, partitions) if partitions else None
            futures.append(
                await producer.send(topic or event.topic, value=event.value, key=event.key, partition=partition)
            )
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Placement(event.sequence, item.partition, item.offset) for event, item in zip(events, metadata, strict=True)]


def _partition_for(key: bytes, partitions: int) -> int:
    from aiokafka.partitioner import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def topics_matching(bootstrap: str, pattern: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    expression = re.compile(pattern)
    return sorted(name for name in names if expression.match(name))


async def topic_census(bootstrap: str, patterns: dict[str, str]) -> dict[str, int]:
    """Count the broker's topics and, per name, those matching its pattern: a service fetches from each one it matches."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    census = {"all": len(names)}
    for label, pattern in patterns.items():
        expression = re.compile(pattern)
        census[label] = sum(1 for name in names if expression.match(name))
    return census


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = []
        for topic in topics:
            numbers = consumer.partitions_for_topic(topic)
            if numbers is None:
                await consumer._client.force_metadata_update()  # noqa: SLF001 - no public call refreshes one topic
                numbers = consumer.partitions_for_topic(topic) or set()
            partitions.extend(TopicPartition(topic, number) for number in sorted(numbers))
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await consumer.stop()


async def start_group_at(bootstrap: str, group_id: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for a group that has no member yet, so its first member starts there."""
    if not offsets:
        return
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({partition: OffsetAndMetadata(offset, "") for partition, offset in offsets.items()})
    finally:
        await consumer.stop()


async def committed_offsets(admin: AIOKafkaAdminClient, group_id: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
    """Return the group's committed offset per partition; a partition without a commit is left out."""
    offsets = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
    return {partition: item.offset for partition, item in offsets.items() if item.offset >= 0}
