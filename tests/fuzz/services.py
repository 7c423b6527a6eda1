"""The four services as the fuzz tests run them: in this process, each on a private topic with no producer."""

import tempfile
from pathlib import Path
from typing import Any

from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.service import Service
from medgov_shared.web.auth import ROLES, issue_token

from medgov_catalog.main import build_service as build_catalog
from medgov_catalog.settings import CatalogSettings
from medgov_consent.main import build_service as build_consent
from medgov_consent.settings import ConsentSettings
from medgov_grants.main import build_service as build_grants
from medgov_grants.settings import GrantsSettings
from medgov_review.main import build_service as build_review
from medgov_review.settings import ReviewSettings

SERVICE_NAMES = ("review", "catalog", "consent", "grants")


def build(name: str, common: dict[str, Any], staging_root: Path, topic: str) -> Service:
    """Build one service that consumes only `topic`, so it reads no other test's events."""
    if name == "review":
        return build_review(ReviewSettings(**common), consumes=[topic], consume_inbound=False)
    if name == "catalog":
        settings = CatalogSettings(**common, staging_root=staging_root)
        return build_catalog(settings, consumes=[topic], consume_inbound=False)
    if name == "consent":
        return build_consent(ConsentSettings(**common), consumes=[topic], consume_inbound=False)
    if name == "grants":
        return build_grants(GrantsSettings(**common), consumes=[topic])
    raise ValueError(f"unknown service {name!r}; expected one of {', '.join(SERVICE_NAMES)}")


def openapi_documents() -> dict[str, dict[str, Any]]:
    """Build each app without starting it, only to read its OpenAPI document (no connection is opened)."""
    offline = {
        "region": "daegu",
        "database_url": "postgresql://fuzz@127.0.0.1:1/postgres",
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "jwt_secret": "collection-only-" + "x" * 16,
    }
    staging = Path(tempfile.gettempdir())
    return {name: build(name, offline, staging, "unused").app().openapi() for name in SERVICE_NAMES}


def all_roles_headers(secret: str, institution: str = "knuh") -> dict[str, str]:
    """Return the Authorization header of a caller holding every role, so requests pass authorization."""
    subject = pseudonymize("fuzz-patient", region="daegu", key=b"z" * 32)
    token = issue_token(
        secret, subject_id="fuzz-caller", roles=ROLES, institution=institution, patient_subject=subject, ttl_s=12 * 3600
    )
    return {"Authorization": f"Bearer {token}"}
