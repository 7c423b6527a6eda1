"""Transactional outbox: events are written in the same transaction as the state change."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.observability.tracing import inject_headers


class EventTooLarge(ValueError):
    """The serialized event exceeds the broker's message size limit; the transaction must not commit."""


@dataclass(frozen=True)
class StagedEvent:
    """One serialized event waiting to be inserted into the outbox, with the trace context of its emitter."""

    envelope: Envelope
    topic: str
    value: bytes
    headers: dict[str, str]


# Takes the per-key locks in sorted key order, so two transactions that lock
# overlapping sets of keys do not deadlock each other.
_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(hashtextextended(key, 0)) "
    "FROM (SELECT DISTINCT key FROM unnest($1::text[]) AS key ORDER BY key) AS keys"
)

# One statement for the whole batch: the insert trigger sends one NOTIFY, and
# ORDER BY ordinality hands out the positions in the order the events were emitted.
_INSERT_MANY = (
    "INSERT INTO outbox (event_id, topic, key, event_type, value, headers) "
    "SELECT event_id, topic, key, event_type, value, headers::jsonb "
    "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[]) "
    "WITH ORDINALITY AS staged (event_id, topic, key, event_type, value, headers, emitted) "
    "ORDER BY emitted"
)


class Outbox:
    """Writes events of one service into its outbox table."""

    def __init__(self, *, source: str, region: str, topic: str, max_message_bytes: int) -> None:
        self.source = source
        self.region = region
        self.topic = topic
        self.max_message_bytes = max_message_bytes

    def stage(
        self,
        payload: EventPayload,
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
        topic: str | None = None,
        region: str | None = None,
        trace_headers: dict[str, str] | None = None,
    ) -> StagedEvent:
        """Wrap and serialize one event without writing it; raise EventTooLarge when the broker would reject it.

        `trace_headers` defaults to the current trace context.
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
        return self._serialized(envelope, payload, topic or self.topic, inject_headers() if trace_headers is None else trace_headers)

    def stage_like(self, template: StagedEvent, payload: EventPayload, *, event_id: uuid.UUID | None = None) -> StagedEvent:
        """Stage `payload` with the envelope of `template` but its own id, key, type and data.

        It costs a fraction of `stage`, because the envelope is copied instead of
        validated again: every value that differs comes from a validated payload
        or is a new id. Time, flow ids, source, region, topic and trace context
        are those of the template.
        """
        envelope = template.envelope.model_copy(
            update={
                "id": event_id or uuid.uuid4(),
                "type": payload.event_type,
                "subject": payload.key,
                "dataschema": payload.dataschema(),
                "data": payload.model_dump(mode="json"),
            }
        )
        return self._serialized(envelope, payload, template.topic, template.headers)

    def _serialized(self, envelope: Envelope, payload: EventPayload, topic: str, headers: dict[str, str]) -> StagedEvent:
        value = envelope.to_json()
        if len(value) > self.max_message_bytes:
            raise EventTooLarge(
                f"{payload.event_type} for key {payload.key!r} is {len(value)} bytes, over the "
                f"{self.max_message_bytes}-byte limit of the broker; split it into smaller events"
            )
        return StagedEvent(envelope, topic, value, headers)

    async def insert(self, connection: asyncpg.Connection, staged: Sequence[StagedEvent]) -> None:
        """Insert staged events in their order; call inside the transaction that made the state change.

        The per-key advisory locks make rows of one key commit in position
        order, so the relay (which reads by position) never publishes a later
        event of a key before an earlier one that was still uncommitted.
        """
        if not staged:
            return
        await connection.execute(_LOCK_KEYS, [item.envelope.subject for item in staged])
        await connection.execute(
            _INSERT_MANY,
            [item.envelope.id for item in staged],
            [item.topic for item in staged],
            [item.envelope.subject for item in staged],
            [item.envelope.type for item in staged],
            [item.value for item in staged],
            [orjson.dumps(item.headers).decode() for item in staged],
        )


def decode_value(value: bytes) -> dict:
    return orjson.loads(value)
