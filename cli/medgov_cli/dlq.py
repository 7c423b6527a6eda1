"""Dead-letter inspection and replay for operators."""

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medgov_cli.settings import BrokerUnavailable, KafkaClientSettings
from medgov_shared.messaging import dlq

DLQ_SUFFIX = ".dlq"
LISTED_TOPICS = 8  # dead-letter topics named in a "not found" message


async def _start_consumer(settings: KafkaClientSettings, topic: str) -> AIOKafkaConsumer:
    """Start a group-less consumer on `topic`; an unreachable broker or a missing topic raises with the reason."""
    consumer = AIOKafkaConsumer(**settings.client_options(), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        await consumer.start()
    except KafkaConnectionError:
        await consumer.stop()
        raise BrokerUnavailable(f"cannot reach the Kafka broker at {settings.kafka_bootstrap_servers}; "
                                "check MEDGOV_KAFKA_BOOTSTRAP_SERVERS (or KAFKA_BOOTSTRAP_SERVERS) and that the broker runs") from None
    existing = await consumer.topics()
    if topic not in existing:
        await consumer.stop()
        raise LookupError(f"topic {topic} not found on the Kafka broker at {settings.kafka_bootstrap_servers}; "
                          f"dead-letter topics there: {_listing(existing)}")
    consumer.subscribe([topic])
    return consumer


def _listing(topics: set[str]) -> str:
    known = sorted(name for name in topics if name.endswith(DLQ_SUFFIX))
    if not known:
        return "none"
    more = f" and {len(known) - LISTED_TOPICS} more" if len(known) > LISTED_TOPICS else ""
    return ", ".join(known[:LISTED_TOPICS]) + more


async def _read_all(topic: str) -> list:
    settings = KafkaClientSettings()
    consumer = await _start_consumer(settings, topic)
    records: list = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            if not batch:
                break
            for items in batch.values():
                records.extend(items)
    finally:
        await consumer.stop()
    return records


async def show(topic: str, console: Console) -> None:
    _require_dead_letter_topic(topic)
    records = await _read_all(topic)
    table = Table(title=f"{len(records)} dead letters in {topic}")
    # Each consumer group that could not apply a record dead-letters its own copy, so "group" distinguishes them.
    for column in ("offset", "from", "group", "reason", "error"):
        table.add_column(column)
    for record in records:
        headers = dlq.headers_dict(record.headers)
        origin = f"{headers.get(dlq.ORIGINAL_TOPIC)}[{headers.get(dlq.ORIGINAL_PARTITION)}]@{headers.get(dlq.ORIGINAL_OFFSET)}"
        # Text cells, because an error quotes what the sender wrote (an event type,
        # a pattern such as [a-z]), which Rich would otherwise read as markup.
        cells = (str(record.offset), origin, headers.get(dlq.CONSUMER_GROUP, ""), headers.get(dlq.REASON, ""),
                 headers.get(dlq.ERROR, ""))
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


def _require_dead_letter_topic(topic: str) -> None:
    if not topic.endswith(".dlq"):
        raise LookupError(
            f"{topic!r} is not a dead-letter topic; give a name ending in '.dlq', such as medgov.inbound.knuh.v1.dlq"
        )


async def replay(topic: str, reason: str | None) -> tuple[int, int]:
    """Publish each original record once to its original topic; return how many were sent and how many copies skipped.

    Every consumer group that cannot apply a record dead-letters its own copy,
    so a bad record on an inbound topic, which review, catalog and consent all
    read, has a dead letter from each of them. Only the first dead letter of
    each original topic, partition and offset is sent. A replayed record
    names its first origin in a header, so that when it fails again, its new
    dead letters count as copies of the first ones and a later replay sends
    it once, not once per earlier replay. Consumer groups that already
    applied the event skip the replayed record by its event id.
    """
    # The original topic of a record without the header is the name without '.dlq', which
    # for a service topic is the topic itself: every event would be published a second time.
    _require_dead_letter_topic(topic)
    letters = [(record, dlq.headers_dict(record.headers)) for record in await _read_all(topic)]
    present = {headers.get(dlq.REASON, "") for _, headers in letters}
    if reason and letters and reason not in present:
        # A misspelt reason would otherwise look like a topic with nothing to replay.
        raise LookupError(f"no dead letter in {topic} has reason {reason!r}; reasons there: {', '.join(sorted(present))}")
    settings = KafkaClientSettings()
    producer = AIOKafkaProducer(**settings.client_options(), enable_idempotence=True, acks="all")
    await producer.start()
    replayed = 0
    duplicates = 0
    sent_origins: set[str] = set()
    try:
        for record, headers in letters:
            if reason and headers.get(dlq.REASON) != reason:
                continue
            original = headers.get(dlq.ORIGINAL_TOPIC) or topic.removesuffix(".dlq")
            partition, offset = headers.get(dlq.ORIGINAL_PARTITION), headers.get(dlq.ORIGINAL_OFFSET)
            first_origin = headers.get(dlq.REPLAY_OF) or (f"{original}:{partition}:{offset}" if partition and offset else None)
            # A dead letter without its original partition and offset cannot be
            # matched with its copies, so it is sent every time.
            if first_origin is not None:
                if first_origin in sent_origins:
                    duplicates += 1
                    continue
                sent_origins.add(first_origin)
            forwarded = [(k, v) for k, v in record.headers if not k.startswith("medgov-dlq-") and k != dlq.REPLAY_OF]
            if first_origin is not None:
                forwarded.append((dlq.REPLAY_OF, first_origin.encode()))
            await producer.send_and_wait(original, value=record.value, key=record.key, headers=forwarded)
            replayed += 1
    finally:
        await producer.stop()
    return replayed, duplicates
