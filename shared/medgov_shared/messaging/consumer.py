"""Inbox-guarded Kafka consumer.

Each poll's partition batches are applied in groups, each group in one
database transaction on its own connection, side by side: a small poll in one
transaction, a full one split across several. Events of the service's urgent
types (a consent revocation), with the events before them in their
partitions, are committed first (ADR 0038). The Kafka offsets are committed
in one request, and only after those transactions have committed. A redelivered
event finds its inbox row and changes nothing.

A batch is applied all at once as far as it can be: one inbox insert for its
events, each handler in a savepoint (or one savepoint for a run of events
whose handler is a BatchableHandler), and one outbox insert for every event
emitted. From the first event that cannot be applied that way, the batch
goes on one event at a time, each event in its own savepoint together with
its inbox row, where failures are sorted:

- the event can never be applied (not a CloudEvent, invalid data, wrong
  institution for the topic, RejectEvent from the handler, or still failing
  after `max_attempts`): dead-lettered with the reason, the batch goes on;
- the database or broker is away: the batch is rolled back and re-read from
  its first uncommitted offset after a back-off;
- contention or TransientError on one event: the events before it are
  committed. After a back-off, every partition of its group with events
  from that one on is re-read from its first event not applied.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from pydantic import ValidationError

from medgov_shared.clock import Clock
from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.guards import PersonalDataError, reject_personal_data
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.registry import (
    INBOUND_COMMANDS,
    UnknownEventType,
    dlq_topic,
    institution_of_inbound_topic,
    is_inbound_command,
    parse_payload,
)
from medgov_shared.messaging import context as handler_context
from medgov_shared.messaging.context import BatchableHandler, HandlerContext, RejectEvent, Staging, TransientError
from medgov_shared.messaging.dlq import DeadLetter, send_dead_letter
from medgov_shared.messaging.errors import CONNECTION_ERRORS, CONTENTION_ERRORS, describe_error, describe_validation_error
from medgov_shared.messaging.kafka import consumer_options, started
from medgov_shared.messaging.topics import create_missing_topics
from medgov_shared.messaging.outbox import Outbox
from medgov_shared.observability import metrics
from medgov_shared.observability.logging import OutageLog
from medgov_shared.observability.tracing import (
    context_from_headers,
    inject_headers,
    spans_recorded,
    tracer,
    unrecorded_trace_headers,
)
from medgov_shared.settings import ServiceSettings
from medgov_shared.utf8 import utf8_problem

Handler = Callable[[HandlerContext, EventPayload], Awaitable[None]]

log = structlog.get_logger(__name__)
# The standard-library logger behind `log`, whose level decides which lines are written.
_stdlib_log = logging.getLogger(__name__)
_tracer = tracer(__name__)

BATCH_FALLBACKS = Counter(
    "medgov_consumer_batch_fallbacks",
    "Partition batches finished one event at a time because a handler raised in the all-at-once path.",
    ["service", "topic"],
)

# Plain SQL rather than asyncpg's nested transactions, so that releasing one
# event's savepoint and opening the next take one round trip (a simple query
# may hold several statements).
_FIRST_SAVEPOINT = "SAVEPOINT medgov_event"
_NEXT_SAVEPOINT = "RELEASE SAVEPOINT medgov_event; SAVEPOINT medgov_event"
_RELEASE_SAVEPOINT = "RELEASE SAVEPOINT medgov_event"
_ROLLBACK_SAVEPOINT = "ROLLBACK TO SAVEPOINT medgov_event; RELEASE SAVEPOINT medgov_event"

# A poll is split into transactions of at least this many events (see group_partitions).
_MIN_EVENTS_PER_GROUP = 100

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 5.0
_LAG_INTERVAL_S = 5.0


@dataclass(frozen=True)
class _Applied:
    outcome: str  # applied | duplicate | skipped_unknown | ignored | dead_lettered


Parsed = tuple[Envelope | None, EventPayload | None, DeadLetter | None]
# (index in the poll batch, record, envelope, payload) of an event that has a handler.
_Handled = tuple[int, ConsumerRecord, Envelope, EventPayload]


def _first_occurrences(handled: list[_Handled], inserted: set) -> set[int]:
    """Return the positions of the events to apply: new in the inbox, and the first of any id repeated in the batch."""
    seen: set = set()
    fresh: set[int] = set()
    for position, (_, _, envelope, _) in enumerate(handled):
        if envelope.id in inserted and envelope.id not in seen:
            fresh.add(position)
            seen.add(envelope.id)
    return fresh


def _event_log(record: ConsumerRecord, envelope: Envelope | None) -> "EventLog":
    """Return the logger bound to the record's position and, once parsed, to the event's ids."""
    return EventLog(record, envelope)


class EventLog:
    """A structlog logger for one consumed record, bound to its position and ids when it first writes a line.

    Most events log nothing. Binding the five values for each of them, and
    passing each debug line to structlog to be dropped, took about 15
    microseconds per event, about 5% of the consent service's CPU time per
    RecordConsent. Every method of a bound logger is available.
    """

    __slots__ = ("_record", "_envelope", "_bound")

    def __init__(self, record: ConsumerRecord, envelope: Envelope | None) -> None:
        self._record = record
        self._envelope = envelope
        self._bound: structlog.stdlib.BoundLogger | None = None

    def debug(self, event: str, **values: object) -> None:
        if _stdlib_log.isEnabledFor(logging.DEBUG):
            self._logger().debug(event, **values)

    def __getattr__(self, name: str) -> object:
        return getattr(self._logger(), name)

    def _logger(self) -> structlog.stdlib.BoundLogger:
        if self._bound is None:
            record, envelope = self._record, self._envelope
            bound = log.bind(topic=record.topic, partition=record.partition, offset=record.offset)
            if envelope is not None:
                bound = bound.bind(event_id=str(envelope.id), event_type=envelope.type,
                                   correlation_id=str(envelope.correlationid))
            self._bound = bound
        return self._bound


def group_partitions(
    batches: Mapping[TopicPartition, list[ConsumerRecord]], max_groups: int
) -> list[list[tuple[TopicPartition, list[ConsumerRecord]]]]:
    """Split a poll's partition batches into at most `max_groups` groups, one transaction each, balanced by event count.

    A group per partition would cost a small poll one transaction (a dozen
    round trips and a WAL flush) for every partition holding an event or
    two, which set the latency at light load. So a group contains at least
    `_MIN_EVENTS_PER_GROUP` events where it can, and a full poll is split
    into groups that run side by side: while one waits for PostgreSQL,
    another runs its handlers. Larger batches come first in a group.
    """
    total = sum(len(records) for records in batches.values())
    count = max(1, min(len(batches), max_groups, total // _MIN_EVENTS_PER_GROUP))
    groups: list[list[tuple[TopicPartition, list[ConsumerRecord]]]] = [[] for _ in range(count)]
    sizes = [0] * count
    for partition, records in sorted(batches.items(), key=lambda item: len(item[1]), reverse=True):
        smallest = sizes.index(min(sizes))
        groups[smallest].append((partition, records))
        sizes[smallest] += len(records)
    return groups


@dataclass(frozen=True)
class _PollPart:
    """Partition batches of a poll with each record's parse result, in the same order."""

    batches: dict[TopicPartition, list[ConsumerRecord]]
    parsed: dict[TopicPartition, list[Parsed]]


