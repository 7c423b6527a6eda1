"""HTTP API: tool-grant applications and awards, fund allocations, reports and pending payouts."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator

from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.service import Service
from medgov_shared.web.auth import Principal, require_roles

from medgov_grants import repository
from medgov_grants.domain.errors import GrantsError
from medgov_grants.domain.fund import Outcome
from medgov_grants.domain.ledger import Disbursed, PayoutHeld, PayoutWaiting
from medgov_grants.domain.money import require_krw
from medgov_grants.domain.reports import (
    InstitutionDisbursement,
    PoolBalance,
    RegionDisbursement,
    disbursements_by_region,
    to_csv,
)
from medgov_grants.domain.tool_grants import Actor, ToolGrantApplication, ToolGrantAward
from medgov_grants.fund_service import FundService

# A JSON number that is not a whole number reaches the domain, which names it
# as fractional; pydantic's generic message would not.
Amount = StrictInt | StrictFloat

_STATUS_BY_CODE = {
    "invalid_amount": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "invalid_tranches": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "invalid_input": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "invalid_policy": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "unknown_institution": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "ineligible_institution": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "not_authorized": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "award_exceeds_pool": status.HTTP_409_CONFLICT,
    "invalid_state": status.HTTP_409_CONFLICT,
    "conflicting_posting": status.HTTP_409_CONFLICT,
}

REPORT_ROLES = ("fund_admin", "council", "operator")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _reject_nul(cls, value: Any) -> Any:
        # PostgreSQL's text refuses NUL, so the other services reject it, and grants rejects it alike.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text contains a NUL character (\\u0000)")
        return value


class ApplicationRequest(_Body):
    application_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    vendor_id: str = Field(description="Registered vendor id, e.g. vendor-medvision.")
    title: str = Field(max_length=300, description="What the anonymization tool does.")
    requested_krw: Amount = Field(description="Requested amount in whole KRW.")


class TrancheRequest(_Body):
    deliverable: str = Field(max_length=300, description="Delivery milestone that releases this tranche.")
    amount_krw: Amount


class AwardRequest(_Body):
    amount_krw: Amount
    tranches: list[TrancheRequest] = Field(max_length=50)


class RejectionRequest(_Body):
    reason: str = Field(max_length=1000)


class AllocationRequest(_Body):
    fund_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    total_krw: Amount


def build_router(fund_service: FundService) -> APIRouter:
    router = APIRouter(tags=["grants"])

    async def command(request: Request, name: str, args: dict[str, Any], actor: Actor) -> list[Outcome]:
        service: Service = request.app.state.service
        try:
            async with service.unit_of_work() as context:
                return await fund_service.run_command(context, name, args, actor)
        except GrantsError as error:
            # The unit of work rolled back: nothing of the command was written.
            raise _http_error(error) from error

    async def read(request: Request, query: Any) -> Any:
        service: Service = request.app.state.service
        async with service.pool.acquire() as connection, connection.transaction():
            return await query(connection)

    @router.post("/tool-grants/applications", status_code=status.HTTP_201_CREATED)
    async def submit_application(
        body: ApplicationRequest, request: Request, principal: Annotated[Principal, Depends(require_roles("applicant"))]
    ) -> dict[str, Any]:
        await command(request, "submit_tool_application", body.model_dump(), _actor(principal))
        application = await read(request, lambda connection: fund_service.application(connection, body.application_id))
        return _application_json(application, None)

    @router.get("/tool-grants/applications/{application_id}")
    async def get_application(
        application_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("applicant", "fund_admin"))],
    ) -> dict[str, Any]:
        application = await read(request, lambda connection: fund_service.application(connection, application_id))
        if application is None or not _may_see(principal, application):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, {"code": "not_found", "message": f"tool grant application {application_id!r} not found"}
            )
        award = await read(request, lambda connection: fund_service.award(connection, f"tool-{application_id}"))
        return _application_json(application, award)

    @router.post("/tool-grants/applications/{application_id}/award", status_code=status.HTTP_201_CREATED)
    async def award_application(
        application_id: str,
        body: AwardRequest,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("fund_admin"))],
    ) -> dict[str, Any]:
        args = {"application_id": application_id, **body.model_dump()}
        outcomes = await command(request, "award_tool_grant", args, _actor(principal))
        (award,) = [item for item in outcomes if isinstance(item, ToolGrantAward)]
        return _award_json(award)

    @router.post("/tool-grants/applications/{application_id}/rejection")
    async def reject_application(
        application_id: str,
        body: RejectionRequest,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("fund_admin"))],
    ) -> dict[str, Any]:
        args = {"application_id": application_id, "reason": body.reason}
        await command(request, "reject_tool_application", args, _actor(principal))
        application = await read(request, lambda connection: fund_service.application(connection, application_id))
        return _application_json(application, None)

    @router.post("/tool-grants/awards/{award_id}/tranches/{tranche_number}/delivery")
    async def confirm_delivery(
        award_id: str,
        tranche_number: int,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("fund_admin"))],
    ) -> dict[str, Any]:
        args = {"award_id": award_id, "tranche_number": tranche_number}
        outcomes = await command(request, "confirm_tranche_delivery", args, _actor(principal))
        return _payout_json(outcomes)

    @router.post("/fund/allocations", status_code=status.HTTP_201_CREATED)
    async def allocate_fund(
        body: AllocationRequest, request: Request, principal: Annotated[Principal, Depends(require_roles("fund_admin"))]
    ) -> dict[str, Any]:
        try:
            total = require_krw(body.total_krw, name="total_krw")
        except GrantsError as error:
            raise _http_error(error) from error
        shares = fund_service.configured_policy.fund.shares_percent
        split = {"fund_id": body.fund_id, "total_krw": total, "shares_percent": shares}
        try:
            outcomes = await command(request, "allocate", {"split": split}, _actor(principal))
        except HTTPException as error:
            # The same fund id with another total reaches the ledger, which names its posting instead of the fund.
            if isinstance(error.detail, dict) and error.detail.get("code") == "conflicting_posting":
                raise _already_allocated(body.fund_id) from error
            raise
        if not outcomes:
            raise _already_allocated(body.fund_id)
        return {"fund_id": body.fund_id, "pools_krw": outcomes[0].pools_krw, "payouts_released": len(outcomes) - 1}

    @router.get("/reports/pools")
    async def pool_report(
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(*REPORT_ROLES))],
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Any:
        rows = await read(request, repository.pool_report)
        return _report(rows, PoolBalance, format, "pool-balances.csv")

    @router.get("/reports/disbursements/institutions")
    async def institution_report(
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(*REPORT_ROLES))],
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Any:
        rows = await read(request, lambda connection: repository.institution_report(connection, _regions()))
        return _report(rows, InstitutionDisbursement, format, "disbursements-by-institution.csv")

    @router.get("/reports/disbursements/regions")
    async def region_report(
        request: Request,
        principal: Annotated[Principal, Depends(require_roles(*REPORT_ROLES))],
        format: Annotated[str, Query(pattern="^(json|csv)$")] = "json",
    ) -> Any:
        rows = await read(request, lambda connection: repository.institution_report(connection, _regions()))
        return _report(disbursements_by_region(rows), RegionDisbursement, format, "disbursements-by-region.csv")

    @router.get("/payouts/pending")
    async def pending_payouts(
        request: Request, principal: Annotated[Principal, Depends(require_roles("fund_admin", "operator"))]
    ) -> list[dict[str, Any]]:
        rows = await read(request, repository.pending_payouts)
        return [{**dict(row), "requested_at": row["requested_at"].isoformat()} for row in rows]

    return router


def _actor(principal: Principal) -> Actor:
    return Actor(subject=principal.id, roles=principal.roles, institution_id=principal.institution)


def _may_see(principal: Principal, application: ToolGrantApplication) -> bool:
    return "fund_admin" in principal.roles or principal.institution == application.vendor_id


def _regions() -> dict[str, str]:
    return {institution_id: item.region.value for institution_id, item in all_institutions().items()}


def _already_allocated(fund_id: str) -> HTTPException:
    message = f"fund {fund_id!r} is already allocated; a fund is allocated once, so give a new fund_id for new money"
    return HTTPException(status.HTTP_409_CONFLICT, {"code": "already_allocated", "message": message})


def _http_error(error: GrantsError) -> HTTPException:
    code = _STATUS_BY_CODE.get(error.code, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return HTTPException(code, {"code": error.code, "message": str(error)})


def _application_json(application: ToolGrantApplication | None, award: ToolGrantAward | None) -> dict[str, Any]:
    assert application is not None
    return {
        "application_id": application.application_id,
        "vendor_id": application.vendor_id,
        "title": application.title,
        "requested_krw": application.requested_krw,
        "status": application.status.value,
        "submitted_by": application.submitted_by,
        "submitted_at": application.submitted_at.isoformat(),
        "decided_by": application.decided_by,
        "decision_note": application.decision_note,
        "award": _award_json(award) if award else None,
    }


def _award_json(award: ToolGrantAward) -> dict[str, Any]:
    return {
        "award_id": award.award_id,
        "application_id": award.application_id,
        "vendor_id": award.vendor_id,
        "amount_krw": award.amount_krw,
        "awarded_by": award.awarded_by,
        "awarded_at": award.awarded_at.isoformat(),
        "tranches": [
            {
                "number": tranche.number,
                "deliverable": tranche.deliverable,
                "amount_krw": tranche.amount_krw,
                "confirmed_at": tranche.confirmed_at.isoformat() if tranche.confirmed_at else None,
            }
            for tranche in award.tranches
        ],
    }


def _payout_json(outcomes: list[Outcome]) -> dict[str, Any]:
    (outcome,) = [item for item in outcomes if isinstance(item, Disbursed | PayoutHeld | PayoutWaiting)]
    status_by_type = {Disbursed: "paid", PayoutHeld: "held_suspended", PayoutWaiting: "waiting_for_funds"}
    return {
        "payout_id": outcome.request.payout_id,
        "amount_krw": outcome.request.amount_krw,
        "status": status_by_type[type(outcome)],
    }


def _report(rows: list[Any], row_type: type, format: str, filename: str) -> Any:
    if format == "csv":
        return Response(
            to_csv(rows, row_type),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return [row.__dict__ for row in rows]
