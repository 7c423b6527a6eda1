"""Outbox relay: publishes committed outbox rows to Kafka in position order.

It wakes on NOTIFY from the outbox insert trigger and polls as a fallback
(a NOTIFY is lost while the listening connection is down). One replica at a
time relays, held by a transaction-level advisory lock, because two relays
claiming different rows could reorder events of one key. A row is marked
sent only after the broker acknowledged it; a crash in between publishes it
again, and consumers drop the duplicate through their inbox.
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

from medgov_shared.messaging.errors import CONNECTION_ERRORS, describe_error
from medgov_shared.observability import metrics
from medgov_shared.observability.logging import OutageLog
from medgov_shared.observability.tracing import context_from_headers, headers_of_span, spans_recorded, tracer

log = structlog.get_logger(__name__)
_tracer = tracer(__name__)

# Arbitrary constant naming the relay's leader lock in pg_advisory locks.
_RELAY_LOCK_ID = 0x6D656467_6F760001

_CHANNEL = "medgov_outbox"

_BACKLOG_COUNT_INTERVAL_S = 5.0

_CONTENT_TYPE = "content-type"
_CLOUDEVENTS_JSON = b"application/cloudevents+json"


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        renew_producer: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
        poll_interval_s: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        """`renew_producer` replaces the producer with a new one and returns it, see `_send_alone`."""
        self.service = service
        self.pool = pool
        self.producer = producer
        self._renew_producer = renew_producer
        self._outage_log = OutageLog(log)
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self.last_success_monotonic: float | None = None
        self._backlog_counted_at = float("-inf")

    def request_stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            try:
                await self._ensure_listener()
                published = await self.publish_pending()
                backoff = 0.2
                if published >= self.batch_size:
                    continue  # more rows are waiting
                await self._wait_for_work()
            except CONNECTION_ERRORS as error:
                self._outage_log.warning("outbox relay cannot reach the database or broker; retrying",
                            error=describe_error(error), retry_in_s=backoff)
                await self._drop_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as error:  # noqa: BLE001 - the relay must outlive any single failure
                # Any error the connection errors above do not cover. A relay
                # that stopped here would leave committed events unsent while
                # the service still served requests. So it logs, terminates the
                # listener connection (its state is unknown) and tries again.
                # /readyz reports a relay that has not succeeded for a while.
                log.error("outbox relay failed; retrying", error=f"{type(error).__name__}: {error}",
                          retry_in_s=backoff, exc_info=True)
                metrics.OUTBOX_RELAY_ERRORS.labels(self.service).inc()
                await self._discard_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        await self._drop_listener()

    def seconds_since_success(self, now: float | None = None) -> float | None:
        """Return how long ago a relay pass last finished, or None before the first one."""
        if self.last_success_monotonic is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_success_monotonic

    async def _discard_listener(self) -> None:
        """Close the listening connection without a round trip, since its state is unknown, and free its pool slot."""
        if self._listener is None:
            return
        listener, self._listener = self._listener, None
        listener.terminate()
        with contextlib.suppress(Exception):
            await self.pool.release(listener)

    async def _wait_for_work(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval_s)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.is_closed():
            return
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(_CHANNEL, self._on_notify)

    async def _drop_listener(self) -> None:
        if self._listener is None:
            return
        listener, self._listener = self._listener, None
        try:
            await listener.remove_listener(_CHANNEL, self._on_notify)
        except CONNECTION_ERRORS:
            pass
        try:
            await self.pool.release(listener)
        except CONNECTION_ERRORS:
            listener.terminate()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        async with self.pool.acquire() as connection, connection.transaction():
            is_leader = await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK_ID)
            if not is_leader:
                return 0
            rows = await connection.fetch(
                "SELECT position, event_id, topic, key, event_type, value, headers FROM outbox "
                "WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY position LIMIT $1",
                self.batch_size,
            )
            if not rows:
                metrics.OUTBOX_BACKLOG.labels(self.service).set(0)
                self.last_success_monotonic = time.monotonic()
                return 0
            sent, failed = await self._send(rows)
            if sent:
                await connection.execute(
                    "UPDATE outbox SET sent_at = now() WHERE position = ANY($1::bigint[])", sent
                )
            for position, error in failed:
                await connection.execute(
                    "UPDATE outbox SET failed_at = now(), last_error = $2 WHERE position = $1", position, error
                )
            backlog = await self._backlog(connection, full_pass=len(rows) == self.batch_size)
        if backlog is not None:
            metrics.OUTBOX_BACKLOG.labels(self.service).set(backlog)
        self.last_success_monotonic = time.monotonic()
        return len(sent)

    async def _backlog(self, connection: asyncpg.Connection, *, full_pass: bool) -> int | None:
        """Return the rows left to publish after this pass, or None when it is not worth counting now.

        A pass that took fewer rows than it could took every row committed
        when it started, so nothing is left but what committed since. After a
        full pass the rest is counted, at most every `_BACKLOG_COUNT_INTERVAL_S`,
        because counting a long backlog on every pass slowed the relay down
        just when it had the most to do.
        """
        if not full_pass:
            return 0
        now = time.monotonic()
        if now - self._backlog_counted_at < _BACKLOG_COUNT_INTERVAL_S:
            return None
        self._backlog_counted_at = now
        return await connection.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")

    async def _send(self, rows: list[asyncpg.Record]) -> tuple[list[int], list[tuple[int, str]]]:
        """Publish `rows`; return the positions the broker acknowledged, and those it rejected as too large with the reason."""
        deliveries = []
        recorded = spans_recorded()
        for row in rows:
            # Without recording, an event keeps the trace context of the handler that
            # emitted it. One emitted outside any trace gets a new trace id from a span.
            forwarded = not recorded and "traceparent" in (row["headers"] or {})
            span = INVALID_SPAN if forwarded else _publish_span(row)
            try:
                future = await self._hand_over(row, span)
            except BaseException:
                for pending in [span, *(pending for _, _, pending in deliveries)]:
                    pending.end()
                raise
            deliveries.append((row, future, span))

        sent: list[int] = []
        rejected: list[tuple[asyncpg.Record, Span]] = []
        for index, (row, future, span) in enumerate(deliveries):
            try:
                await future
            except MessageSizeTooLargeError:
                # The broker rejects a whole record batch over the topic's limit, so this
                # row may have been rejected because of its neighbours. It is sent alone below.
                rejected.append((row, span))
                continue
            except BaseException as error:
                # The pass is retried from its first row; end this row's span and those after it.
                for _, _, pending in deliveries[index:]:
                    _end_with_error(pending, describe_error(error))
                for _, pending in rejected:
                    _end_with_error(pending, describe_error(error))
                raise
            self._published(row, span, sent)
        failed = await self._send_alone(rejected, sent)
        return sent, failed

    async def _hand_over(self, row: asyncpg.Record, span: Span) -> "asyncio.Future[Any]":
        trace_headers = row["headers"] if span is INVALID_SPAN else headers_of_span(span)
        headers = [(_CONTENT_TYPE, _CLOUDEVENTS_JSON)]
        headers += [(name, value.encode()) for name, value in trace_headers.items()]
        return await self.producer.send(row["topic"], value=bytes(row["value"]), key=row["key"].encode(), headers=headers)

    async def _send_alone(self, rejected: list[tuple[asyncpg.Record, Span]], sent: list[int]) -> list[tuple[int, str]]:
        """Send each rejected row in a batch of its own; add the accepted ones to `sent` and return the rest with the reason.

        A row the broker accepts alone goes out after rows that followed it in
        the pass. Consumers already take a subject's events out of order (a
        revocation before its consent is parked), and this happens only when a
        topic's size limit is below the one the service was given.
        """
        failed: list[tuple[int, str]] = []
        # An idempotent producer counts a rejected batch's records as sent, so the broker
        # rejects its next batch to that partition with OutOfOrderSequenceNumber. A new
        # producer starts its own count; one is made after every rejection.
        producer_spoilt = bool(rejected)
        for index, (row, span) in enumerate(rejected):
            if producer_spoilt:
                await self._replace_producer()
                producer_spoilt = False
            try:
                # Waiting for each acknowledgement before the next send keeps the row alone in its batch.
                await (await self._hand_over(row, span))
            except MessageSizeTooLargeError as error:
                message = f"broker rejected {row['event_type']} as too large: {error}"
                log.error("outbox row can never be published", position=row["position"],
                          event_id=str(row["event_id"]), error=message)
                metrics.OUTBOX_FAILED.labels(self.service, "too_large").inc()
                _end_with_error(span, message)
                failed.append((row["position"], message))
                producer_spoilt = True
                continue
            except BaseException as error:
                for _, pending in rejected[index:]:
                    _end_with_error(pending, describe_error(error))
                raise
            self._published(row, span, sent)
        if producer_spoilt:
            await self._replace_producer()
        return failed

    def _published(self, row: asyncpg.Record, span: Span, sent: list[int]) -> None:
        """Record that the broker acknowledged `row`: end its span, add its position to `sent`, count it."""
        span.end()
        sent.append(row["position"])
        metrics.OUTBOX_PUBLISHED.labels(self.service, row["topic"]).inc()

    async def _replace_producer(self) -> None:
        if self._renew_producer is not None:
            self.producer = await self._renew_producer()


def _publish_span(row: asyncpg.Record) -> Span:
    # One span per event, from the hand-over to the broker's acknowledgement. It is
    # not made the current span, which would cost a context switch in and out per row.
    return _tracer.start_span(
        f"{row['topic']} publish {row['event_type']}", context=context_from_headers(row["headers"] or {}),
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": row["topic"],
                    "messaging.message.id": str(row["event_id"])},
    )


def _end_with_error(span: Span, message: str) -> None:
    span.set_status(Status(StatusCode.ERROR, message))
    span.end()
