"""Composition of one service: database, outbox relay, consumer, periodic jobs and the HTTP app.

Each service's `main.py` builds a `Service` with its settings, migrations,
handlers and routers; `Service.app()` returns the FastAPI application whose
lifespan starts and stops everything in order.
"""

import asyncio
import contextlib
import gc
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from medgov_shared.asyncapi import asyncapi_yaml
from medgov_shared.clock import Clock, SystemClock
from medgov_shared.contracts.registry import INBOUND_TOPIC_PATTERN, topic_of
from medgov_shared.db.migrate import upgrade_async
from medgov_shared.db.pool import create_pool, ensure_database
from medgov_shared.messaging.consumer import EventConsumer, Handler
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.messaging.errors import CONNECTION_ERRORS, describe_error, describe_validation_error
from medgov_shared.messaging.kafka import producer_options, started
from medgov_shared.messaging.outbox import Outbox
from medgov_shared.messaging.outbox_retention import outbox_pruner
from medgov_shared.messaging.relay import OutboxRelay
from medgov_shared.messaging.topics import ensure_topics
from medgov_shared.observability.logging import OutageLog, configure_logging
from medgov_shared.observability.tracing import configure_tracing, context_from_headers, tracer
from medgov_shared.settings import ServiceSettings
from medgov_shared.web.auth import TokenVerifier
from medgov_shared.web.request_body import RequestBodyGuard

log = structlog.get_logger(__name__)
_tracer = tracer(__name__)
T = TypeVar("T")

# Errors of an HTTP request that mean the database or broker is away, not that the request is wrong.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = tuple(
    error for error in CONNECTION_ERRORS if error is not OSError and issubclass(error, Exception)
)

Job = Callable[[HandlerContext], Awaitable[None]]


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every `interval_s` in its own unit of work (e.g. the SLA clock tick)."""

    name: str
    interval_s: float
    run: Job


def consumed_topics_pattern(topics: Sequence[str], *, inbound: bool) -> str:
    """Build one regex for the service topics a service reads, plus every hospital's inbound topic."""
    alternatives = [t.replace(".", r"\.") for t in topics]
    if inbound:
        alternatives.append(INBOUND_TOPIC_PATTERN.strip("^$").replace(r"([a-z][a-z0-9-]{1,31})", r"[a-z][a-z0-9-]{1,31}"))
    if not alternatives:
        raise ValueError("a consumer needs at least one topic")
    return "^(" + "|".join(alternatives) + ")$"


def _request_error_message(error: Mapping) -> str:
    """Return the message for one request validation error, naming an empty body as such."""
    if error["type"] == "missing" and tuple(error["loc"]) == ("body",):
        # FastAPI's "Field required" at the body means no body was sent at all.
        return "request body is missing; send a JSON object with the fields /openapi.json gives for this route"
    return error["msg"]


