"""The consumer's parse step, callable without a broker or a database."""

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


def consumer_record(record: FuzzRecord) -> ConsumerRecord:
    size = len(record.value) if record.value is not None else 0
    return ConsumerRecord(record.topic, 0, 0, 0, 0, b"key", record.value, None, 3, size, [])
