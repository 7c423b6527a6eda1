"""Dead-letter records: the original message plus the reason in headers."""

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from medgov_shared.contracts.guards import redact_personal_data
from medgov_shared.contracts.registry import dlq_topic

# Header names on every dead-letter record; operators' replay tooling reads them.
REASON = "medgov-dlq-reason"
ERROR = "medgov-dlq-error"
ORIGINAL_TOPIC = "medgov-dlq-original-topic"
ORIGINAL_PARTITION = "medgov-dlq-original-partition"
ORIGINAL_OFFSET = "medgov-dlq-original-offset"
CONSUMER_GROUP = "medgov-dlq-consumer-group"
ATTEMPTS = "medgov-dlq-attempts"
FAILED_AT = "medgov-dlq-failed-at"
# Header on a replayed record: the topic, partition and offset of the record
# first dead-lettered, as "topic:partition:offset". A dead letter keeps the
# record's own headers, so a replay that fails again still names that record.
REPLAY_OF = "medgov-replay-of"

_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class DeadLetter:
    reason: str  # short machine-readable reason, e.g. invalid_envelope
    error: str  # human-readable message naming the field or cause; never the payload
    attempts: int

    def __post_init__(self) -> None:
        # An error may quote a value from the record, such as an unknown type or a bad
        # dataschema. It goes to the DLQ headers, the dead_letters table and the logs.
        object.__setattr__(self, "error", redact_personal_data(self.error))


async def send_dead_letter(
    producer: AIOKafkaProducer, record: ConsumerRecord, letter: DeadLetter, *, consumer_group: str
) -> None:
    """Publish the original bytes to `<topic>.dlq` and wait for the broker's acknowledgement."""
    original = [(key, value) for key, value in (record.headers or ()) if value is not None]
    headers = original + [
        (REASON, letter.reason.encode()),
        (ERROR, letter.error[:_MAX_ERROR_CHARS].encode("utf-8", "replace")),
        (ORIGINAL_TOPIC, record.topic.encode()),
        (ORIGINAL_PARTITION, str(record.partition).encode()),
        (ORIGINAL_OFFSET, str(record.offset).encode()),
        (CONSUMER_GROUP, consumer_group.encode()),
        (ATTEMPTS, str(letter.attempts).encode()),
        (FAILED_AT, datetime.now(UTC).isoformat().encode()),
    ]
    await producer.send_and_wait(dlq_topic(record.topic), value=record.value, key=record.key, headers=headers)


def headers_dict(headers: list[tuple[str, bytes | None]] | tuple) -> dict[str, str]:
    """Decode headers for display, replacing bytes that are not UTF-8."""
    return {key: (value or b"").decode("utf-8", "replace") for key, value in headers}
