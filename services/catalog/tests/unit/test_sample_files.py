"""Every sample file, read on its own, gives the outcome recorded in sample_expectations.yaml."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from medgov_catalog.domain.files import FileLimits
from medgov_catalog.domain.inspection import inspect_file
from medgov_catalog.domain.rejection import FileRejected

EXPECTATIONS: dict[str, dict[str, Any]] = yaml.safe_load(
    (Path(__file__).with_name("sample_expectations.yaml")).read_text(encoding="utf-8")
)
NOT_SAMPLES = {"PROVENANCE.md", "SHA256SUMS"}


def test_table_lists_every_sample_file(sample_data):
    on_disk = {
        str(path.relative_to(sample_data))
        for path in sample_data.rglob("*")
        if path.is_file() and path.name not in NOT_SAMPLES
    }

    assert len(on_disk) == 119
    assert set(EXPECTATIONS) == on_disk


@pytest.mark.parametrize("relative", sorted(k for k, v in EXPECTATIONS.items() if "accepted" in v))
def test_sample_file_accepted(sample_data, relative):
    expected = EXPECTATIONS[relative]["accepted"]

    accepted, references = inspect_file(sample_data, relative, FileLimits())
    figures = accepted.figures.summary()

    assert accepted.format.value == expected["format"]
    assert figures.record_count == expected["records"]
    assert figures.subject_count == expected["subjects"]
    assert dict(figures.resource_counts) == expected.get("resource_counts", {})
    assert list(figures.modalities) == expected.get("modalities", [])
    assert list(figures.body_parts) == expected.get("body_parts", [])
    assert list(figures.character_sets) == expected.get("character_sets", [])
    assert figures.study_count == expected.get("studies", 0)
    assert figures.series_count == expected.get("series", 0)
    assert figures.instance_count == expected.get("instances", 0)
    assert len(figures.condition_codes) == expected.get("condition_codes", 0)
    assert len(figures.observation_codes) == expected.get("observation_codes", 0)
    assert [figures.date_start, figures.date_end] == expected.get("dates", [None, None])
    assert len(references) == expected.get("referenced_files", 0)
    assert list(accepted.warnings) == expected.get("warnings", [])
    assert _finding_kinds(accepted.findings) == expected["findings"]


@pytest.mark.parametrize("relative", sorted(k for k, v in EXPECTATIONS.items() if "rejected" in v))
def test_sample_file_rejected(sample_data, relative):
    expected = EXPECTATIONS[relative]["rejected"]

    with pytest.raises(FileRejected) as raised:
        inspect_file(sample_data, relative, FileLimits())

    assert raised.value.reason.value == expected["reason"]
    assert raised.value.detail.startswith(f"'{relative}'")
    assert expected["detail_contains"] in raised.value.detail


def _finding_kinds(findings) -> dict[str, list[str]]:
    kinds: dict[str, set[str]] = {}
    for finding in findings:
        kinds.setdefault(finding.category.value, set()).add(finding.kind.value)
    return {category: sorted(values) for category, values in sorted(kinds.items())}
