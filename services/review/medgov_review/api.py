"""HTTP API: submissions, votes, revocations, the reviewers' queue, history, figures and the council chair.

Domain errors become HTTP errors in one place (ReviewErrorRoute), with the
error's stable code, its message and the values involved in the body.
"""

from collections.abc import Callable, Coroutine
from datetime import date
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from medgov_shared.contracts.types import Board, DataEnvironment, DuoCode, EntityId, Region, Vote
from medgov_shared.service import Service
from medgov_shared.web.auth import Principal, current_principal, require_roles

from medgov_review.domain.aggregate import Application
from medgov_review.domain.council import NoCouncilTerm
from medgov_review.domain.errors import ApplicationNotFound, ErrorKind, ReviewError
from medgov_review.domain.screening import ApplicationDraft
from medgov_review.repository import ApplicationRepository
from medgov_review.review_service import ReviewService
from medgov_review.views import application_detail, queue_entry, statistics

STATUS_BY_KIND = {
    ErrorKind.INVALID: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ErrorKind.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    ErrorKind.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    ErrorKind.CONFLICT: status.HTTP_409_CONFLICT,
}

REVIEWER_ROLES = ("irb_reviewer", "drb_reviewer", "council", "operator")
ROLE_OF_BOARD = {Board.IRB: "irb_reviewer", Board.DRB: "drb_reviewer"}

_TEXT = 5000
_LINES = 50


def _reject_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000, so the field is rejected here instead of failing the insert.
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000), which cannot be stored; remove it")
    return value


Text = Annotated[str, AfterValidator(_reject_nul)]


