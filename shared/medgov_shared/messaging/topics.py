"""Creating the topics a service needs when no operator (Strimzi) manages them."""

import structlog
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
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(name, partitions, 1) for name, partitions in wanted.items() if name not in existing]
        if not missing:
            return
        try:
            await admin.create_topics(missing)
        except TopicAlreadyExistsError:
            pass  # another service created them at the same moment
        log.info("topics created", count=len(missing))
    finally:
        await admin.close()
