"""Recording a subject's consents and revocations, and what follows: events, fan-out and re-check.

Each function runs inside the caller's unit of work (an HTTP request or a
consumed event) and locks the subject's row first, so the changes of one
subject apply one at a time in the order they arrive.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from medgov_shared.contracts.events.consent import ConsentGranted, ConsentRevoked, ConsentScope
from medgov_shared.contracts.institutions import all_institutions, get_institution
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.observability.metrics import REVOCATION_FANOUT_SECONDS

from medgov_consent.commands.exclusions import LockedSubject, fan_out, fan_out_many, load_subject_grants, load_subjects_grants
from medgov_consent.commands.recheck import recheck_subject, recheck_subjects
from medgov_consent.domain.errors import ConsentRejected, NotConsentRecorder, RejectionReason
from medgov_consent.domain.fanout import PlannedExclusion
from medgov_consent.domain.history import (
    AppliedRevocation,
    Channel,
    ChangeKind,
    ConsentChange,
    ConsentHistory,
    ConsentRecord,
    Revocation,
)
from medgov_consent.domain.policy import ConsentPolicy
from medgov_consent.domain.scope import permitted_scope
from medgov_consent.repository import histories, projections

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ConsentOutcome:
    consent_id: str
    change: ChangeKind
    revocations_applied: int
    exclusions_requested: int


@dataclass(frozen=True)
class RevocationOutcome:
    consent_id: str
    change: ChangeKind
    exclusions_requested: int


def new_dashboard_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


@dataclass(frozen=True)
class ConsentToRecord:
    """One consent to record for a subject, in the unit of work of `context`."""

    context: HandlerContext
    subject: str
    consent_id: str
    institution_id: str
    channel: Channel
    policy: ConsentPolicy
    granted_at: datetime


async def record_consent(
    context: HandlerContext,
    *,
    subject: str,
    consent_id: str,
    institution_id: str,
    channel: Channel,
    policy: ConsentPolicy,
    granted_at: datetime,
    acknowledge_within: timedelta,
) -> ConsentOutcome:
    """Record a consent (or a new version of it), apply revocations parked for it, and emit what changed."""
    request = ConsentToRecord(context, subject, consent_id, institution_id, channel, policy, granted_at)
    before = await _locked_history(context, subject)
    after, change = _record(before, request)
    await histories.save_history(context.connection, before, after, context.now())
    outcome = await _announce_recorded(request, after, change, acknowledge_within, in_a_dataset=True)
    context.log.info("consent recorded", consent_id=consent_id, change=change.kind.value,
                     revocations_applied=outcome.revocations_applied)
    return outcome


async def record_consents(requests: Sequence[ConsentToRecord], acknowledge_within: timedelta) -> list[ConsentOutcome]:
    """Record consents of distinct subjects with a few set-based statements, with the same effects as `record_consent`.

    Raise ValueError when a subject appears twice, because its consents must
    apply in order, one at a time.
    """
    if not requests:
        return []
    loaded = await _lock_subjects(requests[0].context, [request.subject for request in requests])
    connection, now = requests[0].context.connection, requests[0].context.now()
    in_datasets = await projections.subjects_in_datasets(connection, list(loaded))
    changes = []
    for request in requests:
        before = loaded[request.subject]
        changes.append((request, before, *_record(before, request)))
    await histories.save_histories(connection, [(before, after) for _, before, after, _ in changes], now)

    outcomes = []
    for request, _, after, change in changes:
        outcome = await _announce_recorded(request, after, change, acknowledge_within, in_a_dataset=request.subject in in_datasets)
        # At info level these lines took about 8 % of the service's CPU time in the
        # RecordConsent benchmark (bench/run.py, profiled with py-spy). One info line per batch follows.
        request.context.log.debug("consent recorded", consent_id=request.consent_id, change=change.kind.value,
                                  revocations_applied=outcome.revocations_applied)
        outcomes.append(outcome)
    log.info("consents recorded", count=len(outcomes), first_consent_id=requests[0].consent_id,
             changed=sum(outcome.change in (ChangeKind.RECORDED, ChangeKind.UPDATED) for outcome in outcomes))
    return outcomes


def _record(before: ConsentHistory, request: ConsentToRecord) -> tuple[ConsentHistory, ConsentChange]:
    _require_local_institution(request.context, request.institution_id)
    existing = before.consent(request.consent_id)
    if existing is not None and existing.institution_id != request.institution_id:
        raise ConsentRejected(
            RejectionReason.CONSENT_ID_TAKEN,
            f"consent id {request.consent_id!r} of this subject belongs to {existing.institution_id}; "
            f"choose an id unique to {request.institution_id}",
            path="consent_id",
        )
    return before.record_consent(
        request.consent_id, institution_id=request.institution_id, channel=request.channel, policy=request.policy,
        granted_at=request.granted_at,
    )


async def _announce_recorded(
    request: ConsentToRecord, after: ConsentHistory, change: ConsentChange, acknowledge_within: timedelta, *, in_a_dataset: bool
) -> ConsentOutcome:
    """Emit what a recorded consent changed, fan out the parked revocations it applied, and re-check the subject's grants.

    `in_a_dataset` False skips the re-check; it may be given only when the
    subject is known to belong to no dataset, which leaves nothing to re-check.
    """
    context = request.context
    for parked in change.not_applied:
        context.log.warning(
            "parked revocation not applied: another hospital recorded the consent", consent_id=parked.consent_id,
            recorded_by=change.record.institution_id, revoked_by=parked.institution_id,
            parked_effective_at=parked.effective_at.isoformat(),
        )
    if change.kind in (ChangeKind.RECORDED, ChangeKind.UPDATED):
        await _emit_granted(context, request.subject, change.record)
    for applied in change.applied:
        await _emit_revoked(context, after, applied)

    rechecked = change.kind in (ChangeKind.RECORDED, ChangeKind.UPDATED) and in_a_dataset
    planned: list[PlannedExclusion] = []
    if change.applied or rechecked:
        # Read once for both the fan-out and the re-check, which look at the same grants.
        view = await load_subject_grants(context.connection, request.subject)
        if change.applied:
            planned = await fan_out(context, after, acknowledge_within, view=view)
        if rechecked:
            await recheck_subject(context, after, view=view.with_requested(planned))
    return ConsentOutcome(request.consent_id, change.kind, len(change.applied), len(planned))


@dataclass(frozen=True)
class RevocationToRecord:
    """One revocation to apply or park for a subject, in the unit of work of `context`."""

    context: HandlerContext
    subject: str
    revocation: Revocation


async def revoke(
    context: HandlerContext, *, subject: str, revocation: Revocation, acknowledge_within: timedelta
) -> RevocationOutcome:
    """Apply or park a revocation; an applied one is announced and fanned out to the grants it reaches."""
    (outcome,) = await revoke_many([RevocationToRecord(context, subject, revocation)], acknowledge_within)
    return outcome


async def revoke_many(requests: Sequence[RevocationToRecord], acknowledge_within: timedelta) -> list[RevocationOutcome]:
    """Apply or park revocations of distinct subjects, with a fixed number of statements for the whole batch.

    Each applied revocation is announced, fanned out to the grants it reaches
    and followed by a re-check of the subject's grants, as `revoke` does for
    one. Raise ValueError when a subject appears twice, because its changes
    must apply in order, one at a time, and NotConsentRecorder when a
    revocation comes from a hospital other than the one that recorded the consent.
    """
    if not requests:
        return []
    loaded = await _lock_subjects(requests[0].context, [request.subject for request in requests])
    connection, now = requests[0].context.connection, requests[0].context.now()
    changes = []
    for request in requests:
        before = loaded[request.subject]
        if before.consent(request.revocation.consent_id) is None:
            # An opt-out, or a revocation parked until its consent arrives. Either one is
            # kept under its sender, so the sender must be a hospital of this region.
            _require_local_institution(request.context, request.revocation.institution_id)
        _require_recorder(before, request.revocation)
        changes.append((request, before, *before.record_revocation(request.revocation)))
    await histories.save_histories(connection, [(before, after) for _, before, after, _ in changes], now)

    applied = []
    for request, _, after, change in changes:
        if change.applied is None:
            request.context.log.info("revocation not applied", consent_id=request.revocation.consent_id, change=change.kind.value)
            continue
        await _emit_revoked(request.context, after, change.applied)
        applied.append((request, after, change.applied))
    # Read once for both the fan-out and the re-check, which look at the same grants.
    views = await load_subjects_grants(connection, [request.subject for request, _, _ in applied])
    locked = [LockedSubject(request.context, after, views[request.subject]) for request, after, _ in applied]
    plans = await fan_out_many(locked, acknowledge_within)
    fanned_out_at = requests[0].context.now()
    for (request, _, revocation), plan in zip(applied, plans, strict=True):
        if revocation.effective_at <= fanned_out_at:
            REVOCATION_FANOUT_SECONDS.observe(max((fanned_out_at - revocation.effective_at).total_seconds(), 0.0))
        request.context.log.info("revocation applied", consent_id=request.revocation.consent_id, exclusions=len(plan))
    await recheck_subjects([replace(item, view=item.view.with_requested(plan)) for item, plan in zip(locked, plans, strict=True)])

    exclusions_of = {request.subject: len(plan) for (request, _, _), plan in zip(applied, plans, strict=True)}
    return [
        RevocationOutcome(request.revocation.consent_id, change.kind, exclusions_of.get(request.subject, 0))
        for request, _, _, change in changes
    ]


def _require_recorder(history: ConsentHistory, revocation: Revocation) -> None:
    """Raise NotConsentRecorder when a hospital revokes a consent that another hospital recorded."""
    recorded = history.consent(revocation.consent_id)
    if recorded is not None and not revocation.may_withdraw(recorded):
        # Only the hospital that recorded a consent revokes it on the patient's behalf.
        raise NotConsentRecorder(
            f"consent {revocation.consent_id} was recorded by {recorded.institution_id}, "
            f"not {revocation.institution_id}; only that hospital can revoke it"
        )


async def revoke_everything(
    context: HandlerContext,
    *,
    subject: str,
    institution_id: str | None,
    effective_at: datetime,
    acknowledge_within: timedelta,
    scope: ConsentScope | None = None,
) -> list[RevocationOutcome]:
    """Revoke every consent of the subject in force, or opt out when none is; the dashboard's revoke button.

    `scope` None revokes all each consent permitted (or, for an opt-out, all
    research). `institution_id` names the hospital the patient acts through;
    it is needed only for an opt-out, which revokes no hospital's consent.
    """
    history = await _locked_history(context, subject)
    in_force = [record for record in history.consents if record.in_force(effective_at)]
    if not in_force:
        if institution_id is None:
            raise ConsentRejected(
                RejectionReason.UNKNOWN_INSTITUTION,
                "no consent is in force, so the opt-out needs institution_id: the hospital you act through",
                path="institution_id",
            )
        opt_out = Revocation(new_dashboard_id("optout"), institution_id, "dashboard", effective_at, scope, standalone=True)
        return [await revoke(context, subject=subject, revocation=opt_out, acknowledge_within=acknowledge_within)]

    outcomes = []
    for record in in_force:
        revocation = Revocation(record.consent_id, record.institution_id, "dashboard", effective_at, scope)
        outcomes.append(await revoke(context, subject=subject, revocation=revocation, acknowledge_within=acknowledge_within))
    return outcomes


async def _lock_subjects(context: HandlerContext, subjects: Sequence[str]) -> dict[str, ConsentHistory]:
    """Lock `subjects` with one statement and return each one's history.

    Raise ValueError when a subject appears twice, because its changes must
    apply in order, one at a time, and ConsentRejected for another region's subject.
    """
    if len(set(subjects)) != len(subjects):
        raise ValueError("a batch takes each subject once; apply repeated subjects one at a time")
    for subject in subjects:
        _require_local_subject(context, subject)
    created = await histories.lock_subjects(context.connection, subjects, context.now())
    # Consents, revocations and parked revocations all reference the subject's
    # row, so a subject whose row was just created has none to load.
    loaded = await histories.load_histories(context.connection, [subject for subject in subjects if not created[subject]])
    return {subject: loaded.get(subject) or ConsentHistory(subject=subject) for subject in subjects}


def _require_local_subject(context: HandlerContext, subject: str) -> None:
    """Reject a pseudonym made under another region's key: that patient's consents belong to that region's installation."""
    region = subject.split(".", 1)[0]
    if region != context.outbox.region:
        raise ConsentRejected(
            RejectionReason.OTHER_REGION,
            f"{subject[:40]} is a pseudonym of region {region}; this installation serves {context.outbox.region}, "
            "so the patient's consent is recorded there",
            path="subject",
        )


