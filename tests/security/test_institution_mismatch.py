"""An inbound event that claims another institution than its topic is dead-lettered, not applied."""

import uuid
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


async def dead_letters_of(settings_factory, envelopes) -> tuple[list, list[str]]:
    """Send `envelopes` to knuh's inbound topic through a consumer of it; return their dead letters and the applied consent ids."""
    import asyncio

    import asyncpg
    from aiokafka import AIOKafkaProducer

    from medgov_shared.db.messaging_schema import MESSAGING_DDL
    from medgov_shared.db.pool import create_pool, ensure_database

    settings = settings_factory(GuardSettings, kafka_group_id=unique_name("guard"))
    await ensure_topics(settings)
    await ensure_database(settings.database_url)
    connection = await asyncpg.connect(settings.database_url)
    for statement in MESSAGING_DDL:
        await connection.execute(statement)
    await connection.close()

    applied = []

    async def handler(context, payload):
        applied.append(payload.consent_id)

    event_ids = [str(envelope.id) for envelope in envelopes]
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
        for envelope in envelopes:
            await producer.send_and_wait("medgov.inbound.knuh.v1", envelope.to_json(), key=envelope.subject.encode())
        await consumer.start()
        task = asyncio.create_task(consumer.run())
        await wait_until(lambda: pool.fetchval("SELECT count(*) >= $2 FROM dead_letters WHERE event_id = ANY($1)",
                                               event_ids, len(event_ids)),
                         timeout_s=30, message="every event dead-lettered")
        consumer.request_stop()
        await task
        reasons = await pool.fetch("SELECT reason, error FROM dead_letters WHERE event_id = ANY($1)", event_ids)
    finally:
        await consumer.close()
        await producer.stop()
        await pool.close()
    return reasons, applied


async def test_claimed_institution_must_match_topic(infra, settings_factory):
    marker = unique_name("mismatch")
    wrong_source = wrap(revocation("knuh").model_copy(update={"consent_id": marker}),
                        source="medgov/hospital/dsmc", region="daegu")
    wrong_field = wrap(revocation("dsmc").model_copy(update={"consent_id": marker}),
                       source="medgov/hospital/knuh", region="daegu")

    reasons, applied = await dead_letters_of(settings_factory, [wrong_source, wrong_field])

    assert marker not in applied
    assert {row["reason"] for row in reasons} == {"institution_mismatch"}
    assert any("does not match topic 'medgov.inbound.knuh.v1'" in row["error"] for row in reasons)
    assert dlq.REASON == "medgov-dlq-reason"


async def test_region_must_match_hospital(infra, settings_factory):
    marker = unique_name("region")
    # knuh is a Daegu hospital, so an event it sends cannot come from Daejeon.
    wrong_region = wrap(revocation("knuh").model_copy(update={"consent_id": marker}),
                        source="medgov/hospital/knuh", region="daejeon")

    reasons, applied = await dead_letters_of(settings_factory, [wrong_region])

    assert marker not in applied
    assert [row["reason"] for row in reasons] == ["region_mismatch"]
    assert "event region 'daejeon' does not match topic 'medgov.inbound.knuh.v1'" in reasons[0]["error"]
    assert "knuh is in region 'daegu'" in reasons[0]["error"]


async def test_unknown_command_dead_lettered(infra, settings_factory):
    marker = unique_name("unknown")
    known = wrap(revocation("knuh").model_copy(update={"consent_id": marker}), source="medgov/hospital/knuh", region="daegu")
    unknown_type = known.model_copy(update={"id": uuid.uuid4(), "type": "DeleteEverything"})
    unknown_version = known.model_copy(update={"id": uuid.uuid4(), "dataschema": "urn:medgov:events:RevokeConsent:v9"})
    # A service's own event forged by a hospital: services pick handlers by type alone.
    service_event = known.model_copy(update={"id": uuid.uuid4(), "type": "DatasetWithdrawn",
                                              "dataschema": "urn:medgov:events:DatasetWithdrawn:v1"})

    reasons, applied = await dead_letters_of(settings_factory, [unknown_type, unknown_version, service_event])

    assert marker not in applied
    assert [row["reason"] for row in reasons] == ["unknown_command"] * 3
    errors = " | ".join(row["error"] for row in reasons)
    assert "'DeleteEverything' version 1 is not a command a hospital may send" in errors
    assert "'RevokeConsent' version 9 is not a command" in errors
    assert "'DatasetWithdrawn' version 1 is not a command" in errors
    assert "takes RegisterDataset v1, RecordConsent v1, RevokeConsent v1, SubmitApplication v1" in errors
