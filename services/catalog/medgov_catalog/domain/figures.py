"""Figures extracted from one file, and how the figures of many files add up to a dataset's.

Studies, series, instances and subjects are counted as distinct keys across
all files of a dataset, so a DICOMDIR and the instance files it indexes are
not counted twice. FHIR resources are counted per occurrence.
"""

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from medgov_shared.contracts.events.catalog import DatasetFigures

from medgov_catalog.domain.pipa_scan import IdentifierFinding


def subject_key(namespace: str, local_id: str) -> str:
    """Return an opaque key for counting one data subject.

    The key is a truncated SHA-256 of the local identifier. It is good only
    for counting distinct subjects inside this process and is never stored
    or sent: a hash of a medical record number can be reversed by trying
    every number.
    """
    return hashlib.sha256(f"{namespace}\x1f{local_id}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FileFigures:
    """Contribution of one file to its dataset's figures."""

    resource_counts: Mapping[str, int] = field(default_factory=dict)
    subject_keys: frozenset[str] = frozenset()
    condition_codes: frozenset[str] = frozenset()
    observation_codes: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()
    body_parts: frozenset[str] = frozenset()
    character_sets: frozenset[str] = frozenset()
    study_uids: frozenset[str] = frozenset()
    series_uids: frozenset[str] = frozenset()
    instance_uids: frozenset[str] = frozenset()
    date_start: date | None = None
    date_end: date | None = None

    @property
    def resource_total(self) -> int:
        return sum(self.resource_counts.values())

    def summary(self) -> DatasetFigures:
        """Return the figures of this file alone, without the subject keys."""
        return merge_figures([self])


@dataclass(frozen=True)
class FileReading:
    """Result of reading one file: figures, findings, references and warnings.

    `referenced_files` is filled only for a DICOMDIR: the instance files it
    indexes, relative to the staging area, which belong to the dataset too.
    `warnings` describe doubts that do not make the file unacceptable.
    """

    figures: FileFigures
    findings: tuple[IdentifierFinding, ...]
    referenced_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass
class DateRange:
    """A mutable earliest/latest pair that readers widen as they find dates."""

    start: date | None = None
    end: date | None = None

    def include(self, first: date, last: date) -> None:
        if self.start is None or first < self.start:
            self.start = first
        if self.end is None or last > self.end:
            self.end = last


def merge_figures(parts: Iterable[FileFigures]) -> DatasetFigures:
    """Add up the figures of the accepted files of one dataset version."""
    resource_counts: Counter[str] = Counter()
    subjects: set[str] = set()
    conditions: set[str] = set()
    observations: set[str] = set()
    modalities: set[str] = set()
    body_parts: set[str] = set()
    character_sets: set[str] = set()
    studies: set[str] = set()
    series: set[str] = set()
    instances: set[str] = set()
    dates = DateRange()

    for part in parts:
        resource_counts.update(part.resource_counts)
        subjects |= part.subject_keys
        conditions |= part.condition_codes
        observations |= part.observation_codes
        modalities |= part.modalities
        body_parts |= part.body_parts
        character_sets |= part.character_sets
        studies |= part.study_uids
        series |= part.series_uids
        instances |= part.instance_uids
        if part.date_start is not None and part.date_end is not None:
            dates.include(part.date_start, part.date_end)

    return DatasetFigures(
        resource_counts=dict(sorted(resource_counts.items())),
        subject_count=len(subjects),
        record_count=resource_counts.total() + len(instances),
        condition_codes=tuple(sorted(conditions)),
        observation_codes=tuple(sorted(observations)),
        modalities=tuple(sorted(modalities)),
        body_parts=tuple(sorted(body_parts)),
        study_count=len(studies),
        series_count=len(series),
        instance_count=len(instances),
        character_sets=tuple(sorted(character_sets)),
        date_start=dates.start.isoformat() if dates.start else None,
        date_end=dates.end.isoformat() if dates.end else None,
    )