def _require_local_institution(context: HandlerContext, institution_id: str) -> None:
    """Reject a hospital of another region: it records its patients' consents at its own region's installation."""
    institution = all_institutions().get(institution_id)
    if institution is not None and institution.region.value != context.outbox.region:
        raise ConsentRejected(
            RejectionReason.INSTITUTION_OF_OTHER_REGION,
            f"{institution_id} is a hospital of region {institution.region.value}; this installation serves "
            f"{context.outbox.region}, so {institution_id} records consents at the {institution.region.value} installation",
            path="institution_id",
        )


async def _locked_history(context: HandlerContext, subject: str) -> ConsentHistory:
    return (await _lock_subjects(context, [subject]))[subject]


async def _emit_granted(context: HandlerContext, subject: str, record: ConsentRecord) -> None:
    scope = permitted_scope(record.policy)
    if scope is None:
        # An opt-out consent permits nothing, and ConsentGranted has no field to say so.
        context.log.info("consent permits nothing; no ConsentGranted emitted", consent_id=record.consent_id)
        return
    period = record.policy.root.period
    await context.emit(
        ConsentGranted(
            subject=subject,
            consent_id=record.consent_id,
            institution_id=record.institution_id,
            region=get_institution(record.institution_id).region,
            scope=scope,
            period_start=period.start if period else None,
            period_end=period.end if period else None,
            channel=record.channel,
            granted_at=record.granted_at,
        )
    )


async def _emit_revoked(context: HandlerContext, history: ConsentHistory, applied: AppliedRevocation) -> None:
    if applied.denied is None:
        # Revoking an opt-out withdraws no consent, so there is no ConsentRevoked to announce.
        context.log.info("opt-out consent revoked; no ConsentRevoked emitted", consent_id=applied.consent_id)
        return
    consent = history.consent(applied.consent_id)
    institution_id = consent.institution_id if consent else applied.revocation.institution_id
    await context.emit(
        ConsentRevoked(
            subject=history.subject,
            consent_id=applied.consent_id,
            institution_id=institution_id,
            region=get_institution(institution_id).region,
            scope=applied.denied,
            channel=applied.revocation.channel,
            effective_at=applied.effective_at,
        )
    )
