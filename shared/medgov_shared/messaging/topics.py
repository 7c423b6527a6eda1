"""Creating the topics a service needs when no operator (Strimzi) manages them."""

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from medgov_shared.contracts.registry import Topic, all_topics, dlq_topic
from medgov_shared.messaging.kafka import client_options
from medgov_shared.settings import ServiceSettings

log = structlog.get_logger(__name__)


def topics_with_dead_letters(topics: tuple[Topic, ...]) -> list[tuple[str, int]]:
    names: list[tuple[str, int]] = []
    for topic in topics:
        names.append((topic.name, topic.partitions))
        names.append((dlq_topic(topic.name), 1))
    return names


async def ensure_topics(settings: ServiceSettings, extra: list[tuple[str, int]] | None = None) -> None:
    """Create every registry topic and its dead-letter topic that does not exist yet."""
    wanted = dict(topics_with_dead_letters(all_topics()))
    wanted.update(dict(extra or []))
    await create_missing_topics(settings, wanted)


async def create_missing_topics(settings: ServiceSettings, partitions_by_name: dict[str, int]) -> None:
    """Create those of the named topics that do not exist yet, with their partition count and one replica each."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in partitions_by_name.items() if name not in existing]
        if not missing:
            return
        try:
            await admin.create_topics(missing)
        except TopicAlreadyExistsError:
            pass  # another service created them at the same moment
        log.info("topics created", count=len(missing))
    finally:
        await admin.close()


async def start_groups_at_end(options: dict, groups: list[str], prefix: str = "medgov.") -> None:
    """Commit each new consumer group at the current end of every topic whose name starts with `prefix`.

    A new group with auto_offset_reset=earliest reads every topic from its
    start; a fresh service instance for a demo run or a test starts from here
    instead, so it never replays what earlier runs published. Topics created
    later are still read from their start.
    """
    for group in groups:
        consumer = AIOKafkaConsumer(**options, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - see topics created a moment ago
            partitions = [
                TopicPartition(topic, partition)
                for topic in await consumer.topics() if topic.startswith(prefix)
                for partition in consumer.partitions_for_topic(topic) or ()
            ]
            if not partitions:
                continue
            ends = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            await consumer.commit(ends)
        finally:
            await consumer.stop()
