"""Routes of the signed-in patient: their own datasets, projects, consents, and giving or revoking consent."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, ConfigDict, Field

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.types import EntityId, InstitutionId
from medgov_shared.web.auth import Principal, require_roles

from medgov_consent.api.common import institution_card, patient_subject, settings_of, unit_of_work
from medgov_consent.commands import consents
from medgov_consent.domain.errors import ConsentRejected, RejectionReason, UnknownConsent, UnknownSubject
from medgov_consent.domain.history import Revocation
from medgov_consent.domain.policy import Period
from medgov_consent.domain.scope import policy_from_scope, validate_scope
from medgov_consent.repository import histories, views
from medgov_consent.repository.histories import policy_from_json

router = APIRouter(prefix="/v1/me", tags=["patient"])

PatientPrincipal = Annotated[Principal, Depends(require_roles("patient"))]


class GiveConsent(BaseModel):
    """A consent the patient gives on the dashboard."""

    model_config = ConfigDict(extra="forbid")

    scope: ConsentScope = Field(description="What the consent covers.")
    institution_id: InstitutionId | None = Field(
        default=None, description="Hospital the patient acts through; defaults to the token's institution."
    )


class RevokeConsent(BaseModel):
    """A revocation from the dashboard: one consent, or (without consent_id) every consent in force."""

    model_config = ConfigDict(extra="forbid")

    consent_id: EntityId | None = Field(default=None, description="Consent to revoke; absent revokes all.")
    scope: ConsentScope | None = Field(default=None, description="Part to revoke; absent revokes everything it permitted.")
    institution_id: InstitutionId | None = Field(
        default=None, description="Hospital the patient acts through, needed for an opt-out without any consent."
    )


@router.get("")
async def read_own_records(request: Request, principal: PatientPrincipal) -> dict[str, Any]:
    """Return the patient's datasets, the projects that used them with each exclusion's status, and their consents."""
    subject = patient_subject(principal, "GET /v1/me")
    async with unit_of_work(request, "GET /v1/me") as context:
        if not await histories.subject_known(context.connection, subject):
            raise UnknownSubject("no records or consents of this subject are known to the platform; check the pseudonym")
        datasets = await views.patient_datasets(context.connection, subject)
        projects = await views.patient_projects(context.connection, subject)
        consent_rows = await views.patient_consents(context.connection, subject)
        revocation_rows = await views.patient_revocations(context.connection, subject)
        now = context.now()

    return {
        "subject": subject,
        "datasets": [_dataset(row) for row in datasets],
        "projects": [_project(row, now) for row in projects],
        "consents": [_consent(row, now) for row in consent_rows],
        "revocations": [_revocation(row) for row in revocation_rows],
    }


@router.post("/consents", status_code=status.HTTP_201_CREATED)
async def give_consent(request: Request, body: GiveConsent, principal: PatientPrincipal) -> dict[str, Any]:
    route = "POST /v1/me/consents"
    subject = patient_subject(principal, route)
    settings = settings_of(request)
    async with unit_of_work(request, route) as context:
        institution_id = _acting_hospital(body.institution_id or principal.institution)
        validate_scope(body.scope, institution_ids=all_institutions())
        outcome = await consents.record_consent(
            context,
            subject=subject,
            consent_id=consents.new_dashboard_id("dash"),
            institution_id=institution_id,
            channel="dashboard",
            policy=policy_from_scope(body.scope),
            granted_at=context.now(),
            acknowledge_within=settings.acknowledge_within,
        )
    return {"consent_id": outcome.consent_id, "change": outcome.change.value}


@router.post("/revocations")
async def revoke_consent(request: Request, body: RevokeConsent, principal: PatientPrincipal) -> dict[str, Any]:
    route = "POST /v1/me/revocations"
    subject = patient_subject(principal, route)
    settings = settings_of(request)
    async with unit_of_work(request, route) as context:
        if body.scope is not None:
            validate_scope(body.scope, institution_ids=all_institutions(), revocation=True)
        now = context.now()
        if body.consent_id is None:
            acting = body.institution_id or principal.institution
            outcomes = await consents.revoke_everything(
                context,
                subject=subject,
                institution_id=_acting_hospital(acting) if acting else None,
                effective_at=now,
                acknowledge_within=settings.acknowledge_within,
                scope=body.scope,
            )
        else:
            history = await histories.load_history(context.connection, subject)
            record = history.consent(body.consent_id)
            if record is None:
                raise UnknownConsent(f"consent {body.consent_id} is not one of your consents")
            revocation = Revocation(record.consent_id, record.institution_id, "dashboard", now, body.scope)
            outcomes = [
                await consents.revoke(
                    context, subject=subject, revocation=revocation, acknowledge_within=settings.acknowledge_within
                )
            ]
    return {
        "revocations": [
            {"consent_id": item.consent_id, "change": item.change.value, "exclusions_requested": item.exclusions_requested}
            for item in outcomes
        ]
    }


def _acting_hospital(institution_id: str | None) -> str:
    if not institution_id:
        raise ConsentRejected(
            RejectionReason.UNKNOWN_INSTITUTION,
            "missing; give the id of the hospital you act through, such as knuh",
            path="institution_id",
        )
    institution = all_institutions().get(institution_id)
    if institution is None or institution.kind != "hospital":
        raise ConsentRejected(
            RejectionReason.UNKNOWN_INSTITUTION,
            f"{institution_id!r} is not a registered hospital; give institution_id of the hospital you act through",
            path="institution_id",
        )
    return institution.id


def _dataset(row: Any) -> dict[str, Any]:
    return {
        "dataset_id": row["dataset_id"],
        "title": row["title"],
        "holder": institution_card(row["holder_id"]),
        "version": row["version"],
        "withdrawn": row["withdrawn_at"] is not None,
    }


def _project(row: Any, now: datetime) -> dict[str, Any]:
    ended_at = row["ended_at"]
    active = now < row["expires_at"] and (ended_at is None or now < ended_at)
    if not active:
        state = "ended"
    elif now < row["starts_at"]:
        state = "not_started"
    else:
        state = "active"
    return {
        "grant_id": row["grant_id"],
        "dataset_id": row["dataset_id"],
        "application_id": row["application_id"],
        "title": row["project_title"] or row["application_id"],
        "purpose_text": row["purpose_text"] or "",
        "purposes": list(row["purposes"]),
        "applicant": institution_card(row["applicant_id"] or row["grantee_id"]),
        "holder": institution_card(row["holder_id"]),
        "decision_ids": list(row["decision_ids"] or []),
        "data_environment": row["data_environment"],
        "conditions": list(row["conditions"]),
        "starts_at": row["starts_at"].isoformat(),
        "expires_at": row["expires_at"].isoformat(),
        "ended_at": ended_at.isoformat() if ended_at else None,
        "active": active,
        "state": state,
        "exclusion": _exclusion(row),
    }


def _exclusion(row: Any) -> dict[str, Any] | None:
    if row["exclusion_id"] is None:
        return None
    grantee_at, holder_at = row["grantee_acknowledged_at"], row["holder_acknowledged_at"]
    if grantee_at and holder_at:
        state = "completed"
    elif row["overdue_at"]:
        state = "overdue"
    elif grantee_at or holder_at:
        state = "partly_acknowledged"
    else:
        state = "requested"
    return {
        "exclusion_id": row["exclusion_id"],
        "state": state,
        "requested_at": row["requested_at"].isoformat(),
        "acknowledge_by": row["acknowledge_by"].isoformat(),
        "grantee_acknowledged_at": grantee_at.isoformat() if grantee_at else None,
        "holder_acknowledged_at": holder_at.isoformat() if holder_at else None,
    }


def _consent(row: Any, now: datetime) -> dict[str, Any]:
    withdrawn_at = row["withdrawn_at"]
    period = policy_from_json(row["policy"]).root.period
    state = consent_status(granted_at=row["granted_at"], withdrawn_at=withdrawn_at, period=period, now=now)
    return {
        "consent_id": row["consent_id"],
        "institution": institution_card(row["institution_id"]),
        "channel": row["channel"],
        "scope": row["permitted_scope"],
        "granted_at": row["granted_at"].isoformat(),
        "withdrawn_at": withdrawn_at.isoformat() if withdrawn_at else None,
        "period_start": period.start.isoformat() if period and period.start else None,
        "period_end": period.end.isoformat() if period and period.end else None,
        "status": state,
        "in_force": state == "in_force",
    }


def consent_status(*, granted_at: datetime, withdrawn_at: datetime | None, period: Period | None, now: datetime) -> str:
    """Return withdrawn, not_started, expired or in_force, the way evaluation reads the consent's own period."""
    if withdrawn_at is not None and withdrawn_at <= now:
        return "withdrawn"
    if now < granted_at or (period is not None and period.start is not None and now < period.start):
        return "not_started"
    if period is not None and period.end is not None and period.end <= now:
        return "expired"
    return "in_force"


def _revocation(row: Any) -> dict[str, Any]:
    return {
        "consent_id": row["consent_id"],
        "institution": institution_card(row["institution_id"]),
        "channel": row["channel"],
        "opt_out": row["standalone"],
        "scope": row["denied_scope"],
        "effective_at": row["effective_at"].isoformat(),
    }
