"""The transparency pages and the public aggregate figures; the pages are static files that call the JSON routes."""

from datetime import date
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from medgov_consent.api.common import institution_card, reject, service_of, settings_of, unit_of_work
from medgov_consent.domain.policy import KOREA_STANDARD_TIME
from medgov_consent.domain.transparency import cells_from_counts, month_end
from medgov_consent.repository import views

router = APIRouter(tags=["transparency"])

_STATIC = resources.files("medgov_consent") / "static"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSETS = frozenset({"dashboard.js", "public.js", "i18n.js", "style.css", "favicon.svg"})

# The pages load nothing from other origins (there is no internet on site, and
# a CDN would learn who reads a patient dashboard) and run no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> Response:
    return _static_file("dashboard.html")


@router.get("/transparency", response_class=HTMLResponse, include_in_schema=False)
async def public_page() -> Response:
    return _static_file("public.html")


@router.get("/static/consent/{name}", include_in_schema=False)
async def static_asset(name: str) -> Response:
    if name not in _ASSETS:
        raise reject("GET /static/consent", 404, "not_found", f"no asset named {name!r}")
    return _static_file(name)


@router.get("/v1/public/opt-out-rates")
async def read_opt_out_rates(
    request: Request, months: Annotated[int, Query(ge=1, le=60, description="Months to show, ending with the current one.")] = 12
) -> dict[str, Any]:
    """Return the share of subjects who opted out, per hospital and month, with small cells suppressed."""
    settings = settings_of(request)
    month_list = _last_months(service_of(request).clock.now().astimezone(KOREA_STANDARD_TIME).date(), months)
    month_ends = {month_end(month): month for month in month_list}
    async with unit_of_work(request, "GET /v1/public/opt-out-rates") as context:
        # Counted in PostgreSQL, because loading every history took about 30 s at
        # 14,000 subjects. The query takes about 0.2 s there for 12 months (2-core machine).
        institutions = await views.institutions_with_directives(context.connection)
        rows = await views.opt_out_counts(context.connection, list(month_ends))
    counts = {(row["institution_id"], month_ends[row["month_end"]]): (row["subjects"], row["opted_out"]) for row in rows}
    cells = cells_from_counts(institutions, month_list, counts, minimum_cell=settings.opt_out_minimum_cell)
    return {
        "minimum_cell": settings.opt_out_minimum_cell,
        "months": [month.isoformat()[:7] for month in month_list],
        "cells": [
            {
                "institution": institution_card(cell.institution_id),
                "month": cell.month.isoformat()[:7],
                "subjects": cell.subjects,
                "opted_out": cell.opted_out,
                "rate": cell.rate,
                "suppressed": cell.suppressed,
            }
            for cell in cells
        ],
    }


def _last_months(today: date, count: int) -> list[date]:
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append(date(year, month, 1))
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return list(reversed(months))


def _static_file(name: str) -> Response:
    suffix = name[name.rfind(".") :]
    content = (_STATIC / name).read_bytes()
    return Response(content, media_type=_MEDIA_TYPES[suffix], headers=SECURITY_HEADERS)
