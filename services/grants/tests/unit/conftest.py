"""Fixtures for the grants domain tests: the policy, event builders and record counts of the real sample data."""

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest

from medgov_shared.contracts.events.catalog import (
    ComplianceFlagCleared,
    ComplianceViolationFlagged,
    DatasetPublished,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.consent import ExclusionAcknowledged, ExclusionOverdue
from medgov_shared.contracts.events.review import AccessGranted
from medgov_shared.contracts.institutions import get_institution

from medgov_grants.domain.fund import Fund
from medgov_grants.domain.policy import GrantsPolicy, default_policy
from medgov_grants.domain.tool_grants import Actor

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def sample_data_dir() -> Path:
    configured = os.environ.get("MEDGOV_SAMPLE_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / ".." / "shared" / "data"


@dataclass(frozen=True)
class SampleDataset:
    """Figures of one real sample folder, counted the way the catalog counts records."""

    name: str
    record_count: int
    subject_count: int


def _count_bulk_export(folder: Path) -> SampleDataset:
    records = 0
    patients = 0
    for path in sorted(folder.glob("*.ndjson")):
        if path.name == "log.ndjson":  # the export's event log, not FHIR resources
            continue
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        records += len(lines)
        patients += sum(1 for line in lines if json.loads(line)["resourceType"] == "Patient")
    return SampleDataset("synthea-bulk-export", records, patients)


def _count_dicom_fileset(folder: Path) -> SampleDataset:
    instances = [path for path in folder.rglob("*") if path.is_file() and path.name != "DICOMDIR"]
    patients = {path.relative_to(folder).parts[0] for path in instances}
    return SampleDataset("dicom-fileset", len(instances), len(patients))


def _count_patient_bundle(path: Path) -> SampleDataset:
    bundle = json.loads(path.read_text(encoding="utf-8"))
    return SampleDataset(path.stem, len(bundle["entry"]), 1)


@pytest.fixture(scope="session")
def sample_datasets() -> dict[str, SampleDataset]:
    root = sample_data_dir()
    assert root.is_dir(), f"sample data not found at {root}; set MEDGOV_SAMPLE_DATA"
    datasets = [
        _count_bulk_export(root / "synthea" / "bulk-export-10-patients"),
        _count_dicom_fileset(root / "dicom" / "fileset"),
        *(_count_patient_bundle(path) for path in sorted((root / "synthea" / "patient-bundles").glob("*.json"))),
    ]
    return {item.name: item for item in datasets}


class EventBuilder:
    """Builds valid contract payloads with unique ids; every field not given gets a plausible value."""

    def __init__(self) -> None:
        self._ids: Iterator[int] = count(1)

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}"

    def published(
        self,
        dataset_id: str,
        *,
        institution_id: str = "knuh",
        version: int = 1,
        completeness_score: int = 85,
        record_count: int = 374,
        subject_count: int = 13,
        at: datetime = T0,
    ) -> DatasetPublished:
        return DatasetPublished(
            dataset_id=dataset_id,
            version=version,
            institution_id=institution_id,
            region=get_institution(institution_id).region,
            title="Synthea bulk export",
            duo_codes=("HMB",),
            legal_basis="pseudonymized_research",
            completeness_score=completeness_score,
            record_count=record_count,
            subject_count=subject_count,
            published_at=at,
        )

    def published_sample(self, dataset_id: str, sample: SampleDataset, **kwargs: object) -> DatasetPublished:
        return self.published(
            dataset_id, record_count=sample.record_count, subject_count=sample.subject_count, **kwargs  # type: ignore[arg-type]
        )

    def withdrawn(self, dataset_id: str, *, institution_id: str = "knuh", at: datetime) -> DatasetWithdrawn:
        return DatasetWithdrawn(dataset_id=dataset_id, institution_id=institution_id, reason="Source system retired", withdrawn_at=at)

    def access_granted(
        self,
        application_id: str,
        *,
        holder: str = "knuh",
        grantee: str = "vendor-medvision",
        dataset_id: str = "ds-knuh-ct-0001",
        grant_id: str | None = None,
    ) -> AccessGranted:
        return AccessGranted(
            application_id=application_id,
            grant_id=grant_id or self.next_id("grant"),
            grantee_institution=grantee,
            dataset_id=dataset_id,
            dataset_ids=(dataset_id,),
            holder_institution=holder,
            data_environment="federated_learning",
            purpose_codes=("HMB",),
            conditions=("Federated training only",),
            starts_at=datetime(2027, 1, 1, tzinfo=UTC),
            expires_at=datetime(2027, 12, 31, tzinfo=UTC),
            region=get_institution(holder).region,
        )

    def violation(self, flag_id: str, *, institution_id: str = "knuh", severity: str = "high") -> ComplianceViolationFlagged:
        return ComplianceViolationFlagged(
            dataset_id="ds-knuh-ct-0001",
            flag_id=flag_id,
            institution_id=institution_id,
            region=get_institution(institution_id).region,
            rule="direct_identifier_in_pseudonymized_dataset",
            severity=severity,
            findings=(),
            flagged_at=T0,
        )

    def flag_cleared(self, flag_id: str, *, institution_id: str = "knuh") -> ComplianceFlagCleared:
        return ComplianceFlagCleared(
            dataset_id="ds-knuh-ct-0001",
            flag_id=flag_id,
            institution_id=institution_id,
            cleared_at=T0,
            note="Names removed and dataset re-registered",
        )

    def exclusion_overdue(self, exclusion_id: str, *institution_ids: str) -> ExclusionOverdue:
        return ExclusionOverdue(
            subject=SUBJECT,
            exclusion_id=exclusion_id,
            grant_id="grant-0001",
            dataset_id="ds-knuh-ct-0001",
            missing_parties=("grantee",),
            institution_ids=institution_ids,
            acknowledge_by=T0,
            detected_at=T0,
        )

    def exclusion_acknowledged(self, exclusion_id: str, institution_id: str) -> ExclusionAcknowledged:
        return ExclusionAcknowledged(
            subject=SUBJECT,
            exclusion_id=exclusion_id,
            grant_id="grant-0001",
            dataset_id="ds-knuh-ct-0001",
            party="grantee",
            party_institution=institution_id,
            acknowledged_at=T0,
            complete=True,
        )


SUBJECT = "daegu.k1.3f1c8a7e0d2b4c6f8a1e3d5b7c9f0a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d0f2a"


@pytest.fixture(scope="session")
def build() -> EventBuilder:
    return EventBuilder()


@pytest.fixture(scope="session")
def policy() -> GrantsPolicy:
    return default_policy()


def small_policy(total_krw: int, *, cap_krw: int | None = None) -> GrantsPolicy:
    """Return the default policy with another fund size (and optionally another hospital cap)."""
    data = default_policy().model_dump()
    data["fund"]["total_krw"] = total_krw
    if cap_krw is not None:
        data["subsidy"]["per_hospital_cap_krw"] = cap_krw
    return GrantsPolicy.from_mapping(data)


@pytest.fixture(scope="session")
def shrink_policy():  # type: ignore[no-untyped-def]
    return small_policy


@pytest.fixture
def fund(policy: GrantsPolicy) -> Fund:
    allocated = Fund(policy)
    allocated.allocate(at=T0)
    return allocated


@pytest.fixture(scope="session")
def admin() -> Actor:
    return Actor(subject="admin-01", roles=frozenset({"fund_admin"}))


@pytest.fixture(scope="session")
def vendor_applicant() -> Actor:
    return Actor(subject="dev-01", roles=frozenset({"applicant"}), institution_id="vendor-medvision")


def days(number: float) -> timedelta:
    return timedelta(days=number)
