"""An inbound event that claims another institution than its topic is dead-lettered, not applied."""

from datetime import UTC, datetime

import pytest

from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.inbound import RevokeConsent
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.messaging import dlq
from medgov_shared.messaging.consumer import EventConsumer
from medgov_shared.messaging.kafka import producer_options
from medgov_shared.messaging.outbox import Outbox
from medgov_shared.clock import SystemClock
from medgov_shared.messaging.topics import ensure_topics
from medgov_shared.settings import ServiceSettings
from medgov_shared.testing.services import unique_name, wait_until

pytestmark = pytest.mark.integration


class GuardSettings(ServiceSettings):
    service_name = "consent"


def revocation(institution_id: str) -> RevokeConsent:
    return RevokeConsent(
        institution_id=institution_id,
        subject=pseudonymize("p-1", region="daegu", key=b"k" * 32),
        consent_id="c-1",
        effective_at=datetime.now(UTC),
    )


async def test_claimed_institution_must_match_topic(infra, settings_factory):
    import asyncpg
    from aiokafka import AIOKafkaProducer

    from medgov_shared.db.pool import create_pool, ensure_database

    settings = settings_factory(GuardSettings, kafka_group_id=unique_name("guard"))
    await ensure_topics(settings)
    await ensure_database(settings.database_url)
    connection = await asyncpg.connect(settings.database_url)
    from medgov_shared.db.messaging_schema import MESSAGING_DDL

    for statement in MESSAGING_DDL:
        await connection.execute(statement)
    await connection.close()

    marker = unique_name("mismatch")
    wrong_source = wrap(revocation("knuh").model_copy(update={"consent_id": marker}),
                        source="medgov/hospital/dsmc", region="daegu")
    wrong_field = wrap(revocation("dsmc").model_copy(update={"consent_id": marker}),
                       source="medgov/hospital/knuh", region="daegu")
    applied = []

    async def handler(context, payload):
        applied.append(payload.consent_id)

    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    pool = await create_pool(settings.database_url)
    consumer = EventConsumer(
        settings=settings, pool=pool, outbox=Outbox(source="medgov/consent", region="daegu",
                                                   topic="medgov.consent.v1", max_message_bytes=1_000_000),
        clock=SystemClock(), handlers={"RevokeConsent": handler}, pattern=r"^medgov\.inbound\.knuh\.v1$",
        dlq_producer=producer,
    )
    try:
        for envelope in (wrong_source, wrong_field):
            await producer.send_and_wait("medgov.inbound.knuh.v1", envelope.to_json(), key=envelope.subject.encode())
        await consumer.start()
        import asyncio

        task = asyncio.create_task(consumer.run())
        await wait_until(lambda: pool.fetchval("SELECT count(*) >= 2 FROM dead_letters WHERE event_id = ANY($1)",
                                               [str(wrong_source.id), str(wrong_field.id)]),
                         timeout_s=30, message="both events dead-lettered")
        consumer.request_stop()
        await task
        reasons = await pool.fetch("SELECT reason, error FROM dead_letters WHERE event_id = ANY($1)",
                                   [str(wrong_source.id), str(wrong_field.id)])
    finally:
        await consumer.close()
        await producer.stop()
        await pool.close()

    assert marker not in applied
    assert {row["reason"] for row in reasons} == {"institution_mismatch"}
    assert any("does not match topic 'medgov.inbound.knuh.v1'" in row["error"] for row in reasons)
    assert dlq.REASON == "medgov-dlq-reason"
