"""Routes of hospital staff: recording a patient's FHIR Consent (JSON or XML) and a revocation made at the hospital.

They do over HTTP what the RecordConsent and RevokeConsent commands do over a
hospital's inbound topic, and reject bad input with a specific 4xx error.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.pseudonym import Pseudonym
from medgov_shared.contracts.types import EntityId, UtcDatetime
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.web.auth import Principal, require_roles

from medgov_consent.api.common import hospital_of, reject, settings_of, unit_of_work
from medgov_consent.commands import consents
from medgov_consent.domain.fhir_consent import parse_fhir_consent_xml, read_fhir_consent, reject_direct_identifiers
from medgov_consent.domain.history import Revocation
from medgov_consent.domain.policy import ConsentPolicy
from medgov_consent.domain.scope import validate_scope

router = APIRouter(prefix="/v1/hospital", tags=["hospital"])

HospitalPrincipal = Annotated[Principal, Depends(require_roles("hospital"))]

XML_MEDIA_TYPES = ("application/fhir+xml", "application/xml", "text/xml")


class FhirConsentUpload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Pseudonym = Field(description="Pseudonym of the patient.")
    consent_id: EntityId = Field(description="The hospital's consent id.")
    fhir_consent: dict[str, Any] = Field(description="FHIR R4 Consent resource as JSON, patient reference removed.")


class HospitalRevocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Pseudonym = Field(description="Pseudonym of the patient.")
    consent_id: EntityId = Field(description="Consent being revoked.")
    scope: ConsentScope | None = Field(default=None, description="Part revoked; absent means the whole consent.")
    effective_at: UtcDatetime | None = Field(default=None, description="When it takes effect; absent means now.")


@router.post("/consents", status_code=status.HTTP_201_CREATED)
async def record_fhir_consent(request: Request, body: FhirConsentUpload, principal: HospitalPrincipal) -> dict[str, Any]:
    route = "POST /v1/hospital/consents"
    institution_id = hospital_of(principal, route)
    async with unit_of_work(request, route) as context:
        reject_direct_identifiers(body.fhir_consent)
        policy = read_fhir_consent(body.fhir_consent)
        return await _record(request, context, body.subject, body.consent_id, institution_id, policy)


# A FHIR Consent is a few kilobytes (the MII example in the samples is 4.8 KB).
XML_MAX_BODY_BYTES = 1_048_576


@router.post("/consents/xml", status_code=status.HTTP_201_CREATED)
async def record_fhir_consent_xml(
    request: Request,
    principal: HospitalPrincipal,
    subject: Annotated[Pseudonym, Query(description="Pseudonym of the patient.")],
    consent_id: Annotated[EntityId, Query(description="The hospital's consent id.")],
) -> dict[str, Any]:
    route = "POST /v1/hospital/consents/xml"
    institution_id = hospital_of(principal, route)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip()
    if media_type not in XML_MEDIA_TYPES:
        raise reject(
            route,
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            f"content type {media_type or 'none'!r}; send FHIR XML as application/fhir+xml",
        )
    document = await _read_xml_body(request, route)
    async with unit_of_work(request, route) as context:
        resource = parse_fhir_consent_xml(document)
        reject_direct_identifiers(resource)
        policy = read_fhir_consent(resource)
        return await _record(request, context, subject, consent_id, institution_id, policy)


async def _read_xml_body(request: Request, route: str) -> bytes:
    """Read the body up to XML_MAX_BODY_BYTES; reject a larger one with 413 before reading the rest."""
    def too_large() -> Exception:
        return reject(route, status.HTTP_413_CONTENT_TOO_LARGE, "body_too_large",
                      f"a FHIR Consent in XML may be at most {XML_MAX_BODY_BYTES} bytes")

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > XML_MAX_BODY_BYTES:
        raise too_large()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > XML_MAX_BODY_BYTES:
            raise too_large()
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/revocations")
async def record_revocation(request: Request, body: HospitalRevocation, principal: HospitalPrincipal) -> dict[str, Any]:
    route = "POST /v1/hospital/revocations"
    institution_id = hospital_of(principal, route)
    async with unit_of_work(request, route) as context:
        if body.scope is not None:
            validate_scope(body.scope, institution_ids=all_institutions(), revocation=True)
        revocation = Revocation(body.consent_id, institution_id, "fhir", body.effective_at or context.now(), body.scope)
        outcome = await consents.revoke(
            context,
            subject=body.subject,
            revocation=revocation,
            acknowledge_within=settings_of(request).acknowledge_within,
        )
    return {"consent_id": outcome.consent_id, "change": outcome.change.value, "exclusions_requested": outcome.exclusions_requested}


async def _record(
    request: Request, context: HandlerContext, subject: str, consent_id: str, institution_id: str, policy: ConsentPolicy
) -> dict[str, Any]:
    outcome = await consents.record_consent(
        context,
        subject=subject,
        consent_id=consent_id,
        institution_id=institution_id,
        channel="fhir",
        policy=policy,
        granted_at=policy.given_at or context.now(),
        acknowledge_within=settings_of(request).acknowledge_within,
    )
    return {
        "consent_id": outcome.consent_id,
        "change": outcome.change.value,
        "revocations_applied": outcome.revocations_applied,
        "exclusions_requested": outcome.exclusions_requested,
        "notes": list(policy.notes),
    }
