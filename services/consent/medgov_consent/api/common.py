"""Helpers shared by the route modules: the unit of work, domain errors mapped to HTTP, institutions for display."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import HTTPException, Request, status

from medgov_shared.contracts.guards import redact_personal_data
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.pseudonym import is_pseudonym
from medgov_shared.messaging.context import HandlerContext
from medgov_shared.observability.metrics import HTTP_REJECTED
from medgov_shared.service import Service
from medgov_shared.web.auth import Principal

from medgov_consent.domain.errors import (
    ConsentDomainError,
    ConsentRejected,
    NotAParty,
    NotConsentRecorder,
    UnknownConsent,
    UnknownExclusion,
    UnknownSubject,
)
from medgov_consent.settings import ConsentSettings

_STATUS = {
    ConsentRejected: status.HTTP_422_UNPROCESSABLE_CONTENT,
    UnknownSubject: status.HTTP_404_NOT_FOUND,
    UnknownConsent: status.HTTP_404_NOT_FOUND,
    UnknownExclusion: status.HTTP_404_NOT_FOUND,
    NotAParty: status.HTTP_403_FORBIDDEN,
    NotConsentRecorder: status.HTTP_403_FORBIDDEN,
}


def service_of(request: Request) -> Service:
    return request.app.state.service


def settings_of(request: Request) -> ConsentSettings:
    settings = service_of(request).settings
    assert isinstance(settings, ConsentSettings)
    return settings


@contextlib.asynccontextmanager
async def unit_of_work(request: Request, route: str) -> AsyncIterator[HandlerContext]:
    """Run a command in one transaction; a domain error rolls it back and becomes a specific 4xx response."""
    try:
        async with service_of(request).unit_of_work() as context:
            yield context
    except ConsentDomainError as error:
        status_code = _STATUS.get(type(error), status.HTTP_422_UNPROCESSABLE_CONTENT)
        HTTP_REJECTED.labels("consent", route, str(status_code)).inc()
        raise HTTPException(status_code, detail=error_detail(error)) from error


def error_detail(error: ConsentDomainError) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": error.code, "message": error.message}
    if isinstance(error, ConsentRejected) and error.path:
        detail["path"] = error.path
    return detail


def reject(route: str, status_code: int, code: str, message: str) -> HTTPException:
    HTTP_REJECTED.labels("consent", route, str(status_code)).inc()
    # A message may quote a header or parameter the caller sent.
    return HTTPException(status_code, detail={"code": code, "message": redact_personal_data(message)})


def patient_subject(principal: Principal, route: str) -> str:
    """Return the pseudonym a patient's token is for; only it may be read or changed."""
    if not principal.subject or not is_pseudonym(principal.subject):
        raise reject(route, status.HTTP_403_FORBIDDEN, "no_subject", "the patient token has no valid 'subject' pseudonym claim")
    return principal.subject


def hospital_of(principal: Principal, route: str) -> str:
    """Return the caller's institution when it is a registered hospital."""
    institution = all_institutions().get(principal.institution or "")
    if institution is None or institution.kind != "hospital":
        raise reject(
            route,
            status.HTTP_403_FORBIDDEN,
            "unknown_institution",
            f"the token's institution {principal.institution!r} is not a registered hospital"
            if principal.institution
            else "the token names no institution; a hospital's token carries its institution id",
        )
    return institution.id


def institution_card(institution_id: str) -> dict[str, str]:
    institution = all_institutions().get(institution_id)
    if institution is None:
        return {"id": institution_id, "name_ko": institution_id, "name_en": institution_id}
    return {"id": institution.id, "name_ko": institution.name_ko, "name_en": institution.name_en}
