"""Console server: serves the page and reshapes the services' APIs into its four panels.

The console holds no data of its own. It calls the services with a bearer
token of the roles council, operator and fund_admin, signed with the
deployment's token key, and never forwards a caller's token.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.web.auth import issue_token

STATIC = Path(__file__).with_name("static")


class ServiceClients:
    def __init__(self, urls: dict[str, str], jwt_secret: str) -> None:
        self.urls = urls
        self.jwt_secret = jwt_secret

    def _headers(self) -> dict[str, str]:
        token = issue_token(self.jwt_secret, subject_id="governance-console",
                            roles=["council", "operator", "fund_admin", "drb_reviewer"], ttl_s=300)
        return {"Authorization": f"Bearer {token}"}

    async def get(self, service: str, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.urls[service], timeout=10) as client:
            try:
                response = await client.get(path, params=params, headers=self._headers())
            except httpx.HTTPError as error:
                raise HTTPException(502, f"{service} service unreachable: {error}") from None
        if response.status_code in _CALLER_ERRORS:
            # The service rejected what the console's caller typed (a search text, an id); pass its reason on.
            raise HTTPException(response.status_code, _detail_of(response))
        if response.status_code >= 400:
            raise HTTPException(502, f"{service} service answered {response.status_code} for {path}: {response.text[:300]}")
        return response.json()


# Statuses that blame the request's content. 401 and 403 blame the console's own token, so they stay 502.
_CALLER_ERRORS = frozenset({400, 404, 409, 422})


def _detail_of(response: httpx.Response) -> Any:
    try:
        return response.json().get("detail", response.text[:300])
    except (ValueError, AttributeError):
        return response.text[:300]


def create_console(urls: dict[str, str], jwt_secret: str,
                   supervision: Callable[[], dict[str, dict]] | None = None) -> FastAPI:
    """Build the console app; `supervision` returns the demo supervisor's view of each service process."""
    app = FastAPI(title="medgov governance console", docs_url=None, redoc_url=None)
    clients = ServiceClients(urls, jwt_secret)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/services")
    async def services() -> dict:
        """Report each service's readiness and, under the demo, its process status and restart count."""
        processes = supervision() if supervision is not None else {}

        async def is_ready(client: httpx.AsyncClient, url: str) -> bool:
            try:
                return (await client.get(f"{url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        # All at once with a short timeout, because a stalled database makes every
        # /readyz slow, and checked one after another they kept this page from responding.
        async with httpx.AsyncClient(timeout=1.5) as client:
            ready = await asyncio.gather(*(is_ready(client, url) for url in urls.values()))
        report = {
            service: {"url": url, "ready": answer, **processes.get(service, {})}
            for (service, url), answer in zip(urls.items(), ready, strict=True)
        }
        return {"services": report}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/queue")
    async def queue() -> dict:
        data = await clients.get("review", "/applications")
        return {"items": [
            {
                "application_id": item["application_id"],
                "applicant_institution": item["applicant_institution"],
                "state": item["status"],
                "days_used": item["days_used"],
                "days_left": item["days_left"],
                # A breached window is escalated to the governance council.
                "escalated": item["days_left"] <= 0,
            }
            for item in data["applications"]
        ]}

    @app.get("/api/fund")
    async def fund() -> dict:
        pools = await clients.get("grants", "/reports/pools")
        rows = await clients.get("grants", "/reports/disbursements/institutions")
        per_institution: dict[str, int] = defaultdict(int)
        for row in rows:
            per_institution[row["institution_id"]] += row["net_krw"]
        return {
            "pools": pools,
            "institutions": [
                {"institution_id": name, "disbursed_krw": amount}
                for name, amount in sorted(per_institution.items(), key=lambda item: -item[1])
            ],
        }

    @app.get("/api/flags")
    async def flags() -> dict:
        data = await clients.get("catalog", "/compliance-flags")
        items = data["items"] if isinstance(data, dict) else data
        return {"items": [
            {
                "institution_id": item.get("institution_id"),
                "severity": item.get("severity"),
                "rule": item.get("rule"),
                "dataset_id": item.get("dataset_id"),
                "status": item.get("status", "open"),
            }
            for item in items
        ]}

    @app.get("/api/institutions")
    async def institutions() -> dict:
        # The page shows names where the services report ids.
        return {"institutions": {
            item.id: {"name_ko": item.name_ko, "name_en": item.name_en} for item in all_institutions().values()
        }}

    @app.get("/api/search")
    async def search(q: str = Query(default="", max_length=500)) -> dict:  # the catalog's own limit
        data = await clients.get("catalog", "/datasets", q=q or None, limit=50)
        items = data["results"]
        return {"items": [
            {
                "dataset_id": item.get("dataset_id"),
                "title": item.get("title"),
                "institution_id": item.get("institution_id"),
                "region": item.get("region"),
                "legal_basis": item.get("legal_basis"),
                "completeness_score": item.get("completeness_score"),
            }
            for item in items
        ]}

    return app
