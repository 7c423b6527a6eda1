"""Inbox-guarded Kafka consumer.

Per partition batch it opens one database transaction, applies each event in
its own savepoint together with its inbox row, and commits the Kafka offset
only after the database transaction has committed. A redelivered event finds
its inbox row and changes nothing. Failures are sorted:

- the event can never be applied (not a CloudEvent, invalid data, wrong
  institution for the topic, RejectEvent from the handler, or still failing
  after `max_attempts`): dead-lettered with the reason, the batch goes on;
- the database or broker is away: the batch is rolled back and re-read from
  its first uncommitted offset after a back-off;
- contention or TransientError on one event: the events before it are
  committed, the partition is re-read from that event after a back-off.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from medgov_shared.clock import Clock
from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.guards import PersonalDataError, reject_personal_data
from medgov_shared.contracts.registry import UnknownEventType, institution_of_inbound_topic, parse_payload
from medgov_shared.messaging.context import HandlerContext, RejectEvent, TransientError
from medgov_shared.messaging.dlq import DeadLetter, send_dead_letter
from medgov_shared.messaging.errors import CONNECTION_ERRORS, CONTENTION_ERRORS, describe_validation_error
from medgov_shared.messaging.kafka import consumer_options
from medgov_shared.messaging.outbox import Outbox
from medgov_shared.observability import metrics
from medgov_shared.observability.tracing import context_from_headers, tracer
from medgov_shared.settings import ServiceSettings

Handler = Callable[[HandlerContext, EventPayload], Awaitable[None]]

log = structlog.get_logger(__name__)
_tracer = tracer(__name__)

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 5.0
_LAG_INTERVAL_S = 5.0


@dataclass(frozen=True)
class _Applied:
    outcome: str  # applied | duplicate | skipped_unknown | ignored | dead_lettered


class _RetryBatchFrom(Exception):
    def __init__(self, record: ConsumerRecord, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.record = record
        self.cause = cause


class EventConsumer:
    """Consumes the topics matching `pattern` with the service's consumer group."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        pool: asyncpg.Pool,
        outbox: Outbox,
        clock: Clock,
        handlers: Mapping[str, Handler],
        pattern: str,
        dlq_producer: AIOKafkaProducer,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.outbox = outbox
        self.clock = clock
        self.handlers = dict(handlers)
        self.pattern = pattern
        self.dlq_producer = dlq_producer
        self.service = settings.service_name
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._backoff_s = _BACKOFF_START_S
        self.last_poll_monotonic: float | None = None
        self.last_error: str | None = None
        self._lag_recorded_at = 0.0
        # Called between the database commit and the offset commit; crash tests
        # use it to kill the process in exactly that gap.
        self.after_database_commit: Callable[[TopicPartition, int], Awaitable[None]] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**consumer_options(self.settings))
        await self._consumer.start()
        self._consumer.subscribe(pattern=self.pattern)
        log.info("consumer started", pattern=self.pattern, group=self.settings.consumer_group)

    def request_stop(self) -> None:
        """Finish the batch in hand, then leave the loop."""
        self._stopping.set()

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "EventConsumer.start() was not called"
        return self._consumer

    async def run(self) -> None:
        while not self._stopping.is_set():
            batches = await self.consumer.getmany(
                timeout_ms=200, max_records=self.settings.consumer_batch_size
            )
            self.last_poll_monotonic = time.monotonic()
            for partition, records in batches.items():
                if self._stopping.is_set():
                    # Not applied and not committed: the next owner reads them again.
                    self.consumer.seek(partition, records[0].offset)
                    continue
                await self._process_partition(partition, records)
            await self._record_lag()

    # -- one partition batch ---------------------------------------------------

    async def _process_partition(self, partition: TopicPartition, records: list[ConsumerRecord]) -> None:
        next_offset: int | None = None
        retry_from: _RetryBatchFrom | None = None
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                for record in records:
                    try:
                        await self._apply_record(connection, record)
                    except _RetryBatchFrom as error:
                        retry_from = error
                        break
                    next_offset = record.offset + 1
        except CONNECTION_ERRORS as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.warning(
                "batch rolled back, will re-read it",
                topic=partition.topic, partition=partition.partition,
                from_offset=records[0].offset, error=self.last_error,
            )
            self.consumer.seek(partition, records[0].offset)
            await self._back_off()
            return

        if next_offset is not None:
            if self.after_database_commit is not None:
                await self.after_database_commit(partition, next_offset)
            await self._commit(partition, next_offset)
        if retry_from is not None:
            log.warning(
                "event will be retried",
                topic=partition.topic, partition=partition.partition,
                offset=retry_from.record.offset, error=f"{type(retry_from.cause).__name__}: {retry_from.cause}",
            )
            self.consumer.seek(partition, retry_from.record.offset)
            await self._back_off()
        else:
            self._backoff_s = _BACKOFF_START_S
            self.last_error = None

    async def _commit(self, partition: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({partition: offset})
        except (CommitFailedError, IllegalStateError) as error:
            # The partition moved to another member during a rebalance. The
            # database already holds the effects and the inbox rows, so the new
            # owner's redelivery is recognised as a duplicate.
            log.warning("offset commit failed after rebalance", topic=partition.topic,
                        partition=partition.partition, offset=offset, error=str(error))

    async def _back_off(self) -> None:
        await asyncio.sleep(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, _BACKOFF_MAX_S)

    # -- one record -------------------------------------------------------------

    async def _apply_record(self, connection: asyncpg.Connection, record: ConsumerRecord) -> _Applied:
        bound = log.bind(topic=record.topic, partition=record.partition, offset=record.offset)
        envelope, payload, letter = self._parse(record)
        event_type = envelope.type if envelope else "unparsed"
        if envelope is not None:
            bound = bound.bind(event_id=str(envelope.id), event_type=envelope.type,
                               correlation_id=str(envelope.correlationid))

        if letter is None and envelope is not None and payload is None:
            metrics.EVENTS_CONSUMED.labels(self.service, record.topic, event_type, "skipped_unknown").inc()
            bound.info("event of unknown type or version skipped")
            return _Applied("skipped_unknown")

        if letter is None and envelope is not None:
            handler = self.handlers.get(envelope.type)
            if handler is None:
                metrics.EVENTS_CONSUMED.labels(self.service, record.topic, event_type, "ignored").inc()
                return _Applied("ignored")
            assert payload is not None
            result = await self._apply_with_retries(connection, record, envelope, payload, handler, bound)
            if isinstance(result, str):
                metrics.EVENTS_CONSUMED.labels(self.service, record.topic, event_type, result).inc()
                if result == "duplicate":
                    bound.info("duplicate event ignored")
                return _Applied(result)
            letter = result

        assert letter is not None
        await self._dead_letter(connection, record, envelope, letter, bound)
        metrics.EVENTS_CONSUMED.labels(self.service, record.topic, event_type, "dead_lettered").inc()
        return _Applied("dead_lettered")

    def _parse(self, record: ConsumerRecord) -> tuple[Envelope | None, EventPayload | None, DeadLetter | None]:
        try:
            return self._parse_checked(record)
        except Exception as error:  # a message must never end the consumer; whatever it is, it is dead-lettered
            return None, None, DeadLetter("invalid_envelope", f"unreadable message: {type(error).__name__}: {error}", 1)

    def _parse_checked(self, record: ConsumerRecord) -> tuple[Envelope | None, EventPayload | None, DeadLetter | None]:
        if record.value is None:
            return None, None, DeadLetter("invalid_envelope", "message has no value (tombstone)", 1)
        try:
            envelope = Envelope.from_json(record.value)
        except ValidationError as error:
            return None, None, DeadLetter("invalid_envelope", f"not a valid CloudEvent: {describe_validation_error(error)}", 1)
        except ValueError as error:
            return None, None, DeadLetter("invalid_envelope", f"not a valid CloudEvent: {error}", 1)

        if envelope.schema_version == 0:
            return envelope, None, DeadLetter(
                "invalid_envelope", f"dataschema {envelope.dataschema[:200]!r} does not end in ':v<version>'", 1
            )
        try:
            reject_personal_data(
                {"subject": envelope.subject, "source": envelope.source, **(envelope.model_extra or {})}
            )
        except PersonalDataError as error:
            return envelope, None, DeadLetter("invalid_envelope", str(error), 1)

        claimed = institution_of_inbound_topic(record.topic)
        if claimed is not None and envelope.source != f"medgov/hospital/{claimed}":
            return envelope, None, DeadLetter(
                "institution_mismatch",
                f"event source {envelope.source!r} does not match topic {record.topic!r}; "
                f"expected 'medgov/hospital/{claimed}'",
                1,
            )
        try:
            payload = parse_payload(envelope)
        except UnknownEventType:
            return envelope, None, None
        except ValidationError as error:
            return envelope, None, DeadLetter("invalid_payload", f"invalid {envelope.type}: {describe_validation_error(error)}", 1)

        payload_institution = getattr(payload, "institution_id", None)
        if claimed is not None and payload_institution != claimed:
            return envelope, None, DeadLetter(
                "institution_mismatch",
                f"institution_id {payload_institution!r} does not match topic {record.topic!r}",
                1,
            )
        return envelope, payload, None

    async def _apply_with_retries(
        self,
        connection: asyncpg.Connection,
        record: ConsumerRecord,
        envelope: Envelope,
        payload: EventPayload,
        handler: Handler,
        bound: structlog.stdlib.BoundLogger,
    ) -> DeadLetter | str:
        """Apply the event once; return "applied", "duplicate" or the DeadLetter to send."""
        last_error: BaseException | None = None
        parent = context_from_headers(record.headers or ())
        for attempt in range(1, self.settings.max_attempts + 1):
            started = time.perf_counter()
            try:
                with _tracer.start_as_current_span(
                    f"{record.topic} process {envelope.type}", context=parent, kind=SpanKind.CONSUMER,
                    attributes={"messaging.system": "kafka", "messaging.destination.name": record.topic,
                                "messaging.consumer.group.name": self.settings.consumer_group,
                                "messaging.message.id": str(envelope.id), "messaging.kafka.offset": record.offset},
                ):
                    async with connection.transaction():  # a savepoint inside the batch transaction
                        # A concurrent owner of the partition (during a rebalance) blocks
                        # this insert until it commits; then the conflict marks a duplicate.
                        inserted = await connection.fetchval(
                            "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset) "
                            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING RETURNING true",
                            envelope.id, envelope.type, record.topic, record.partition, record.offset,
                        )
                        if not inserted:
                            return "duplicate"
                        context = HandlerContext(
                            connection=connection, outbox=self.outbox, clock=self.clock,
                            incoming=envelope, log=bound,
                        )
                        await handler(context, payload)
                metrics.HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)
                bound.debug("event applied", attempt=attempt)
                return "applied"
            except RejectEvent as error:
                bound.warning("event rejected", reason=str(error))
                return DeadLetter("rejected", str(error), attempt)
            except (TransientError, *CONTENTION_ERRORS) as error:
                raise _RetryBatchFrom(record, error) from error
            except CONNECTION_ERRORS:
                raise
            except Exception as error:  # a handler bug or an unexpected state: retried, then dead-lettered
                last_error = error
                bound.error("handler failed", attempt=attempt, error=f"{type(error).__name__}: {error}",
                            exc_info=attempt == self.settings.max_attempts)
        assert last_error is not None
        return DeadLetter(
            "handler_failed", f"{type(last_error).__name__}: {last_error}", self.settings.max_attempts
        )

    async def _dead_letter(
        self,
        connection: asyncpg.Connection,
        record: ConsumerRecord,
        envelope: Envelope | None,
        letter: DeadLetter,
        bound: structlog.stdlib.BoundLogger,
    ) -> None:
        # Published before the batch transaction commits: a crash in between
        # publishes the dead letter again on redelivery, but never loses it.
        await send_dead_letter(self.dlq_producer, record, letter, consumer_group=self.settings.consumer_group)
        await connection.execute(
            "INSERT INTO dead_letters (event_id, topic, kafka_partition, kafka_offset, reason, error) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            str(envelope.id) if envelope else None, record.topic, record.partition, record.offset,
            letter.reason, letter.error,
        )
        metrics.DEAD_LETTERS.labels(self.service, record.topic, letter.reason).inc()
        bound.error("event dead-lettered", reason=letter.reason, error=letter.error)

    async def _record_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_recorded_at < _LAG_INTERVAL_S:
            return
        self._lag_recorded_at = now
        for partition in self.consumer.assignment():
            highwater = self.consumer.highwater(partition)
            if highwater is None:
                continue
            position = await self.consumer.position(partition)
            metrics.CONSUMER_LAG.labels(self.service, partition.topic, str(partition.partition)).set(
                max(highwater - position, 0)
            )

    def is_healthy(self, max_silence_s: float = 30.0) -> bool:
        """True while the poll loop runs and its last poll was recent."""
        if self._consumer is None or self.last_poll_monotonic is None:
            return False
        return time.monotonic() - self.last_poll_monotonic < max_silence_s


__all__ = ["EventConsumer", "Handler"]
