"""Handlers of the events the consent service consumes: hospitals' inbound commands, the catalog's datasets, the review service's grants."""

from collections.abc import Sequence
from datetime import timedelta

from medgov_shared.contracts.events.catalog import DatasetPublished, DatasetRegistered, DatasetSubjectsAdded, DatasetWithdrawn
from medgov_shared.contracts.events.inbound import RecordConsent, RevokeConsent
from medgov_shared.contracts.events.review import (
    AccessExpired,
    AccessGranted,
    AccessRevoked,
    ApplicationApproved,
    ApplicationSubmitted,
)
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.messaging.consumer import Handler
from medgov_shared.messaging.context import BatchableHandler, HandlerContext, RejectEvent

from medgov_consent.commands import consents, projections
from medgov_consent.domain.errors import ConsentRejected, NotConsentRecorder
from medgov_consent.domain.fhir_consent import read_fhir_consent
from medgov_consent.domain.history import Revocation
from medgov_consent.domain.scope import validate_scope

CONSUMED_TOPICS = ("medgov.review.v1", "medgov.catalog.v1")


def build_handlers(acknowledge_within: timedelta) -> dict[str, Handler]:
    """Return one handler per consumed event type."""

    async def record_consent(context: HandlerContext, payload: RecordConsent) -> None:
        request = _consent_to_record(context, payload)
        try:
            await consents.record_consent(
                context, subject=request.subject, consent_id=request.consent_id, institution_id=request.institution_id,
                channel=request.channel, policy=request.policy, granted_at=request.granted_at,
                acknowledge_within=acknowledge_within,
            )
        except ConsentRejected as error:
            raise RejectEvent(f"RecordConsent {payload.consent_id} rejected ({error.code}): {error.message}") from error

    async def record_many_consents(items: Sequence[tuple[HandlerContext, RecordConsent]]) -> None:
        # Any rejection or a repeated subject raises, and the runtime then
        # applies these events one at a time through record_consent.
        requests = [_consent_to_record(context, payload) for context, payload in items]
        await consents.record_consents(requests, acknowledge_within)

    async def revoke_consent(context: HandlerContext, payload: RevokeConsent) -> None:
        request = _revocation_to_record(context, payload)
        try:
            await consents.revoke(context, subject=payload.subject, revocation=request.revocation,
                                  acknowledge_within=acknowledge_within)
        except (ConsentRejected, NotConsentRecorder) as error:
            raise RejectEvent(f"RevokeConsent {payload.consent_id} rejected ({error.code}): {error.message}") from error

    async def revoke_many_consents(items: Sequence[tuple[HandlerContext, RevokeConsent]]) -> None:
        # As for consents: any rejection or a repeated subject raises, and the
        # runtime then applies these events one at a time through revoke_consent.
        requests = [_revocation_to_record(context, payload) for context, payload in items]
        await consents.revoke_many(requests, acknowledge_within)

    async def dataset_subjects_added(context: HandlerContext, payload: DatasetSubjectsAdded) -> None:
        await projections.dataset_subjects_added(context, payload, acknowledge_within)

    async def access_granted(context: HandlerContext, payload: AccessGranted) -> None:
        assert context.incoming is not None
        await projections.access_granted(
            context, payload, granted_at=context.incoming.time, acknowledge_within=acknowledge_within
        )

    async def access_revoked(context: HandlerContext, payload: AccessRevoked) -> None:
        await projections.access_ended(context, payload.grant_id, payload.revoked_at, f"revoked: {payload.reason}")

    async def access_expired(context: HandlerContext, payload: AccessExpired) -> None:
        await projections.access_ended(context, payload.grant_id, payload.expired_at, "expired")

    handlers: dict[str, Handler] = {
        RecordConsent.event_type: BatchableHandler(one=record_consent, many=record_many_consents),
        RevokeConsent.event_type: BatchableHandler(one=revoke_consent, many=revoke_many_consents),
        DatasetRegistered.event_type: projections.dataset_registered,
        DatasetSubjectsAdded.event_type: dataset_subjects_added,
        DatasetPublished.event_type: projections.dataset_published,
        DatasetWithdrawn.event_type: projections.dataset_withdrawn,
        ApplicationSubmitted.event_type: projections.application_submitted,
        ApplicationApproved.event_type: projections.application_approved,
        AccessGranted.event_type: access_granted,
        AccessRevoked.event_type: access_revoked,
        AccessExpired.event_type: access_expired,
    }
    return handlers


def _consent_to_record(context: HandlerContext, payload: RecordConsent) -> consents.ConsentToRecord:
    """Check the sender and read the FHIR Consent; raise RejectEvent when either is unacceptable."""
    _require_hospital(payload.institution_id, payload.event_type)
    assert context.incoming is not None
    try:
        policy = read_fhir_consent(payload.fhir_consent)
    except ConsentRejected as error:
        raise RejectEvent(f"RecordConsent {payload.consent_id} rejected ({error.code}): {error.message}") from error
    return consents.ConsentToRecord(
        context, payload.subject, payload.consent_id, payload.institution_id, "fhir", policy,
        policy.given_at or context.incoming.time,
    )


def _revocation_to_record(context: HandlerContext, payload: RevokeConsent) -> consents.RevocationToRecord:
    """Check the sender and the scope; raise RejectEvent when either is unacceptable."""
    _require_hospital(payload.institution_id, payload.event_type)
    try:
        if payload.scope is not None:
            validate_scope(payload.scope, institution_ids=all_institutions(), revocation=True)
    except ConsentRejected as error:
        raise RejectEvent(f"RevokeConsent {payload.consent_id} rejected ({error.code}): {error.message}") from error
    revocation = Revocation(payload.consent_id, payload.institution_id, "fhir", payload.effective_at, payload.scope)
    return consents.RevocationToRecord(context, payload.subject, revocation)


def _require_hospital(institution_id: str, event_type: str) -> None:
    institution = all_institutions().get(institution_id)
    if institution is None:
        raise RejectEvent(f"{event_type} from unknown institution {institution_id!r}")
    if institution.kind != "hospital":
        raise RejectEvent(f"{event_type} from {institution_id}, a {institution.kind}; only hospitals record or revoke consents")
