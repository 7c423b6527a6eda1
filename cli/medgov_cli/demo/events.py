"""Reading what the services published during one scenario run."""

import asyncio
from collections import Counter

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.registry import SERVICE_TOPICS, all_topics
from medgov_shared.messaging.topics import topics_with_dead_letters

SERVICE_TOPIC_NAMES = tuple(topic.name for topic in SERVICE_TOPICS)


async def ensure_all_topics(options: dict) -> None:
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in topics_with_dead_letters(all_topics())
                   if name not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - topics may have just been created
    partitions = []
    for topic in topics:
        for partition in consumer.partitions_for_topic(topic) or ():
            partitions.append(TopicPartition(topic, partition))
    return partitions


async def end_offsets(options: dict, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**options, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets(await _partitions(consumer, topics))
    finally:
        await consumer.stop()


class EventTail:
    """Follows the four service topics from given offsets and keeps every event in memory."""

    def __init__(self, options: dict, start: dict[TopicPartition, int]) -> None:
        self.options = options
        self.start = start
        self.events: list[Envelope] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "EventTail":
        consumer = AIOKafkaConsumer(**self.options, enable_auto_commit=False)
        await consumer.start()
        consumer.assign(list(self.start))
        for partition, offset in self.start.items():
            consumer.seek(partition, offset)
        self._task = asyncio.create_task(self._follow(consumer))
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for record in records:
                        self.events.append(Envelope.from_json(record.value))
        finally:
            await consumer.stop()

    def of_type(self, event_type: str) -> list[Envelope]:
        return [event for event in self.events if event.type == event_type]

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(event.type for event in self.events).items()))

    async def wait_for(self, predicate, *, timeout_s: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            await asyncio.sleep(0.2)
