"""Completeness score: fixed weights, same score for the same inputs."""

from hypothesis import given
from hypothesis import strategies as st
from medgov_shared.contracts.events.catalog import DatasetDescription, DatasetFigures

from medgov_catalog.domain.completeness import score_completeness

FULL = DatasetDescription(
    title="흉부 CT 코호트 2019-2024",
    description="Chest CT studies of adult patients with lung nodules, 2019-2024, with radiology reports "
    "and follow-up outcomes, collected at KNUH.",
    publisher="knuh",
    themes=("HEAL",),
    keywords=("CT", "lung", "nodule"),
    temporal_start="2019-01-01",
    temporal_end="2024-12-31",
    access_rights="restricted",
    duo_codes=("HMB", "NCU"),
    legal_basis="pseudonymized_research",
    contact_point="data-office@knuh.example",
    distribution_formats=("application/dicom",),
)
FIGURES = DatasetFigures(
    resource_counts={},
    subject_count=2,
    record_count=31,
    condition_codes=(),
    observation_codes=(),
    modalities=("CT",),
    body_parts=("CHEST",),
    study_count=1,
    series_count=1,
    instance_count=31,
    character_sets=("ISO_IR 100",),
    date_start="2020-03-01",
    date_end="2023-11-30",
)
DICOM = ("application/dicom",)


def test_weights_add_up_to_100():
    score = score_completeness(FULL, FIGURES, DICOM)

    assert sum(item.weight for item in score.criteria) == 100
    assert score.total == 100
    assert score.missing == ()


def test_minimal_description_scores_low():
    minimal = DatasetDescription(
        title="CT",
        description="",
        publisher="knuh",
        themes=(),
        keywords=(),
        access_rights="restricted",
        duo_codes=(),
        legal_basis="pseudonymized_research",
        contact_point="Kim",
        distribution_formats=(),
    )

    score = score_completeness(minimal, FIGURES, DICOM)

    assert score.total == 15  # 5 for a short title and 10 for coded content
    assert "data_use_terms" in score.missing


def test_undeclared_format_loses_points():
    score = score_completeness(FULL, FIGURES, ("application/dicom", "application/fhir+json"))

    assert score.total == 95
    assert score.missing == ("distribution_formats",)


def test_dates_outside_coverage_lose_accuracy():
    figures = FIGURES.model_copy(update={"date_start": "2018-12-31"})

    score = score_completeness(FULL, figures, DICOM)

    assert score.missing == ("temporal_accuracy",)
    assert score.total == 95


def test_url_contact_point_accepted():
    description = FULL.model_copy(update={"contact_point": "https://knuh.example/data"})

    assert score_completeness(description, FIGURES, DICOM).total == 100


@given(
    keywords=st.lists(st.text(max_size=12), max_size=6),
    description=st.text(max_size=300),
    duo=st.lists(st.sampled_from(["HMB", "GRU", "NCU", "IRB"]), max_size=3),
)
def test_score_in_range_and_deterministic(keywords, description, duo):
    metadata = FULL.model_copy(update={"keywords": tuple(keywords), "description": description, "duo_codes": tuple(duo)})

    first = score_completeness(metadata, FIGURES, DICOM)
    second = score_completeness(metadata, FIGURES, DICOM)

    assert 0 <= first.total <= 100
    assert first == second


@given(extra=st.lists(st.text(min_size=1, max_size=12), max_size=5))
def test_more_keywords_never_lower_score(extra):
    base = FULL.model_copy(update={"keywords": ("CT",)})
    richer = base.model_copy(update={"keywords": ("CT", *extra)})

    assert score_completeness(richer, FIGURES, DICOM).total >= score_completeness(base, FIGURES, DICOM).total
