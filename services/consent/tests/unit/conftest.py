"""Fixtures for the consent domain tests: the sample data folder and builders of datasets, grants and histories."""

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.types import LegalBasis

from medgov_consent.domain.fanout import GrantView
from medgov_consent.domain.history import ConsentHistory, Revocation
from medgov_consent.domain.policy import ConsentPolicy, DataClass, DataClassKind, DatasetContent, DatasetTerms, UseRequest
from medgov_consent.domain.scope import policy_from_scope

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SUBJECT = "daegu.k1.3f1c8a7e0d2b4c6f8a1e3d5b7c9f0a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f2a"
OTHER_SUBJECT = "daegu.k1.0000000000000000000000000000000000000000000000000000000000000001"


def sample_data_dir() -> Path:
    configured = os.environ.get("MEDGOV_SAMPLE_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def sample_data() -> Path:
    root = sample_data_dir()
    assert root.is_dir(), f"sample data not found at {root}; set MEDGOV_SAMPLE_DATA"
    return root


@pytest.fixture(scope="session")
def consent_folder(sample_data: Path) -> Path:
    return sample_data / "fhir" / "hl7-r4-examples" / "consent"


@pytest.fixture(scope="session")
def mii_consent_xml(sample_data: Path) -> bytes:
    return (sample_data / "fhir" / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml").read_bytes()


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


class Builders:
    """Plausible domain values; every argument not given gets a default that the tests do not depend on."""

    def dataset(
        self,
        dataset_id: str = "ds-knuh-ct-0001",
        *,
        holder_id: str = "knuh",
        duo_codes: tuple[str, ...] = ("HMB",),
        legal_basis: LegalBasis = LegalBasis.PSEUDONYMIZED_RESEARCH,
        resource_types: tuple[str, ...] | None = ("Patient", "Observation"),
        withdrawn: bool = False,
    ) -> DatasetTerms:
        content = None
        if resource_types is not None:
            classes = frozenset(DataClass(DataClassKind.RESOURCE_TYPE, name) for name in resource_types)
            content = DatasetContent(data_classes=classes)
        return DatasetTerms(dataset_id, holder_id, duo_codes, legal_basis, content, withdrawn)

    def request(
        self,
        *,
        purposes: tuple[str, ...] = ("HMB",),
        dataset: DatasetTerms | None = None,
        recipient_id: str = "vendor-medvision",
        for_profit: bool = True,
        at: datetime = T0,
    ) -> UseRequest:
        return UseRequest(purposes, dataset or self.dataset(), recipient_id, for_profit, at)

    def grant(
        self,
        grant_id: str = "grant-0001",
        *,
        dataset_id: str = "ds-knuh-ct-0001",
        holder_id: str = "knuh",
        grantee_id: str = "vendor-medvision",
        purposes: tuple[str, ...] = ("HMB",),
        granted_at: datetime = T0,
        expires_in: timedelta = timedelta(days=365),
        ended_at: datetime | None = None,
    ) -> GrantView:
        return GrantView(
            grant_id=grant_id,
            dataset_id=dataset_id,
            application_id=f"app-{grant_id}",
            grantee_id=grantee_id,
            holder_id=holder_id,
            purposes=purposes,
            grantee_for_profit=grantee_id.startswith("vendor-"),
            granted_at=granted_at,
            starts_at=granted_at,
            expires_at=granted_at + expires_in,
            ended_at=ended_at,
        )

    def dashboard_policy(self, **scope: Any) -> ConsentPolicy:
        return policy_from_scope(ConsentScope(**scope))

    def consented(
        self,
        history: ConsentHistory | None = None,
        consent_id: str = "cns-0001",
        *,
        at: datetime = T0,
        policy: ConsentPolicy | None = None,
        institution_id: str = "knuh",
    ) -> ConsentHistory:
        history = history or ConsentHistory(SUBJECT)
        history, _ = history.record_consent(
            consent_id,
            institution_id=institution_id,
            channel="dashboard",
            policy=policy or self.dashboard_policy(kind="all_research"),
            granted_at=at,
        )
        return history

    def revocation(
        self, consent_id: str = "cns-0001", *, at: datetime = T0, scope: ConsentScope | None = None, institution_id: str = "knuh"
    ) -> Revocation:
        return Revocation(consent_id, institution_id, "dashboard", at, scope)

    def revoked(self, history: ConsentHistory, consent_id: str = "cns-0001", *, at: datetime = T0, scope: ConsentScope | None = None) -> ConsentHistory:
        history, _ = history.record_revocation(self.revocation(consent_id, at=at, scope=scope))
        return history


@pytest.fixture(scope="session")
def make() -> Builders:
    return Builders()


def hours(number: float) -> timedelta:
    return timedelta(hours=number)


def days(number: float) -> timedelta:
    return timedelta(days=number)