class Service:
    def __init__(
        self,
        *,
        settings: ServiceSettings,
        migrations: Path,
        handlers: Mapping[str, Handler],
        consumes: Sequence[str] = (),
        consume_inbound: bool = False,
        urgent_event_types: Sequence[str] = (),
        routers: Sequence[APIRouter] = (),
        jobs: Sequence[PeriodicJob] = (),
        clock: Clock | None = None,
        title: str | None = None,
        pool_size: int = 10,
    ) -> None:
        self.settings = settings
        self.migrations = migrations
        self.handlers = dict(handlers)
        self.consumes = tuple(consumes)
        self.consume_inbound = consume_inbound
        self.urgent_event_types = tuple(urgent_event_types)
        self.routers = tuple(routers)
        self.jobs = tuple(jobs)
        self.clock: Clock = clock or SystemClock()
        self.title = title or f"medgov {settings.service_name}"
        self.pool_size = pool_size
        self._outage_log = OutageLog(log)
        self.topic = topic_of(settings.service_name).name
        self.outbox = Outbox(
            source=settings.source,
            region=settings.region.value,
            topic=self.topic,
            max_message_bytes=settings.kafka_max_message_bytes,
        )
        self._pool: asyncpg.Pool | None = None
        self._producer: AIOKafkaProducer | None = None
        self.consumer: EventConsumer | None = None
        self.relay: OutboxRelay | None = None
        self._tasks: dict[str, asyncio.Task] = {}
        self._task_failures: dict[str, str] = {}
        self._stopping = False
        # Called once a background task ended outside stop(); run() uses it to shut the process down.
        self.on_task_failure: Callable[[], None] | None = None
        # Set by `run` to tell whether a stop signal arrived, which ends a wait for the database or broker at start.
        self.exit_requested: Callable[[], bool] = lambda: False

    # -- resources ---------------------------------------------------------------

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "Service.start() was not called"
        return self._pool

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None, "Service.start() was not called"
        return self._producer

    @contextlib.asynccontextmanager
    async def unit_of_work(self, *, correlation_id: uuid.UUID | None = None) -> AsyncIterator[HandlerContext]:
        """Open one transaction for an HTTP command or a job, so the events emitted in it reach the outbox atomically."""
        async with self.pool.acquire() as connection, connection.transaction():
            yield HandlerContext(
                connection=connection, outbox=self.outbox, clock=self.clock, correlation_id=correlation_id
            )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        self._stopping = False
        self._task_failures.clear()
        configure_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
        await self._when_reachable("database", lambda: _probe_database(settings.database_url, settings.create_database))
        if settings.create_database:
            await ensure_database(settings.database_url)
        await upgrade_async(self.migrations, settings.database_url)
        self._pool = await create_pool(settings.database_url, max_size=self.pool_size)
        if settings.create_topics:
            await self._when_reachable("broker", lambda: ensure_topics(settings))
        self._producer = await self._when_reachable("broker", lambda: started(AIOKafkaProducer(**producer_options(settings))))

        if settings.role != "worker":
            self.relay = OutboxRelay(
                service=settings.service_name, pool=self.pool, producer=self.producer,
                renew_producer=self._renew_producer, poll_interval_s=settings.relay_poll_interval_s,
            )
            self._start_task("relay", self.relay.run())
            if settings.outbox_prune_interval_s > 0:
                # Beside the relay, in the process that owns the outbox's sent rows.
                retention = PeriodicJob(
                    "outbox-retention", settings.outbox_prune_interval_s,
                    outbox_pruner(settings.service_name, settings.outbox_keep_sent_days),
                )
                self._start_task(f"job:{retention.name}", self._run_job(retention))
        if settings.role == "relay":
            log.info("outbox relay started", service=settings.service_name, region=settings.region.value, topic=self.topic)
            return
        if self.handlers:
            self.consumer = EventConsumer(
                settings=settings, pool=self.pool, outbox=self.outbox, clock=self.clock,
                handlers=self.handlers, pattern=consumed_topics_pattern(self.consumes, inbound=self.consume_inbound),
                dlq_producer=self.producer, urgent_types=self.urgent_event_types,
            )
            await self._when_reachable("broker", self.consumer.start)
            self._start_task("consumer", self.consumer.run())
        for job in self.jobs:
            self._start_task(f"job:{job.name}", self._run_job(job))
        log.info("service started", service=settings.service_name, region=settings.region.value,
                 topic=self.topic, consumes=list(self.consumes), inbound=self.consume_inbound)

    async def _when_reachable(self, backend: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Return what `attempt` returns, calling it again while the database or broker cannot be reached.

        A process may start before them, after a node restart or with the whole
        stack. It then waits 1, 2, 4 ... up to 30 seconds between attempts
        instead of exiting, which would use up a supervisor's restarts. A stop
        requested meanwhile ends the wait with the last error.
        """
        delay_s = 1.0
        while True:
            try:
                return await attempt()
            except NOT_REACHABLE_ERRORS as error:
                if self.exit_requested():
                    raise
                self._outage_log.warning("starting: backend not reachable; will retry", backend=backend,
                                         error=describe_error(error), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)

    async def _renew_producer(self) -> AIOKafkaProducer:
        """Replace the Kafka producer of the relay and the dead-letter path with a new one, and return it."""
        old = self._producer
        renewed = await started(AIOKafkaProducer(**producer_options(self.settings)))
        self._producer = renewed
        if self.consumer is not None:
            self.consumer.dlq_producer = renewed
        if old is not None:
            # Sends still in flight on the old producer finish before it closes.
            await old.stop()
        log.info("kafka producer renewed", service=self.settings.service_name)
        return renewed

    def _start_task(self, name: str, work: Coroutine[None, None, None]) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(lambda finished: self._task_done(name, finished))
        self._tasks[name] = task

    def _task_done(self, name: str, task: asyncio.Task) -> None:
        """Log a background task that ended outside stop() and keep the reason for /readyz."""
        if self._stopping or task.cancelled():
            return
        error = task.exception()
        if error is None:
            self._task_failures[name] = "exited"
            log.error("background task exited", service=self.settings.service_name, task=name)
        else:
            self._task_failures[name] = f"failed: {type(error).__name__}: {error}"
            log.error("background task failed", service=self.settings.service_name, task=name,
                      exc_info=(type(error), error, error.__traceback__))
        if self.on_task_failure is not None:
            self.on_task_failure()

    @property
    def task_failures(self) -> Mapping[str, str]:
        """Background tasks that ended outside stop(), with the reason."""
        return self._task_failures

    async def stop(self) -> None:
        """Drain the in-flight batch (or abandon it uncommitted after the drain timeout), then close."""
        log.info("service stopping", service=self.settings.service_name)
        self._stopping = True
        if self.consumer is not None:
            self.consumer.request_stop()
        if self.relay is not None:
            self.relay.request_stop()
        for name, task in list(self._tasks.items()):
            if name.startswith("job:"):
                task.cancel()
        tasks = list(self._tasks.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.settings.drain_timeout_s)
            for task in pending:
                # Cancelling rolls back the open transaction; its offsets were never committed.
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self.consumer is not None:
            await self.consumer.close()
        if self._producer is not None:
            await self._producer.stop()
        if self._pool is not None:
            await self._pool.close()
        log.info("service stopped", service=self.settings.service_name)

    async def _run_job(self, job: PeriodicJob) -> None:
        while True:
            try:
                async with self.unit_of_work() as context:
                    await job.run(context)
            except asyncio.CancelledError:
                raise
            except CONNECTION_ERRORS as error:
                self._outage_log.warning("job could not reach the database; will retry", kind=f"job:{job.name}",
                                         job=job.name, error=describe_error(error))
            except Exception:
                log.exception("job failed", job=job.name)
            await asyncio.sleep(job.interval_s)

    # -- probes --------------------------------------------------------------------

    def is_alive(self) -> bool:
        return all(not task.done() for task in self._tasks.values())

    async def readiness(self) -> dict[str, str]:
        """Check the database, the broker and the consumer loop; 'ok' or the reason per check."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(2):
                await self.pool.fetchval("SELECT 1")
            checks["database"] = "ok"
        except Exception as error:  # any failure means not ready; the reason is reported
            checks["database"] = f"unreachable: {type(error).__name__}"
        try:
            async with asyncio.timeout(3):
                await self.producer.client.fetch_all_metadata()
            checks["kafka"] = "ok"
        except Exception as error:
            checks["kafka"] = f"unreachable: {type(error).__name__}"
        if self.consumer is not None:
            checks["consumer"] = "ok" if self.consumer.is_healthy() else "not polling"
        if self.relay is not None:
            checks["relay"] = self._relay_check()
        for name, task in self._tasks.items():
            if task.done():
                checks[f"task:{name}"] = self._task_failures.get(name, "stopped")
        return checks

    def _relay_check(self) -> str:
        assert self.relay is not None
        # A healthy relay finishes a pass at least every poll interval.
        stalled_after_s = max(30.0, 10 * self.settings.relay_poll_interval_s)
        since = self.relay.seconds_since_success()
        if since is None or since <= stalled_after_s:
            return "ok"
        return f"no outbox pass finished for {since:.0f} s"

    # -- HTTP ----------------------------------------------------------------------

    def app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        # Swagger UI and ReDoc would load their scripts from a CDN, which
        # hospital networks often block and which a governance service should
        # not pull into an operator's browser. /openapi.json stays, for
        # offline viewers and client generators.
        app = FastAPI(title=self.title, lifespan=lifespan, version="1.0", docs_url=None, redoc_url=None)
        app.state.service = self
        app.state.token_verifier = TokenVerifier(
            secret=self.settings.jwt_secret.get_secret_value() if self.settings.jwt_secret else None,
            public_key=self.settings.jwt_public_key,
        )

        @app.exception_handler(ValidationError)
        async def invalid_event(request: Request, error: ValidationError) -> Response:
            # A request that passed its own schema can still build an event the
            # contracts reject (e.g. free text shaped like a resident registration
            # number); the caller gets the field and the rule, not a 500.
            return JSONResponse({"detail": f"invalid input: {describe_validation_error(error)}"}, status_code=422)

        @app.exception_handler(RequestValidationError)
        async def invalid_request(request: Request, error: RequestValidationError) -> Response:
            # FastAPI's own handler echoes each rejected input. Serializing a body
            # that is not UTF-8, or nested about 1,000 levels deep, then raised, so
            # the response was a 500. The location, message and type are enough to fix a request.
            errors = [{"loc": list(item["loc"]), "msg": _request_error_message(item), "type": item["type"]}
                      for item in error.errors()]
            return JSONResponse({"detail": errors}, status_code=422)

        @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
        async def nul_in_text(request: Request, error: asyncpg.CharacterNotInRepertoireError) -> Response:
            return JSONResponse({"detail": "invalid input: text contains a NUL character (\\u0000)"}, status_code=422)

        async def backend_unavailable(request: Request, error: Exception) -> Response:
            # While PostgreSQL or Kafka restarts, a caller should retry, not
            # read a bare "Internal Server Error". Nothing was committed: the
            # unit of work rolls back on any exception.
            self._outage_log.warning("request failed: backend unavailable", path=request.url.path,
                                     error=type(error).__name__)
            return JSONResponse(
                {"detail": f"the service's database or broker is unavailable ({type(error).__name__}); retry later"},
                status_code=503, headers={"Retry-After": "5"},
            )

        for unavailable in UNAVAILABLE_ERRORS:
            app.add_exception_handler(unavailable, backend_unavailable)

        # Added before the tracing middleware, so it sits inside it: an
        # HTTPException raised while the route reads its body then reaches
        # FastAPI directly instead of through the tracing middleware's task group.
        app.add_middleware(RequestBodyGuard, max_body_bytes=self.settings.http_max_body_bytes)

        @app.middleware("http")
        async def trace_request(request: Request, call_next):  # noqa: ANN202 - Starlette's middleware signature
            # A caller's W3C traceparent header makes the events this request emits
            # part of the caller's trace (e.g. a vote continuing an application's trace).
            parent = context_from_headers(dict(request.headers))
            with _tracer.start_as_current_span(f"{request.method} {request.url.path}", context=parent,
                                               kind=SpanKind.SERVER,
                                               attributes={"service.name": self.settings.service_name}):
                return await call_next(request)

        @app.get("/healthz", include_in_schema=False)
        async def healthz() -> Response:
            alive = self.is_alive()
            return JSONResponse({"status": "ok" if alive else "failed"}, status_code=200 if alive else 503)

        @app.get("/readyz", include_in_schema=False)
        async def readyz() -> Response:
            checks = await self.readiness()
            ready = all(value == "ok" for value in checks.values())
            return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

        @app.get("/metrics", include_in_schema=False)
        async def prometheus_metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        @app.get("/asyncapi.yaml", include_in_schema=False)
        async def asyncapi() -> Response:
            return PlainTextResponse(asyncapi_yaml(), media_type="application/yaml")

        if self.settings.role != "relay":  # a relay process serves probes and metrics, not the API
            for router in self.routers:
                app.include_router(router)
        return app


# Failures that mean the database or broker cannot be reached (yet): refused
# or reset connections, names that do not resolve, timeouts, PostgreSQL starting up.
NOT_REACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    socket.gaierror,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    KafkaConnectionError,
    KafkaTimeoutError,
)


