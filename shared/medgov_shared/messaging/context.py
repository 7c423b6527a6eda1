"""The unit of work a handler or an HTTP route gets: one connection in one transaction."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import structlog

from medgov_shared.clock import Clock
from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope
from medgov_shared.messaging.outbox import Outbox, StagedEvent


# Staged outbox rows kept in memory before they are inserted, in the same
# transaction. A poll of 500 revocations, each excluding a subject from 50
# grants, stages 25,000 events. Without a bound they all wait in memory: a
# batch handler that applied all 500 at once took the process to 258 MB.
OUTBOX_FLUSH_ROWS = 1000


class RejectEvent(Exception):
    """Raised by a handler for an event that can never be applied (bad input from outside).

    The consumer dead-letters it at once with this message as the reason,
    without retries, and goes on with the next event.
    """


class TransientError(Exception):
    """Raised for a failure that may pass (a lock timeout, a dependency away); the event is retried later."""


@dataclass
class Staging:
    """The outbox rows of one transaction that are not inserted yet, in the order they were emitted.

    `earlier` contains the rows of the handlers that completed and `current`
    those of the handler that runs. When `current` reaches OUTBOX_FLUSH_ROWS, the
    handler inserts both, earlier rows first, so the events of one key keep
    their order. The earlier rows stay listed until the handler completes:
    if it fails, its savepoint takes that insert back, and they are inserted
    again with the later ones.
    """

    earlier: list[StagedEvent] = field(default_factory=list)
    current: list[StagedEvent] = field(default_factory=list)
    earlier_inserted: bool = False

    async def flush_current(self, outbox: Outbox, connection: asyncpg.Connection) -> None:
        rows = self.current if self.earlier_inserted else [*self.earlier, *self.current]
        await outbox.insert(connection, rows)
        self.earlier_inserted = True
        self.current = []

    def handler_completed(self) -> None:
        """Move the completed handler's rows after the earlier ones, dropping those it already inserted."""
        self.earlier = self.current if self.earlier_inserted else [*self.earlier, *self.current]
        self.current = []
        self.earlier_inserted = False

    def handler_failed(self) -> None:
        """Forget the failed handler's rows, because its savepoint rollback took back what it inserted."""
        self.current = []
        self.earlier_inserted = False


@dataclass
class HandlerContext:
    connection: asyncpg.Connection
    outbox: Outbox
    clock: Clock
    incoming: Envelope | None = None
    correlation_id: uuid.UUID | None = None
    log: structlog.stdlib.BoundLogger = field(default_factory=lambda: structlog.get_logger("medgov.handler"))
    # When set, emitted events are collected here and the consumer inserts the
    # whole poll batch's events at once; otherwise each emit inserts its row.
    staging: Staging | None = None
    # The trace context of the incoming event, for the events a batch handler
    # emits outside that event's span. None means the current trace context.
    trace_headers: dict[str, str] | None = None
    _emitted: int = 0

    def now(self) -> datetime:
        return self.clock.now()

    async def emit(
        self,
        payload: EventPayload,
        *,
        event_id: uuid.UUID | None = None,
        time: datetime | None = None,
        topic: str | None = None,
        region: str | None = None,
    ) -> Envelope:
        """Write `payload` to the outbox in this transaction, linked to the event being handled.

        Events caused by a consumed event get ids derived from its id and their
        position among the events it caused, so that re-applying the same event
        (a retry, or a store rebuilt by replay) emits the same ids and downstream
        inboxes drop the repeats.
        """
        staged = self.outbox.stage(
            payload, event_id=self._next_event_id(payload, event_id), time=time or self.now(), topic=topic, region=region,
            trace_headers=self.trace_headers, **self._flow_ids(),
        )
        await self._keep([staged])
        return staged.envelope

    async def emit_many(self, payloads: Sequence[EventPayload]) -> list[Envelope]:
        """Write events of one type to the outbox, in order, as `emit` would one by one, at a lower cost per event.

        The first event's envelope serves as the template of the others
        (Outbox.stage_like), so the envelope is validated once. They share
        one time, the service's topic and its region.
        """
        if not payloads:
            return []
        first = self.outbox.stage(
            payloads[0], event_id=self._next_event_id(payloads[0]), time=self.now(), trace_headers=self.trace_headers,
            **self._flow_ids(),
        )
        staged = [first]
        for payload in payloads[1:]:
            staged.append(self.outbox.stage_like(first, payload, event_id=self._next_event_id(payload)))
        await self._keep(staged)
        return [item.envelope for item in staged]

    def _next_event_id(self, payload: EventPayload, given: uuid.UUID | None = None) -> uuid.UUID | None:
        """Return the id of the next emitted event: `given`, one derived from the incoming event, or None for a new one."""
        if given is None and self.incoming is not None:
            given = uuid.uuid5(self.incoming.id, f"{self._emitted}:{payload.event_type}:{payload.key}")
        self._emitted += 1
        return given

    def _flow_ids(self) -> dict[str, uuid.UUID | None]:
        """Return the correlation and causation ids of an event emitted now."""
        return {
            "correlation_id": self.correlation_id or (self.incoming.correlationid if self.incoming else None),
            "causation_id": self.incoming.id if self.incoming else None,
        }

    async def _keep(self, staged: list[StagedEvent]) -> None:
        """Insert staged events now, or add them to the poll batch's staging, which inserts them in bounded slices."""
        if self.staging is None:
            await self.outbox.insert(self.connection, staged)
        else:
            for item in staged:
                self.staging.current.append(item)
                if len(self.staging.current) >= OUTBOX_FLUSH_ROWS:
                    await self.staging.flush_current(self.outbox, self.connection)
        if self.correlation_id is None:
            # Later events of the same unit of work share the first one's flow id.
            self.correlation_id = staged[0].envelope.correlationid


@dataclass(frozen=True)
class BatchableHandler:
    """A handler that can also apply many events of its type at once, with set-based SQL.

    The consumer calls `many` with consecutive new events of one poll batch
    and partition (each with its own context, all on one connection) and
    `one` otherwise. When `many` raises, its writes are rolled back and the
    same events are applied again through `one`, one at a time, so `many`
    may raise for any event it cannot apply and leave the sorting of the
    failure to `one`.
    """

    one: Callable[[HandlerContext, EventPayload], Awaitable[None]]
    many: Callable[[Sequence[tuple[HandlerContext, EventPayload]]], Awaitable[None]]

    async def __call__(self, context: HandlerContext, payload: EventPayload) -> None:
        await self.one(context, payload)