def split_urgent(
    batches: Mapping[TopicPartition, list[ConsumerRecord]],
    parsed: Mapping[TopicPartition, list[Parsed]],
    urgent_types: frozenset[str],
) -> tuple[_PollPart, _PollPart]:
    """Split a poll into the events to commit first and the rest.

    The first part holds, for each partition with an event of `urgent_types`,
    its events up to and including the last such event. The events before it
    come along because a partition's events are applied in order. Every
    other event is in the second part. A consent revocation then commits,
    and its exclusions reach the relay, without waiting for the consents that
    arrived in the same poll (see ADR 0038).
    """
    urgent = _PollPart({}, {})
    rest = _PollPart({}, {})
    for partition, records in batches.items():
        results = parsed[partition]
        end = 0
        if urgent_types:
            end = next(
                (len(results) - index for index, (envelope, _, _) in enumerate(reversed(results))
                 if envelope is not None and envelope.type in urgent_types),
                0,
            )
        if end:
            urgent.batches[partition], urgent.parsed[partition] = records[:end], results[:end]
        if end < len(records):
            rest.batches[partition], rest.parsed[partition] = records[end:], results[end:]
    return urgent, rest


def _key_problem(key: bytes | None, envelope: Envelope, payload: EventPayload) -> str | None:
    """Describe how a hospital command's Kafka key, envelope subject and payload key disagree; None when they agree.

    The broker keeps order within a partition only, and the key chooses the
    partition, so a command keyed otherwise than by its subject can overtake
    an earlier command of the same subject. The message does not repeat the
    key, which has not passed the personal-data check.
    """
    if envelope.subject != payload.key:
        return (
            f"envelope subject {envelope.subject!r} is not data.{payload.key_field}; "
            f"set the envelope subject to data.{payload.key_field}"
        )
    if key != envelope.subject.encode():
        return (
            f"the Kafka key is not the envelope subject {envelope.subject!r}; send each command with its subject "
            f"as the key, so that the commands of one subject stay in order"
        )
    return None


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
        urgent_types: Collection[str] = (),
    ) -> None:
        """`urgent_types` name the events committed ahead of the rest of their poll (see `split_urgent`)."""
        self.settings = settings
        self.pool = pool
        self.outbox = outbox
        self.clock = clock
        self.handlers = dict(handlers)
        self.urgent_types = frozenset(urgent_types)
        self.pattern = pattern
        self.dlq_producer = dlq_producer
        self._dead_letter_topics: set[str] = set()  # known to exist
        self.service = settings.service_name
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._backoff_s = _BACKOFF_START_S
        self.last_poll_monotonic: float | None = None
        self.last_error: str | None = None
        self._lag_recorded_at = 0.0
        self._max_groups = 1
        self._commit_in_flight: asyncio.Task | None = None
        self._outage_log = OutageLog(log)
        # Called between the database commit and the offset commit; crash tests
        # use it to kill the process in exactly that gap.
        self.after_database_commit: Callable[[TopicPartition, int], Awaitable[None]] | None = None

    async def start(self) -> None:
        # Groups of partition batches hold a connection each for their whole
        # transaction; two connections stay free, for the outbox relay and HTTP requests.
        self._max_groups = max(1, self.pool.get_max_size() - 2)
        self._consumer = await started(AIOKafkaConsumer(**consumer_options(self.settings)))
        self._consumer.subscribe(pattern=self.pattern)
        log.info("consumer started", pattern=self.pattern, group=self.settings.consumer_group)

    def request_stop(self) -> None:
        """Finish the batch in hand, then leave the loop."""
        self._stopping.set()

    async def close(self) -> None:
        if self._consumer is not None:
            try:
                await self._finish_commit()
            except Exception as error:  # noqa: BLE001 - the consumer stops anyway; the next owner re-reads those events
                log.warning("last offset commit failed while closing", error=describe_error(error))
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
            if self._stopping.is_set():
                for partition, records in batches.items():
                    # Not applied and not committed: the next owner reads them again.
                    self.consumer.seek(partition, records[0].offset)
                continue
            await self._process_poll(batches)
            await self._record_lag()
        await self._finish_commit()

    # -- one poll, groups of partition batches ---------------------------------------------

    async def _process_poll(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        """Apply every partition's batch, in as few transactions as the poll's size allows, then commit the offsets.

        Urgent events and the events before them in their partitions are
        committed first, in transactions of their own. The rest of the poll
        is applied after that commit.
        """
        parsed = {partition: [self._parse(record) for record in records] for partition, records in batches.items()}
        urgent, rest = split_urgent(batches, parsed, self.urgent_types)
        offsets: dict[TopicPartition, int] = {}
        back_off = False
        if urgent.batches:
            back_off = await self._process_groups(urgent, offsets)
            if back_off:
                # The rest of the poll is read again after the back-off. A partition whose
                # urgent events were not all applied has been sought back further already.
                for partition, records in rest.batches.items():
                    first_part = urgent.batches.get(partition)
                    if first_part is None or offsets.get(partition) == first_part[-1].offset + 1:
                        self.consumer.seek(partition, records[0].offset)
                rest = _PollPart({}, {})
        if rest.batches:
            back_off = await self._process_groups(rest, offsets)
        # One offset commit for the whole poll, because aiokafka sends commits
        # one at a time: in the benchmark's latency runs (bench/run.py, 2 cores)
        # each took about 5 ms, so six separate commits added some 30 ms a poll.
        await self._commit(offsets)
        if back_off:
            await self._back_off()
        else:
            self._backoff_s = _BACKOFF_START_S
            self.last_error = None

    async def _process_groups(self, part: _PollPart, offsets: dict[TopicPartition, int]) -> bool:
        """Apply `part` in groups side by side; add the offsets to commit to `offsets` and return whether to back off."""
        outcomes = await asyncio.gather(
            *(self._process_group(group, part.parsed) for group in group_partitions(part.batches, self._max_groups))
        )
        for group_offsets, _ in outcomes:
            offsets.update(group_offsets)
        return any(back_off for _, back_off in outcomes)

    async def _process_group(
        self, group: list[tuple[TopicPartition, list[ConsumerRecord]]], parsed_by_partition: Mapping[TopicPartition, list[Parsed]]
    ) -> tuple[dict[TopicPartition, int], bool]:
        """Apply a group's partition batches in one transaction; return the offsets to commit and whether to back off.

        The batches are applied as one list, partition after partition, so
        each partition's events keep their order.
        """
        records = [record for _, batch in group for record in batch]
        parsed = [parts for partition, _ in group for parts in parsed_by_partition[partition]]
        done = 0
        retry_from: _RetryBatchFrom | None = None
        try:
            async with self.pool.acquire() as connection, connection.transaction():
                done, failure = await self._apply_all_at_once(connection, records, parsed)
                if done < len(records):
                    rest_done, retry_from = await self._apply_one_by_one(connection, records[done:], parsed[done:], failure)
                    done += rest_done
        except CONNECTION_ERRORS as error:
            self.last_error = describe_error(error)
            # One line for the group: the rate-limited log would drop the later partitions' lines.
            self._outage_log.warning(
                "batch rolled back, will re-read it",
                from_offsets={f"{partition.topic}[{partition.partition}]": batch[0].offset for partition, batch in group},
                error=self.last_error,
            )
            for partition, batch in group:
                self.consumer.seek(partition, batch[0].offset)
            return {}, True

        offsets = {TopicPartition(record.topic, record.partition): record.offset + 1 for record in records[:done]}
        if self.after_database_commit is not None:
            for partition, offset in offsets.items():
                await self.after_database_commit(partition, offset)
        if retry_from is None:
            return offsets, False
        log.warning(
            "event will be retried",
            topic=retry_from.record.topic, partition=retry_from.record.partition,
            offset=retry_from.record.offset, error=f"{type(retry_from.cause).__name__}: {retry_from.cause}",
        )
        # The partitions with events after the failed one (in the group's order) are read again from their first one.
        unapplied: dict[TopicPartition, int] = {}
        for record in records[done:]:
            unapplied.setdefault(TopicPartition(record.topic, record.partition), record.offset)
        for partition, offset in unapplied.items():
            self.consumer.seek(partition, offset)
        return offsets, True

    async def _apply_one_by_one(
        self,
        connection: asyncpg.Connection,
        records: list[ConsumerRecord],
        parsed: list[Parsed],
        first_failure: Exception | None,
    ) -> tuple[int, "_RetryBatchFrom | None"]:
        """Apply each event in its own savepoint; return how many leading events are done and the event to retry from, if any.

        `first_failure` is what the first event raised in the all-at-once
        path; it counts as that event's first attempt.
        """
        for index, (record, parts) in enumerate(zip(records, parsed, strict=True)):
            try:
                await self._apply_record(connection, record, parts, first_failure if index == 0 else None)
            except _RetryBatchFrom as error:
                return index, error
        return len(records), None

    # -- the leading events of a batch at once -----------------------------------

    async def _apply_all_at_once(
        self, connection: asyncpg.Connection, records: list[ConsumerRecord], parsed: list[Parsed]
    ) -> tuple[int, Exception | None]:
        """Apply the batch up to its first unparseable event with one inbox insert and one outbox insert.

        Each handler still runs in a savepoint, but opening the next savepoint
        and releasing the previous one share a round trip. A run of events
        whose handler is a BatchableHandler goes to `many` in one savepoint.
        If that raises, the run is rolled back and its events go through
        `one`. Return how many leading records are done and, when a handler
        raised, its error: the caller applies the records from there one at a
        time, so the events before the failing one are neither rolled back nor
        handled twice. Connection errors propagate as in the one-by-one path.
        """
        limit = next((index for index, (_, _, letter) in enumerate(parsed) if letter is not None), len(records))
        handled = [
            (index, record, envelope, payload)
            for index, (record, (envelope, payload, _)) in enumerate(zip(records[:limit], parsed[:limit], strict=True))
            if envelope is not None and payload is not None and envelope.type in self.handlers
        ]
        inserted = await self._insert_inbox_rows(connection, [(record, envelope) for _, record, envelope, _ in handled])
        fresh = _first_occurrences(handled, inserted)
        staging = Staging()
        outcomes: list[tuple[ConsumerRecord, str, str]] = []
        done, failure = limit, None
        savepoint_open = False
        position, batchable_from = 0, 0
        while position < len(handled):
            if len(staging.earlier) >= handler_context.OUTBOX_FLUSH_ROWS:
                # Every earlier row belongs to an event applied before this point.
                await self.outbox.insert(connection, staging.earlier)
                staging.earlier = []
            index, record, envelope, payload = handled[position]
            if position not in fresh:
                outcomes.append((record, envelope.type, "duplicate"))
                position += 1
                continue
            await connection.execute(_NEXT_SAVEPOINT if savepoint_open else _FIRST_SAVEPOINT)
            savepoint_open = True

            end = self._run_end(handled, position) if position >= batchable_from else position + 1
            run = [handled[later] for later in range(position, end) if later in fresh]
            if len(run) > 1:
                try:
                    await self._apply_many(connection, run, staging)
                except CONNECTION_ERRORS:
                    raise
                except Exception as error:  # the same events go through the handler one at a time
                    staging.handler_failed()
                    await connection.execute(_ROLLBACK_SAVEPOINT)
                    savepoint_open, batchable_from = False, end
                    log.warning("batch handler failed; applying its events one at a time", topic=record.topic,
                             partition=record.partition, from_offset=record.offset, events=len(run),
                             error=f"{type(error).__name__}: {error}")
                    continue
                staging.handler_completed()
                outcomes += [
                    (handled[later][1], handled[later][2].type, "applied" if later in fresh else "duplicate")
                    for later in range(position, end)
                ]
                position = end
                continue

            try:
                await self._apply_staged(connection, record, envelope, payload, staging)
            except CONNECTION_ERRORS:
                raise
            except Exception as error:  # sorted by the one-by-one path, which takes this as the first attempt
                staging.handler_failed()
                await connection.execute(_ROLLBACK_SAVEPOINT)
                savepoint_open = False
                # Later events apply one at a time, each writing its own inbox row again.
                unapplied = [handled[later][2].id for later in fresh if later >= position]
                await connection.execute("DELETE FROM inbox WHERE event_id = ANY($1::uuid[])", unapplied)
                done, failure = index, error
                BATCH_FALLBACKS.labels(self.service, record.topic).inc()
                break
            staging.handler_completed()
            outcomes.append((record, envelope.type, "applied"))
            position += 1
        if savepoint_open:
            await connection.execute(_RELEASE_SAVEPOINT)

        await self.outbox.insert(connection, staging.earlier)
        self._count_batch(records[:done], parsed[:done], outcomes)
        return done, failure

    async def _insert_inbox_rows(self, connection: asyncpg.Connection, events: list[tuple[ConsumerRecord, Envelope]]) -> set:
        """Insert the inbox rows of a batch in one statement; return the ids that were not there yet."""
        if not events:
            return set()
        # A concurrent owner of the partition (during a rebalance) blocks this
        # insert until it commits; then the conflicts mark duplicates.
        rows = await connection.fetch(
            "INSERT INTO inbox (event_id, event_type, topic, kafka_partition, kafka_offset) "
            "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::integer[], $5::bigint[]) "
            "ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            [envelope.id for _, envelope in events],
            [envelope.type for _, envelope in events],
            [record.topic for record, _ in events],
            [record.partition for record, _ in events],
            [record.offset for record, _ in events],
        )
        return {row["event_id"] for row in rows}

    async def _apply_staged(
        self, connection: asyncpg.Connection, record: ConsumerRecord, envelope: Envelope, payload: EventPayload,
        staging: Staging,
    ) -> None:
        """Run the handler; the events it emits go to `staging`, for the caller to insert with the rest of the batch."""
        handler = self.handlers[envelope.type]
        bound = _event_log(record, envelope)
        started = time.perf_counter()
        with self._span(record, envelope):
            context = HandlerContext(
                connection=connection, outbox=self.outbox, clock=self.clock, incoming=envelope, log=bound, staging=staging,
            )
            await handler(context, payload)
        metrics.HANDLER_SECONDS.labels(self.service, envelope.type).observe(time.perf_counter() - started)

    def _run_end(self, handled: list[_Handled], position: int) -> int:
        """Return the end of the run of same-type events from `position` that a BatchableHandler can take at once."""
        event_type = handled[position][2].type
        if not isinstance(self.handlers[event_type], BatchableHandler):
            return position + 1
        end = position + 1
        while end < len(handled) and handled[end][2].type == event_type:
            end += 1
        return end

    async def _apply_many(self, connection: asyncpg.Connection, run: list[_Handled], staging: Staging) -> None:
        """Give a run of new events to their BatchableHandler at once; the events it emits go to `staging`."""
        handler = self.handlers[run[0][2].type]
        assert isinstance(handler, BatchableHandler)
        items = []
        recorded = spans_recorded()
        for _, record, envelope, payload in run:
            if recorded:
                with self._span(record, envelope):
                    trace_headers = inject_headers()
            else:
                trace_headers = unrecorded_trace_headers(record.headers or ())
            bound = _event_log(record, envelope)
            context = HandlerContext(connection=connection, outbox=self.outbox, clock=self.clock, incoming=envelope,
                                     log=bound, staging=staging, trace_headers=trace_headers)
            items.append((context, payload))
        started = time.perf_counter()
        await handler.many(items)
        per_event = (time.perf_counter() - started) / len(run)
        for _ in run:
            metrics.HANDLER_SECONDS.labels(self.service, run[0][2].type).observe(per_event)

    def _count_batch(
        self, records: list[ConsumerRecord], parsed: list[Parsed], outcomes: list[tuple[ConsumerRecord, str, str]]
    ) -> None:
        for record, event_type, outcome in outcomes:
            metrics.EVENTS_CONSUMED.labels(self.service, record.topic, event_type, outcome).inc()
            if outcome == "duplicate":
                log.info("duplicate event ignored", topic=record.topic, partition=record.partition,
                         offset=record.offset, event_type=event_type)
        for record, (envelope, payload, _) in zip(records, parsed, strict=True):
            if envelope is None:
                continue
            if payload is None:
                metrics.EVENTS_CONSUMED.labels(self.service, record.topic, envelope.type, "skipped_unknown").inc()
                log.info("event of unknown type or version skipped", topic=record.topic, partition=record.partition,
                         offset=record.offset, event_id=str(envelope.id), event_type=envelope.type)
            elif envelope.type not in self.handlers:
                metrics.EVENTS_CONSUMED.labels(self.service, record.topic, envelope.type, "ignored").inc()

    def _span(self, record: ConsumerRecord, envelope: Envelope):  # noqa: ANN202 - OpenTelemetry's context manager
        return _tracer.start_as_current_span(
            f"{record.topic} process {envelope.type}", context=context_from_headers(record.headers or ()),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": record.topic,
                        "messaging.consumer.group.name": self.settings.consumer_group,
                        "messaging.message.id": str(envelope.id), "messaging.kafka.offset": record.offset},
        )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Send the offset commit and return without waiting for the broker's response.

        The next poll's events are applied while the commit is in flight,
        which saves its round trip (about 5 ms on the benchmark machine) on
        every poll. Offsets still go out only after the database commit, and
        in order: each commit first waits for the one before it, and so do
        stopping and closing.
        """
        await self._finish_commit()
        if offsets:
            self._commit_in_flight = asyncio.create_task(self._send_commit(offsets))

    async def _finish_commit(self) -> None:
        """Wait for the offset commit in flight, if any, and raise its failure."""
        task, self._commit_in_flight = self._commit_in_flight, None
        if task is not None:
            await task

    async def _send_commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as error:
            # A partition moved to another member during a rebalance. The
            # database already holds the effects and the inbox rows, so the new
            # owner's redelivery is recognised as a duplicate.
            log.warning("offset commit failed after rebalance",
                        offsets={f"{partition.topic}[{partition.partition}]": offset for partition, offset in offsets.items()},
                        error=str(error))

    async def _back_off(self) -> None:
        await asyncio.sleep(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, _BACKOFF_MAX_S)

    # -- one record -------------------------------------------------------------

    async def _apply_record(
        self, connection: asyncpg.Connection, record: ConsumerRecord, parsed: Parsed, first_failure: Exception | None = None
    ) -> _Applied:
        envelope, payload, letter = parsed
        event_type = envelope.type if envelope else "unparsed"
        bound = _event_log(record, envelope)

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
            result = await self._apply_with_retries(connection, record, envelope, payload, handler, bound, first_failure)
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

    def _parse(self, record: ConsumerRecord) -> Parsed:
        try:
            return self._parse_checked(record)
        except Exception as error:  # a message must never end the consumer; whatever it is, it is dead-lettered
            return None, None, DeadLetter("invalid_envelope", f"unreadable message: {type(error).__name__}: {error}", 1)

    def _parse_checked(self, record: ConsumerRecord) -> Parsed:
        if record.value is None:
            return None, None, DeadLetter("invalid_envelope", "message has no value (tombstone)", 1)
        try:
            envelope = Envelope.from_json(record.value)
        except ValidationError as error:
            problem = utf8_problem(record.value)
            if problem is not None:
                # pydantic names a code point and a column here, not the byte that is wrong.
                return None, None, DeadLetter("invalid_envelope", f"not a valid CloudEvent: {problem}; send JSON as UTF-8", 1)
            first = error.errors()[0]
            if first["type"] == "json_invalid":
                # pydantic words it "<root>: Invalid JSON: ..."; the sender needs to hear that the message is no JSON.
                syntax = str(first["msg"]).removeprefix("Invalid JSON: ")
                return None, None, DeadLetter("invalid_envelope", f"not a valid CloudEvent: not JSON ({syntax})", 1)
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
        institution = all_institutions().get(claimed) if claimed is not None else None
        if institution is not None and envelope.region != institution.region:
            return envelope, None, DeadLetter(
                "region_mismatch",
                f"event region {envelope.region.value!r} does not match topic {record.topic!r}; "
                f"{claimed} is in region {institution.region.value!r}",
                1,
            )
        if claimed is not None and not is_inbound_command(envelope.type, envelope.schema_version):
            # Services pick a handler by event type alone, so a hospital must not be able to
            # send a service's event (a DatasetPublished, say) on its topic. A service topic
            # may carry types a newer producer added, and those are skipped below.
            return envelope, None, DeadLetter(
                "unknown_command",
                f"{envelope.type!r} version {envelope.schema_version} is not a command a hospital may send; "
                f"its inbound topic takes {', '.join(INBOUND_COMMANDS)}",
                1,
            )
        try:
            payload = parse_payload(envelope, from_json=True)
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
        if claimed is not None:
            problem = _key_problem(record.key, envelope, payload)
            if problem is not None:
                return envelope, None, DeadLetter("invalid_envelope", problem, 1)
        return envelope, payload, None

    async def _apply_with_retries(
        self,
        connection: asyncpg.Connection,
        record: ConsumerRecord,
        envelope: Envelope,
        payload: EventPayload,
        handler: Handler,
        bound: structlog.stdlib.BoundLogger,
        first_failure: Exception | None = None,
    ) -> DeadLetter | str:
        """Apply the event once; return "applied", "duplicate" or the DeadLetter to send.

        A `first_failure` is taken as the outcome of the first attempt, which
        the all-at-once path already made.
        """
        last_error: BaseException | None = None
        for attempt in range(1, self.settings.max_attempts + 1):
            started = time.perf_counter()
            try:
                if attempt == 1 and first_failure is not None:
                    raise first_failure
                with self._span(record, envelope):
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
        await self._ensure_dead_letter_topic(record.topic)
        await send_dead_letter(self.dlq_producer, record, letter, consumer_group=self.settings.consumer_group)
        await connection.execute(
            "INSERT INTO dead_letters (event_id, topic, kafka_partition, kafka_offset, reason, error) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            str(envelope.id) if envelope else None, record.topic, record.partition, record.offset,
            letter.reason, letter.error,
        )
        metrics.DEAD_LETTERS.labels(self.service, record.topic, letter.reason).inc()
        bound.error("event dead-lettered", reason=letter.reason, error=letter.error)

    async def _ensure_dead_letter_topic(self, topic: str) -> None:
        """Create `<topic>.dlq` if it is missing and this service creates its topics.

        The pattern subscription also reads inbound topics that someone made
        without their dead-letter topic. A send to a missing topic fails only
        after the producer's request timeout, and the service would exit and
        meet the same record after each restart. Where Strimzi owns the topics
        (create_topics off), it creates both, and nothing is checked here.
        """
        name = dlq_topic(topic)
        if not self.settings.create_topics or name in self._dead_letter_topics:
            return
        await create_missing_topics(self.settings, {name: 1})
        self._dead_letter_topics.add(name)

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
