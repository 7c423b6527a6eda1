"""Inspect the files of a dataset: accept each good file, reject each bad one with its reason.

One bad file never costs the others: every file is read on its own, and the
result lists the accepted files with their figures and findings and the
rejected ones with the reason. A DICOMDIR brings in the instance files it
references, which are then read like listed files.
"""

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from medgov_shared.contracts.events.catalog import DatasetFigures

from medgov_catalog.domain.extract_dicom import read_dicom, read_dicomdir
from medgov_catalog.domain.extract_fhir import read_fhir_json, read_fhir_ndjson
from medgov_catalog.domain.figures import FileFigures, FileReading, merge_figures
from medgov_catalog.domain.files import MEDIA_TYPES, FileFormat, FileLimits, detect_format, sha256_of
from medgov_catalog.domain.pipa_scan import IdentifierFinding
from medgov_catalog.domain.rejection import FileRejected, RejectedFile, RejectionReason
from medgov_catalog.domain.staging import resolve_inside

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcceptedFile:
    """A file that was read completely, with what it contributes to the dataset.

    `listed_by` is the DICOMDIR that referenced the file, or None if the
    command listed it.
    """

    path: str
    format: FileFormat
    size_bytes: int
    sha256: str
    figures: FileFigures
    findings: tuple[IdentifierFinding, ...]
    warnings: tuple[str, ...] = ()
    listed_by: str | None = None


@dataclass(frozen=True)
class DatasetInspection:
    """The outcome of reading every file of one dataset version."""

    accepted: tuple[AcceptedFile, ...]
    rejected: tuple[RejectedFile, ...]

    @property
    def figures(self) -> DatasetFigures:
        return merge_figures(item.figures for item in self.accepted)

    @property
    def findings(self) -> tuple[IdentifierFinding, ...]:
        return tuple(finding for item in self.accepted for finding in item.findings)

    @property
    def media_types(self) -> tuple[str, ...]:
        return tuple(sorted({MEDIA_TYPES[item.format] for item in self.accepted}))


def inspect_file(area: Path, relative: str, limits: FileLimits) -> tuple[AcceptedFile, tuple[str, ...]]:
    """Read one staged file and return it with the files it references; raise FileRejected if it is bad."""
    path = resolve_inside(area, relative)
    size = path.stat().st_size
    limits.check_file_size(relative, size)

    file_format = detect_format(path, relative)
    reading = _read(path, relative, file_format, limits)
    accepted = AcceptedFile(
        path=relative,
        format=file_format,
        size_bytes=size,
        sha256=sha256_of(path),
        figures=reading.figures,
        findings=reading.findings,
        warnings=reading.warnings,
    )
    return accepted, reading.referenced_files


def inspect_dataset(area: Path, files: Sequence[str], limits: FileLimits) -> DatasetInspection:
    """Read every listed file, and every file a listed DICOMDIR references, each on its own."""
    accepted: list[AcceptedFile] = []
    rejected: list[RejectedFile] = []
    pending: deque[tuple[str, str | None]] = deque((relative, None) for relative in files)
    seen: set[str] = set()

    while pending:
        relative, listed_by = pending.popleft()
        if relative in seen:
            continue
        seen.add(relative)
        try:
            item, references = inspect_file(area, relative, limits)
        except FileRejected as error:
            rejected.append(RejectedFile(relative, error.reason, _with_origin(error.detail, listed_by)))
            continue
        except Exception as error:  # noqa: BLE001 - one unreadable file must not lose the others
            logger.exception("reading staged file failed unexpectedly", extra={"file": relative})
            detail = f"'{relative}' could not be read: {type(error).__name__}: {error}"
            rejected.append(RejectedFile(relative, RejectionReason.UNREADABLE, _with_origin(detail, listed_by)))
            continue
        accepted.append(replace(item, listed_by=listed_by))
        pending.extend((reference, relative) for reference in references)

    return DatasetInspection(tuple(accepted), tuple(rejected))


def _read(path: Path, name: str, file_format: FileFormat, limits: FileLimits) -> FileReading:
    match file_format:
        case FileFormat.FHIR_JSON:
            return read_fhir_json(path, name, limits)
        case FileFormat.FHIR_NDJSON:
            return read_fhir_ndjson(path, name, limits)
        case FileFormat.DICOM:
            return read_dicom(path, name)
        case FileFormat.DICOMDIR:
            return read_dicomdir(path, name)


def _with_origin(detail: str, listed_by: str | None) -> str:
    return f"{detail} (referenced by '{listed_by}')" if listed_by else detail
