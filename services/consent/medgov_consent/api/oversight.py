"""Routes for the parties of exclusions and for oversight: listing and acknowledging exclusions, re-check findings."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from medgov_shared.web.auth import Principal, require_roles

from medgov_consent.api.common import reject, unit_of_work
from medgov_consent.commands import exclusions as exclusion_commands
from medgov_consent.repository import exclusions

router = APIRouter(prefix="/v1", tags=["exclusions"])

PARTY_ROLES = ("hospital", "applicant")
OVERSIGHT_ROLES = ("drb_reviewer", "operator", "council")

Reader = Annotated[Principal, Depends(require_roles(*PARTY_ROLES, *OVERSIGHT_ROLES))]
Party = Annotated[Principal, Depends(require_roles(*PARTY_ROLES))]
Overseer = Annotated[Principal, Depends(require_roles(*OVERSIGHT_ROLES))]


@router.get("/exclusions")
async def list_exclusions(
    request: Request,
    principal: Reader,
    open_only: Annotated[bool, Query(alias="open", description="Only exclusions a party has not acknowledged yet.")] = False,
) -> dict[str, Any]:
    """List exclusions: a grantee or holder gets its own, and the DRB, operators and the council get all."""
    route = "GET /v1/exclusions"
    institution_id = None
    if not principal.has_any(OVERSIGHT_ROLES):
        if not principal.institution:
            raise reject(route, 403, "no_institution", "the token names no institution, so it has no exclusions to see")
        institution_id = principal.institution
    async with unit_of_work(request, route) as context:
        rows = await exclusions.list_exclusions(context.connection, institution_id=institution_id, open_only=open_only)
    return {"exclusions": [_exclusion(row) for row in rows]}


@router.post("/exclusions/{exclusion_id}/acknowledgement")
async def acknowledge_exclusion(request: Request, exclusion_id: str, principal: Party) -> dict[str, Any]:
    """Confirm, as the grantee (role applicant) or the data holder (role hospital), that the subject was excluded."""
    route = "POST /v1/exclusions/{exclusion_id}/acknowledgement"
    if not principal.institution:
        raise reject(route, 403, "no_institution", "the token names no institution to acknowledge for")
    async with unit_of_work(request, route) as context:
        exclusion = await exclusion_commands.acknowledge(
            context, exclusion_id, roles=principal.roles & set(PARTY_ROLES), institution_id=principal.institution
        )
    return {
        "exclusion_id": exclusion.exclusion_id,
        "complete": exclusion.complete,
        "missing_parties": [party.value for party in exclusion.missing_parties()],
    }


@router.get("/mismatches")
async def list_mismatches(request: Request, principal: Overseer) -> dict[str, Any]:
    """List active grants that no longer match a subject's consent or their dataset's terms, with the reason."""
    async with unit_of_work(request, "GET /v1/mismatches") as context:
        rows = await exclusions.list_mismatches(context.connection)
    return {
        "mismatches": [
            {
                "grant_id": row["grant_id"],
                "dataset_id": row["dataset_id"],
                "subject": row["subject"] or None,
                "reason": row["reason"],
                "detected_at": row["detected_at"].isoformat(),
            }
            for row in rows
        ]
    }


def _exclusion(row: Any) -> dict[str, Any]:
    def instant(name: str) -> str | None:
        return row[name].isoformat() if row[name] else None

    return {
        "exclusion_id": row["exclusion_id"],
        "grant_id": row["grant_id"],
        "dataset_id": row["dataset_id"],
        "subject": row["subject"],
        "grantee_id": row["grantee_id"],
        "holder_id": row["holder_id"],
        "requested_at": instant("requested_at"),
        "acknowledge_by": instant("acknowledge_by"),
        "grantee_acknowledged_at": instant("grantee_acknowledged_at"),
        "holder_acknowledged_at": instant("holder_acknowledged_at"),
        "overdue_at": instant("overdue_at"),
    }
