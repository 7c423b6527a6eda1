"""Fixtures for the review domain tests: the packaged boards, a catalog of published datasets, complete drafts."""

import json
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from medgov_shared.contracts.types import DataEnvironment, Region

from medgov_review.domain.aggregate import ReviewRules
from medgov_review.domain.governance import Governance, packaged_governance
from medgov_review.domain.purpose import DatasetTerms
from medgov_review.domain.screening import ApplicationDraft

# Friday 2026-12-04 09:00 in Korea.
T0 = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)


def sample_data_dir() -> Path:
    configured = os.environ.get("MEDGOV_SAMPLE_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[4] / ".." / "shared" / "data"


def synthea_condition_codes() -> list[str]:
    """SNOMED codes of the Conditions in the real Synthea patient bundles of the sample data."""
    codes = []
    for bundle_file in sorted((sample_data_dir() / "synthea" / "patient-bundles").glob("*.json")):
        bundle = json.loads(bundle_file.read_text(encoding="utf-8"))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Condition":
                codes.extend(coding["code"] for coding in resource["code"]["coding"])
    return codes


KNUH_CT = DatasetTerms("ds-knuh-ct-0001", 1, "knuh", Region.DAEGU, "흉부 CT 코호트", ("HMB", "IRB", "PUB"))
DSMC_LAB = DatasetTerms("ds-dsmc-lab-0001", 1, "dsmc", Region.DAEGU, "검사 결과", ("GRU",))
CNUH_MR = DatasetTerms("ds-cnuh-mr-0001", 2, "cnuh", Region.DAEJEON, "뇌 MR", ("GRU",))
JNUH_XR = DatasetTerms("ds-jnuh-xr-0001", 1, "jnuh", Region.GWANGJU, "흉부 X선", ("HMB", "NCU"))
WITHDRAWN = DatasetTerms("ds-yumc-old-0001", 1, "yumc", Region.DAEGU, "옛 데이터", ("GRU",), withdrawn=True)


Catalog = dict[str, DatasetTerms]


@pytest.fixture(scope="session")
def governance() -> Governance:
    return packaged_governance()


@pytest.fixture(scope="session")
def rules(governance: Governance) -> ReviewRules:
    return ReviewRules(governance=governance)


@pytest.fixture
def catalog() -> Catalog:
    return {item.dataset_id: item for item in (KNUH_CT, DSMC_LAB, CNUH_MR, JNUH_XR, WITHDRAWN)}


def complete_draft(**changes: object) -> ApplicationDraft:
    draft = ApplicationDraft(
        applicant_institution="vendor-medvision",
        principal_investigator="Dr. Kim",
        title="Chest CT nodule detection",
        purpose_text="Train a nodule detector on chest CT",
        purpose_codes=("HMB",),
        dataset_ids=(KNUH_CT.dataset_id,),
        requested_start=date(2027, 1, 1),
        requested_end=date(2027, 12, 31),
        data_environment=DataEnvironment.SECURE_ENCLAVE,
        irb_document_ref="irb://knuh/2026-113",
    )
    return replace(draft, **changes)  # type: ignore[arg-type]