async def _probe_database(database_url: str, maintenance: bool) -> None:
    """Open and close one connection: to the service's database, or with `maintenance` to the server's `postgres` database."""
    if maintenance:
        database_url = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
    connection = await asyncpg.connect(database_url, timeout=10)
    await connection.close()


def run(service: Service) -> None:
    """Serve the service until SIGTERM or SIGINT, or until a background task dies; uvicorn then runs the lifespan shutdown.

    A process whose consumer or relay died would answer HTTP while doing
    none of its work, so it shuts down and exits with status 1 for its
    supervisor (the kubelet, or the demo stack) to restart it.
    """
    settings = service.settings
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    start_time = time.monotonic()
    server = uvicorn.Server(uvicorn.Config(
        service.app(),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) + 5,
    ))
    service.on_task_failure = lambda: setattr(server, "should_exit", True)
    service.exit_requested = lambda: server.should_exit
    tune_garbage_collector(settings.gc_threshold)
    stop_signals = _record_stop_signals()
    server.run()
    log.info("service exited", service=settings.service_name, uptime_s=round(time.monotonic() - start_time, 1),
             signal=stop_signals[-1].name if stop_signals else None, failed_tasks=dict(service.task_failures) or None)
    if service.task_failures:
        sys.exit(1)


def _record_stop_signals() -> list[signal.Signals]:
    """Replace the default handlers of SIGTERM and SIGINT by ones that only record the signal; return the record.

    uvicorn handles both signals while it serves. After draining, it raises
    the signal again, and the default handlers then killed the process: exit
    status 143 for SIGTERM, a traceback for SIGINT, and no "service exited"
    line. With these handlers the process logs that line and exits 0 after a
    clean drain, as the kubelet and the demo's supervisor expect.
    """
    received: list[signal.Signals] = []

    def record(number: int, _frame: object) -> None:
        received.append(signal.Signals(number))

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, record)
    return received


def tune_garbage_collector(threshold: int) -> None:
    """Collect garbage less often, and leave the objects made at start out of every later collection.

    Python collects its youngest generation after 700 new container objects,
    and each full collection walks every module, class and schema loaded at
    start. In the RecordConsent benchmark (bench/run.py) py-spy --native found
    the collector in a fifth of the consent service's samples; see ADR 0030.
    """
    if threshold == 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
    log.info("garbage collector tuned", threshold=threshold, frozen_objects=gc.get_freeze_count())