class ReviewErrorRoute(APIRoute):
    """A route that turns a domain ReviewError into an HTTP error with the error's code and details."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_review_errors(request: Request) -> Response:
            try:
                return await handle(request)
            except ReviewError as error:
                detail = {"code": error.code, "message": error.message, **error.details}
                raise HTTPException(STATUS_BY_KIND[error.kind], detail=detail) from error

        return handle_review_errors


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmissionRequest(_Body):
    """A data-access application; every field but the ids may be missing, and screening lists what is."""

    application_id: EntityId = Field(description="Id chosen by the applicant.", examples=["app-2026-0001"])
    idempotency_key: Text = Field(
        min_length=1, max_length=200, description="Repeating a key returns the first result.", examples=["sub-7f1c"]
    )
    principal_investigator: Text | None = Field(default=None, max_length=200, examples=["Dr. Kim"])
    title: Text | None = Field(default=None, max_length=500, examples=["Chest CT nodule detection"])
    purpose_text: Text | None = Field(default=None, max_length=_TEXT, examples=["Train a nodule detector"])
    purpose_codes: list[DuoCode] = Field(default_factory=list, max_length=_LINES, examples=[["HMB"]])
    dataset_ids: list[EntityId] = Field(default_factory=list, max_length=_LINES, examples=[["ds-knuh-ct-0001"]])
    requested_start: date | None = Field(default=None, examples=["2027-01-01"])
    requested_end: date | None = Field(default=None, examples=["2027-12-31"])
    data_environment: DataEnvironment | None = Field(default=None, examples=["secure_enclave"])
    irb_document_ref: Text | None = Field(default=None, max_length=500, examples=["irb://knuh/2026-113"])

    def draft(self, applicant_institution: str) -> ApplicationDraft:
        return ApplicationDraft(
            applicant_institution=applicant_institution,
            principal_investigator=self.principal_investigator,
            title=self.title,
            purpose_text=self.purpose_text,
            purpose_codes=tuple(self.purpose_codes),
            dataset_ids=tuple(self.dataset_ids),
            requested_start=self.requested_start,
            requested_end=self.requested_end,
            data_environment=self.data_environment,
            irb_document_ref=self.irb_document_ref,
        )


class VoteRequest(_Body):
    board: Board = Field(description="Board the member votes for; the token needs that board's reviewer role.")
    vote: Vote
    comments: list[Annotated[Text, Field(max_length=_TEXT)]] = Field(
        default_factory=list, max_length=_LINES, description="Reasons; required for reject and revise."
    )
    conditions: list[Annotated[Text, Field(max_length=_TEXT)]] = Field(
        default_factory=list, max_length=_LINES, description="Conditions of an approval."
    )


class RevocationRequest(_Body):
    reason: Text = Field(min_length=1, max_length=_TEXT, examples=["Breach of conditions"])


def build_router(review: ReviewService) -> APIRouter:
    router = APIRouter(tags=["review"], route_class=ReviewErrorRoute)

    def service_of(request: Request) -> Service:
        return request.app.state.service

    @router.post("/applications", status_code=status.HTTP_201_CREATED)
    async def submit_application(
        body: SubmissionRequest,
        request: Request,
        response: Response,
        principal: Annotated[Principal, Depends(require_roles("applicant"))],
    ) -> dict[str, Any]:
        """Submit an application, or resubmit one that waits for revision."""
        if not principal.institution:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the applicant's token has no 'institution' claim")
        async with service_of(request).unit_of_work() as context:
            result, replayed = await review.submit(
                context, body.application_id, body.idempotency_key, body.draft(principal.institution)
            )
        if replayed:
            response.status_code = status.HTTP_200_OK
            response.headers["Idempotent-Replayed"] = "true"
        return result

    @router.post("/applications/{application_id}/votes")
    async def cast_vote(
        application_id: str,
        body: VoteRequest,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("irb_reviewer", "drb_reviewer"))],
    ) -> dict[str, Any]:
        """Record the calling member's vote for their board."""
        if ROLE_OF_BOARD[body.board] not in principal.roles:
            needed = ROLE_OF_BOARD[body.board]
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"voting for the {body.board} needs the role {needed}")
        async with service_of(request).unit_of_work() as context:
            result = await review.vote(
                context,
                application_id,
                principal.id,
                body.board,
                body.vote,
                tuple(body.comments),
                tuple(body.conditions),
            )
        return result.as_json()

    @router.post("/grants/{grant_id}/revocation")
    async def revoke_grant(
        grant_id: str,
        body: RevocationRequest,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("drb_reviewer"))],
    ) -> dict[str, Any]:
        """Revoke an active grant; the caller must sit on the DRB of the grant's region."""
        async with service_of(request).unit_of_work() as context:
            result = await review.revoke_grant(context, grant_id, principal.id, body.reason)
        return result.as_json()

    @router.get("/applications")
    async def open_applications(
        request: Request,
        _: Annotated[Principal, Depends(require_roles(*REVIEWER_ROLES))],
        region: Annotated[Region | None, Query(description="Only applications that involve this region.")] = None,
    ) -> dict[str, Any]:
        """List open applications, oldest first, with days used and left in the window."""
        async with service_of(request).unit_of_work() as context:
            applications = await ApplicationRepository(context.connection).open_applications(region)
            now = context.now()
        return {"applications": [queue_entry(item, now, review.rules) for item in applications]}

    @router.get("/applications/{application_id}")
    async def get_application(
        application_id: str, request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> dict[str, Any]:
        """Return one application with purpose findings, ballots, SLA figures, time in each state and grants."""
        async with service_of(request).unit_of_work() as context:
            application = await _readable_application(context.connection, application_id, principal)
            now = context.now()
        return application_detail(application, now, review.rules)

    @router.get("/applications/{application_id}/events")
    async def application_history(
        application_id: str, request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> dict[str, Any]:
        """Return every event the application caused, as CloudEvents, in the order emitted."""
        async with service_of(request).unit_of_work() as context:
            await _readable_application(context.connection, application_id, principal)
            events = await ApplicationRepository(context.connection).history(application_id)
        return {"application_id": application_id, "events": events}

    @router.get("/statistics")
    async def review_statistics(
        request: Request, _: Annotated[Principal, Depends(require_roles(*REVIEWER_ROLES))]
    ) -> dict[str, Any]:
        """Return mean and 90th-percentile days to decision, counts per status and mean time per state."""
        async with service_of(request).unit_of_work() as context:
            repository = ApplicationRepository(context.connection)
            days = await repository.decision_days()
            counts = await repository.status_counts()
            seconds = await repository.mean_time_in_states(context.now())
        return statistics(days, counts, seconds)

    @router.get("/council/chair")
    async def council_chair(
        _: Annotated[Principal, Depends(current_principal)],
        on: Annotated[date, Query(description="Date in Korea (KST), YYYY-MM-DD.")],
    ) -> dict[str, Any]:
        """Return which region chairs the governance council on a date, and that term."""
        try:
            term = review.rules.governance.council.term_on(on)
        except NoCouncilTerm as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        return {
            "date": on.isoformat(),
            "chair_region": term.chair_region.value,
            "term_number": term.number,
            "term_starts_on": term.starts_on.isoformat(),
            "term_ends_before": term.ends_before.isoformat(),
        }

    return router


async def _readable_application(
    connection: asyncpg.Connection, application_id: str, principal: Principal
) -> Application:
    """Load an application the caller may read: reviewers, the council and operators read all, an applicant its own."""
    stored = await ApplicationRepository(connection).get(application_id)
    if stored is None:
        raise ApplicationNotFound(f"application {application_id} not found", application_id=application_id)
    application = stored.application
    if principal.has_any(REVIEWER_ROLES):
        return application
    if "applicant" in principal.roles and principal.institution == application.applicant_institution:
        return application
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"application {application_id} belongs to another institution")
