"""The consumer's parse step, callable without a broker or a database."""

import orjson
from aiokafka.structs import ConsumerRecord

from medgov_shared.messaging.consumer import EventConsumer
from medgov_shared.settings import ServiceSettings

from .event_strategies import FuzzRecord


class ParseSettings(ServiceSettings):
    service_name = "consent"


def offline_consumer() -> EventConsumer:
    """Return a consumer whose parse step works; it has no pool, broker or producer and never starts."""
    settings = ParseSettings(
        region="daegu",
        database_url="postgresql://fuzz@127.0.0.1:1/postgres",
        kafka_bootstrap_servers="127.0.0.1:1",
        jwt_secret="fuzz-parse-only-" + "x" * 16,
    )
    return EventConsumer(
        settings=settings, pool=None, outbox=None, clock=None, handlers={}, pattern="^unused$",  # type: ignore[arg-type]
        dlq_producer=None,  # type: ignore[arg-type]
    )


CONSUMER = offline_consumer()


def record_key(value: bytes | None) -> bytes:
    """Return the key a hospital gives the record: its envelope subject where there is one, as the consumer expects."""
    try:
        subject = orjson.loads(value).get("subject") if value else None
    except (orjson.JSONDecodeError, AttributeError):
        subject = None
    return subject.encode() if isinstance(subject, str) else b"fuzz"


def consumer_record(record: FuzzRecord) -> ConsumerRecord:
    size = len(record.value) if record.value is not None else 0
    return ConsumerRecord(record.topic, 0, 0, 0, 0, record_key(record.value), record.value, None, 3, size, [])
