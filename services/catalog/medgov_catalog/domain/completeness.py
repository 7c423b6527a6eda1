"""Metadata completeness score, 0-100, from the HealthDCAT-AP description and the extracted figures.

The grants service pays cataloging subsidies from this score, so it depends
only on its inputs: the same description and files always give the same
score. Each criterion has a fixed weight; the weights add up to 100.

| criterion            | weight | full points                                         | partial                 |
|----------------------|-------:|-----------------------------------------------------|-------------------------|
| title                |     10 | title has at least 10 characters                    | 5 if shorter            |
| description          |     15 | at least 100 characters                             | 5 if 1-99 characters    |
| keywords             |     10 | at least 3 distinct keywords                        | 5 for 1-2               |
| themes               |      5 | at least one dcat:theme                             |                         |
| temporal coverage    |     10 | start and end given                                 | 5 for one of them       |
| data-use terms (DUO) |     15 | at least one DUO code                               |                         |
| contact point        |     10 | an e-mail address or an http(s) URL                 |                         |
| distribution formats |     10 | every media type found in the files is declared     | 5 if some are           |
| temporal accuracy    |      5 | declared coverage contains every extracted date     |                         |
| coded content        |     10 | files carry coded conditions, observations or DICOM modalities |              |
"""

import re
from dataclasses import dataclass

from medgov_shared.contracts.events.catalog import DatasetDescription, DatasetFigures

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://\S+$")


@dataclass(frozen=True)
class CriterionScore:
    """Points reached for one criterion, out of its weight."""

    criterion: str
    points: int
    weight: int


@dataclass(frozen=True)
class CompletenessScore:
    """Total score and points per criterion, which show a hospital what its description lacks."""

    criteria: tuple[CriterionScore, ...]

    @property
    def total(self) -> int:
        return sum(item.points for item in self.criteria)

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(item.criterion for item in self.criteria if item.points < item.weight)


def score_completeness(
    description: DatasetDescription, figures: DatasetFigures, found_media_types: tuple[str, ...]
) -> CompletenessScore:
    """Score how completely `description` describes the dataset whose files gave `figures`."""
    return CompletenessScore(
        (
            _graded("title", 10, len(description.title.strip()) >= 10, bool(description.title.strip())),
            _graded("description", 15, len(description.description.strip()) >= 100, bool(description.description.strip())),
            _graded("keywords", 10, _distinct(description.keywords) >= 3, _distinct(description.keywords) >= 1),
            _binary("themes", 5, _distinct(description.themes) >= 1),
            _graded(
                "temporal_coverage",
                10,
                bool(description.temporal_start and description.temporal_end),
                bool(description.temporal_start or description.temporal_end),
            ),
            _binary("data_use_terms", 15, len(description.duo_codes) >= 1),
            _binary("contact_point", 10, _is_contact(description.contact_point)),
            _formats(description, found_media_types),
            _binary("temporal_accuracy", 5, _coverage_contains_dates(description, figures)),
            _binary(
                "coded_content", 10, bool(figures.condition_codes or figures.observation_codes or figures.modalities)
            ),
        )
    )


def _binary(criterion: str, weight: int, met: bool) -> CriterionScore:
    return CriterionScore(criterion, weight if met else 0, weight)


def _graded(criterion: str, weight: int, full: bool, partial: bool, partial_points: int = 5) -> CriterionScore:
    if full:
        return CriterionScore(criterion, weight, weight)
    return CriterionScore(criterion, partial_points if partial else 0, weight)


def _distinct(values: tuple[str, ...]) -> int:
    return len({value.strip().casefold() for value in values if value.strip()})


def _is_contact(value: str) -> bool:
    value = value.strip().removeprefix("mailto:")
    return bool(_EMAIL.match(value) or _URL.match(value))


def _formats(description: DatasetDescription, found: tuple[str, ...]) -> CriterionScore:
    declared = {item.strip().lower() for item in description.distribution_formats}
    found_set = set(found)
    covered = found_set & declared
    return _graded("distribution_formats", 10, bool(found_set) and covered == found_set, bool(covered))


def _coverage_contains_dates(description: DatasetDescription, figures: DatasetFigures) -> bool:
    # ISO dates compare correctly as strings.
    if not (figures.date_start and figures.date_end and description.temporal_start and description.temporal_end):
        return False
    return description.temporal_start[:10] <= figures.date_start and figures.date_end <= description.temporal_end[:10]
