"""The people and systems of the scenario, each calling the services with its own token."""

from typing import Any

import httpx

from medgov_shared.web.auth import issue_token


class ScenarioError(RuntimeError):
    """A service refused a step the scenario expected to succeed."""


class Actors:
    def __init__(self, urls: dict[str, str], jwt_secret: str) -> None:
        self.urls = urls
        self.jwt_secret = jwt_secret
        self.client = httpx.AsyncClient(timeout=30)

    async def close(self) -> None:
        await self.client.aclose()

    def token(self, subject_id: str, roles: list[str], *, institution: str | None = None,
              patient: str | None = None) -> str:
        return issue_token(self.jwt_secret, subject_id=subject_id, roles=roles, institution=institution,
                           patient_subject=patient, ttl_s=3600)

    async def call(self, method: str, service: str, path: str, *, token: str, expect: tuple[int, ...] = (200, 201),
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        response = await self.client.request(
            method, self.urls[service] + path, headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            **kwargs,
        )
        if response.status_code not in expect:
            raise ScenarioError(f"{method} {service}{path} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    # -- roles ----------------------------------------------------------------

    def operator(self) -> str:
        return self.token("demo-operator", ["operator", "council", "drb_reviewer"])

    def fund_admin(self) -> str:
        return self.token("fund-admin-01", ["fund_admin"])

    def applicant(self, institution: str) -> str:
        return self.token(f"pi-{institution}", ["applicant"], institution=institution)

    def hospital(self, institution: str) -> str:
        return self.token(f"it-{institution}", ["hospital"], institution=institution)

    def reviewer(self, member_id: str, board: str) -> str:
        role = "irb_reviewer" if board == "IRB" else "drb_reviewer"
        return self.token(member_id, [role])

    def patient(self, subject: str) -> str:
        return self.token(f"patient-{subject[-8:]}", ["patient"], patient=subject)
