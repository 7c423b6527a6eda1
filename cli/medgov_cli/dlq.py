"""Dead-letter inspection and replay for operators."""

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from medgov_cli.settings import KafkaClientSettings
from medgov_shared.messaging import dlq


async def _read_all(topic: str) -> list:
    settings = KafkaClientSettings()
    consumer = AIOKafkaConsumer(topic, **settings.client_options(), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
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
    records = await _read_all(topic)
    table = Table(title=f"{len(records)} dead letters in {topic}")
    for column in ("offset", "from", "reason", "error"):
        table.add_column(column)
    for record in records:
        headers = dlq.headers_dict(record.headers)
        origin = f"{headers.get(dlq.ORIGINAL_TOPIC)}[{headers.get(dlq.ORIGINAL_PARTITION)}]@{headers.get(dlq.ORIGINAL_OFFSET)}"
        table.add_row(str(record.offset), origin, headers.get(dlq.REASON, ""), headers.get(dlq.ERROR, ""))
    console.print(table)


async def replay(topic: str, reason: str | None) -> int:
    """Publish each record's original bytes to its original topic; consumers deduplicate by event id."""
    records = await _read_all(topic)
    settings = KafkaClientSettings()
    producer = AIOKafkaProducer(**settings.client_options(), enable_idempotence=True, acks="all")
    await producer.start()
    count = 0
    try:
        for record in records:
            headers = dlq.headers_dict(record.headers)
            if reason and headers.get(dlq.REASON) != reason:
                continue
            original = headers.get(dlq.ORIGINAL_TOPIC) or topic.removesuffix(".dlq")
            kept = [(k, v) for k, v in record.headers if not k.startswith("medgov-dlq-")]
            await producer.send_and_wait(original, value=record.value, key=record.key, headers=kept)
            count += 1
    finally:
        await producer.stop()
    return count
