"""Reading what the services published during one scenario run."""

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field

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


# Data fields that name an entity the scenario created.
ENTITY_FIELDS = ("dataset_id", "application_id", "award_id", "reference_id")


@dataclass
class ScenarioScope:
    """Ids that tie an event to this scenario run rather than to another producer on the shared topics.

    An event belongs to the run when it names one of the run's datasets,
    applications or awards, or one of its patients' pseudonyms. The
    pseudonyms come from keys drawn for this run. An event also belongs to
    the run when its causation chain leads back to a command the run sent.
    """

    entity_ids: set[str] = field(default_factory=set)
    subjects: set[str] = field(default_factory=set)
    command_ids: set[uuid.UUID] = field(default_factory=set)

    def mentions(self, event: Envelope) -> bool:
        data = event.data
        if event.subject in self.entity_ids or event.subject in self.subjects:
            return True
        if any(data.get(name) in self.entity_ids for name in ENTITY_FIELDS):
            return True
        return data.get("subject") in self.subjects


class EventTail:
    """Follows the four service topics from given offsets and keeps every event in memory.

    `events` contains everything read. `owned()`, `of_type()` and `counts()`
    see only the events of this run, as `scope` defines them, because tests
    and other tools publish to the same topics.
    """

    def __init__(self, options: dict, start: dict[TopicPartition, int]) -> None:
        self.options = options
        self.start = start
        self.events: list[Envelope] = []
        self.scope = ScenarioScope()
        # Positions in `events`, not event ids: the grants service derives ids
        # from the fund and milestone ids, so two grants instances publish
        # FundAllocated under the same id.
        self._owned: set[int] = set()
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

    def own(self, event: Envelope) -> None:
        """Count one event as this run's although the scope cannot tell (e.g. the fund allocation at start)."""
        self._owned.add(next(index for index, item in enumerate(self.events) if item is event))

    def owned(self) -> list[Envelope]:
        """Return this run's events in arrival order; the set only grows, as the scope only grows."""
        caused_by_run = self.scope.command_ids | {self.events[index].id for index in self._owned}
        changed = True
        while changed:
            # An effect may arrive before its cause (they travel on different topics), so repeat until stable.
            changed = False
            for index, event in enumerate(self.events):
                if index in self._owned:
                    continue
                if self.scope.mentions(event) or event.causationid in caused_by_run:
                    self._owned.add(index)
                    caused_by_run.add(event.id)
                    changed = True
        return [event for index, event in enumerate(self.events) if index in self._owned]

    def of_type(self, event_type: str) -> list[Envelope]:
        return [event for event in self.owned() if event.type == event_type]

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(event.type for event in self.owned()).items()))

    async def wait_for(self, predicate, *, timeout_s: float, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
            await asyncio.sleep(0.2)
