"""Private Kafka topics for the fuzz tests and the records sent to them."""

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.inbound import RevokeConsent
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.registry import dlq_topic

from .parsing import record_key


def sentinel(institution: str) -> bytes:
    """A valid RevokeConsent from the test institution; the consent service rejects it as unregistered."""
    command = RevokeConsent(
        institution_id=institution,
        subject=pseudonymize("fuzz-sentinel", region="daegu", key=b"f" * 32),
        consent_id="cns-fuzz-sentinel",
        effective_at=datetime.now(UTC),
    )
    return wrap(command, source=f"medgov/hospital/{institution}", region="daegu").to_json()


async def create_topic(bootstrap: str, name: str) -> None:
    """Create `name` and its dead-letter topic with one partition each, so records keep their order."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1), NewTopic(dlq_topic(name), 1, 1)])
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    """Send raw values in order; a None value is a tombstone."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, max_request_size=2_000_000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=record_key(value))
    finally:
        await producer.stop()
