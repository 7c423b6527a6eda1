"""Transactional outbox: events are written in the same transaction as the state change."""

import uuid
from datetime import datetime

import asyncpg
import orjson

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.observability.tracing import inject_headers


class EventTooLarge(ValueError):
    """The serialized event exceeds the broker's message size limit; the transaction must not commit."""


class Outbox:
    """Writes events of one service into its outbox table."""

    def __init__(self, *, source: str, region: str, topic: str, max_message_bytes: int) -> None:
        self.source = source
        self.region = region
        self.topic = topic
        self.max_message_bytes = max_message_bytes

    async def add(
        self,
        connection: asyncpg.Connection,
        payload: EventPayload,
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
        topic: str | None = None,
        region: str | None = None,
    ) -> Envelope:
        """Insert one event; call inside the transaction that makes the state change.

        The per-key advisory lock makes rows of one key commit in position
        order, so the relay (which reads by position) never publishes a later
        event of a key before an earlier one that was still uncommitted.
        """
        envelope = wrap(
            payload,
            source=self.source,
            region=region or self.region,
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=event_id,
            time=time,
        )
        value = envelope.to_json()
        if len(value) > self.max_message_bytes:
            raise EventTooLarge(
                f"{payload.event_type} for key {payload.key!r} is {len(value)} bytes, over the "
                f"{self.max_message_bytes}-byte limit of the broker; split it into smaller events"
            )
        await connection.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", envelope.subject)
        await connection.execute(
            "INSERT INTO outbox (event_id, topic, key, event_type, value, headers) VALUES ($1, $2, $3, $4, $5, $6)",
            envelope.id,
            topic or self.topic,
            envelope.subject,
            envelope.type,
            value,
            inject_headers(),
        )
        return envelope


def decode_value(value: bytes) -> dict:
    return orjson.loads(value)
