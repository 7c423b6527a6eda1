"""Commands of the review service. Each runs in the caller's unit of work: lock, decide, emit, save.

HTTP routes, the inbound-command handler and the periodic jobs all go through
here, so a submission behaves the same whichever way it arrives. The events a
command causes reach the outbox, the application's history and (for SLA
alerts) the alert table in the same transaction as the new state.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from pydantic import TypeAdapter

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.catalog import DatasetWithdrawn
from medgov_shared.contracts.events.review import ReviewSlaBreached, ReviewSlaWarning
from medgov_shared.contracts.types import Board, Region, Vote
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.observability import metrics
from medgov_shared.messaging.errors import CONNECTION_ERRORS

from medgov_review.domain.aggregate import Application, ReviewRules
from medgov_review.domain.errors import ApplicationNotFound, GrantNotFound, IdempotencyKeyReused
from medgov_review.domain.screening import ApplicationDraft
from medgov_review.repository import ApplicationRepository, CatalogProjection, StoredApplication

log = structlog.get_logger(__name__)

_DRAFT = TypeAdapter(ApplicationDraft)

# An application whose clock check fails is retried after this pause, so one
# broken document neither floods the log nor delays the others every tick.
CLOCK_RETRY_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class CommandResult:
    """The outcome of a command: the application's status afterwards and the events it emitted."""

    application_id: str
    status: str
    events: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "application_id": self.application_id,
            "status": self.status,
            "events": list(self.events),
            **self.details,
        }


def draft_fingerprint(draft: ApplicationDraft) -> str:
    """Hash the submitted content, so a reused idempotency key with other content is detected."""
    canonical = orjson.dumps(_DRAFT.dump_python(draft, mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class ReviewService:
    def __init__(self, rules: ReviewRules, region: Region, *, clock_batch_size: int = 100) -> None:
        self.rules = rules
        self.region = region
        self.clock_batch_size = clock_batch_size

    # -- submissions ---------------------------------------------------------------

    async def submit(
        self, context: HandlerContext, application_id: str, idempotency_key: str, draft: ApplicationDraft
    ) -> tuple[dict[str, Any], bool]:
        """Submit or resubmit; return (result, replayed). A repeated idempotency key returns the first result.

        Raises IdempotencyKeyReused when the key comes back with other content,
        and the domain's ReviewError for invalid input.
        """
        repository = ApplicationRepository(context.connection)
        await repository.lock_id(application_id)
        fingerprint = draft_fingerprint(draft)
        previous = await repository.find_submission(application_id, idempotency_key)
        if previous is not None:
            return self._replay(application_id, idempotency_key, fingerprint, *previous), True

        now = context.now()
        catalog = await CatalogProjection(context.connection).terms_of(draft.dataset_ids)
        stored = await repository.get(application_id, for_update=True)
        if stored is None:
            application, events = Application.submit(
                application_id, draft, catalog=catalog, rules=self.rules, received_in=self.region, now=now
            )
            stored = StoredApplication(application, correlation_id=None)
        else:
            events = stored.application.resubmit(draft, catalog=catalog, rules=self.rules, now=now)

        stored = await self._publish(context, repository, stored, events)
        await repository.save(stored, rules=self.rules, now=now)
        result = self._submission_result(stored.application, events, now).as_json()
        await repository.save_submission(application_id, idempotency_key, fingerprint, result, now)
        return result, False

    def _replay(
        self,
        application_id: str,
        idempotency_key: str,
        fingerprint: str,
        stored_fingerprint: str,
        result: dict[str, Any],
    ) -> dict[str, Any]:
        if stored_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"idempotency key {idempotency_key!r} was already used for application {application_id} with "
                "different content; use a new key for a new submission",
                application_id=application_id,
            )
        return result

    def _submission_result(self, application: Application, events: list[EventPayload], now: datetime) -> CommandResult:
        missing = next((list(item.missing_items) for item in events if item.event_type == "RevisionRequested"), [])
        sla = application.sla_status(now, self.rules)
        conflicts = application.purpose_report.conflicts if application.purpose_report else ()
        return CommandResult(
            application_id=application.application_id,
            status=application.status.value,
            events=tuple(item.event_type for item in events),
            details={
                "missing_items": missing,
                "regions_involved": [region.value for region in application.regions],
                "due_at": sla.due_at.isoformat() if sla and sla.due_at else None,
                "purpose_conflicts": [
                    {"dataset_id": item.dataset_id, "term": item.term, "explanation": item.explanation}
                    for item in conflicts
                ],
            },
        )

    # -- votes and revocations -----------------------------------------------------

    async def vote(
        self,
        context: HandlerContext,
        application_id: str,
        member_id: str,
        board: Board,
        vote: Vote,
        comments: tuple[str, ...],
        conditions: tuple[str, ...],
    ) -> CommandResult:
        repository = ApplicationRepository(context.connection)
        stored = await self._load_for_update(repository, application_id)
        now = context.now()

        events = stored.application.record_vote(
            member_id, board, vote, comments=comments, conditions=conditions, rules=self.rules, now=now
        )

        stored = await self._publish(context, repository, stored, events)
        await repository.save(stored, rules=self.rules, now=now)
        return CommandResult(application_id, stored.application.status.value, tuple(item.event_type for item in events))

    async def revoke_grant(self, context: HandlerContext, grant_id: str, member_id: str, reason: str) -> CommandResult:
        repository = ApplicationRepository(context.connection)
        application_id = await repository.application_of_grant(grant_id)
        if application_id is None:
            raise GrantNotFound(f"grant {grant_id} not found", grant_id=grant_id)
        stored = await self._load_for_update(repository, application_id)
        now = context.now()

        events = stored.application.revoke_grant(grant_id, member_id, reason, rules=self.rules, now=now)

        stored = await self._publish(context, repository, stored, events)
        await repository.save(stored, rules=self.rules, now=now)
        return CommandResult(application_id, stored.application.status.value, tuple(item.event_type for item in events))

    async def _load_for_update(self, repository: ApplicationRepository, application_id: str) -> StoredApplication:
        stored = await repository.get(application_id, for_update=True)
        if stored is None:
            raise ApplicationNotFound(f"application {application_id} not found", application_id=application_id)
        return stored

    # -- catalog changes -----------------------------------------------------------

    async def withdraw_dataset(self, context: HandlerContext, event: DatasetWithdrawn) -> None:
        """Record the withdrawal in the catalog projection and in every open application that requests it."""
        found = await CatalogProjection(context.connection).apply_withdrawn(event, context.now())
        if not found:
            # Per-dataset key order puts DatasetPublished first, so this dataset
            # was never published; there is nothing to withdraw.
            context.log.info("withdrawal of a dataset never published ignored", dataset_id=event.dataset_id)
            return
        repository = ApplicationRepository(context.connection)
        for stored in await repository.open_requesting(event.dataset_id):
            if stored.application.withdraw_dataset(event.dataset_id):
                await repository.save(stored, rules=self.rules, now=context.now())

    # -- periodic jobs -------------------------------------------------------------

    async def check_clocks(self, context: HandlerContext) -> int:
        """Emit the SLA alerts that fell due; return how many applications were examined."""
        repository = ApplicationRepository(context.connection)
        now = context.now()
        due = await repository.due_for_clock_check(now, self.clock_batch_size)
        for stored in due:
            await self._in_savepoint(
                context, stored, "SLA clock check", lambda item: item.application.check_clock(now, self.rules)
            )
        return len(due)

    async def expire_grants(self, context: HandlerContext) -> int:
        """Expire the grants whose expiry passed; return how many applications were examined."""
        repository = ApplicationRepository(context.connection)
        now = context.now()
        due = await repository.with_grants_due_to_expire(now, self.clock_batch_size)
        for stored in due:
            await self._in_savepoint(context, stored, "grant expiry", lambda item: item.application.expire_grants(now))
        return len(due)

    async def _in_savepoint(
        self,
        context: HandlerContext,
        stored: StoredApplication,
        job: str,
        command: Callable[[StoredApplication], list[EventPayload]],
    ) -> None:
        """Apply a job's command to one application; a failure is logged and retried later, and spares the others."""
        repository = ApplicationRepository(context.connection)
        now = context.now()
        application_id = stored.application.application_id
        try:
            async with context.connection.transaction():
                events = command(stored)
                published = await self._publish(context, repository, stored, events)
                await repository.save(published, rules=self.rules, now=now)
        except CONNECTION_ERRORS:
            raise
        except Exception as error:  # a broken document or a bug: this application waits, the others go on
            log.error("periodic job failed for an application; retrying it later", job=job,
                      application_id=application_id, retry_in_s=CLOCK_RETRY_AFTER.total_seconds(),
                      error=f"{type(error).__name__}: {error}")
            await context.connection.execute(
                "UPDATE applications SET next_clock_check_at = $2 WHERE application_id = $1",
                application_id,
                now + CLOCK_RETRY_AFTER,
            )

    # -- emitting ------------------------------------------------------------------

    async def _publish(
        self,
        context: HandlerContext,
        repository: ApplicationRepository,
        stored: StoredApplication,
        events: list[EventPayload],
    ) -> StoredApplication:
        """Emit the events under the application's flow id and record them; return the stored application."""
        application_id = stored.application.application_id
        # One unit of work may serve several applications (a job), so each
        # application's events get that application's own flow id.
        context.correlation_id = stored.correlation_id
        correlation_id = stored.correlation_id
        for event in events:
            envelope = await context.emit(event)
            correlation_id = correlation_id or envelope.correlationid
            await repository.append_history(application_id, envelope)
            # NOTE: counted when written to the outbox; a transaction that then
            # rolls back leaves the counter one ahead of the published alerts.
            if isinstance(event, ReviewSlaWarning):
                await repository.record_alert(application_id, event.threshold_percent, envelope.id, envelope.time)
                metrics.SLA_WARNINGS.labels(str(event.threshold_percent)).inc()
            elif isinstance(event, ReviewSlaBreached):
                await repository.record_alert(application_id, 100, envelope.id, envelope.time)
                metrics.SLA_BREACHES.inc()
        return StoredApplication(stored.application, correlation_id)
