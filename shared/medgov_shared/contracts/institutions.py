"""The institutions known to the platform.

The packaged list is institutions.yaml beside this module. An installation
adds institutions without a new release through an extra YAML file in the
same row format, named by the environment variable MEDGOV_EXTRA_INSTITUTIONS_FILE.
Tests and the benchmark register their throwaway institutions the same way.
"""

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Literal, get_args

import yaml

from medgov_shared.contracts.types import Region

_FILE = Path(__file__).with_name("institutions.yaml")

EXTRA_INSTITUTIONS_ENV = "MEDGOV_EXTRA_INSTITUTIONS_FILE"

InstitutionKind = Literal["hospital", "vendor", "partner", "council"]

# Inbound topic names and Kafka user names are built from the id, so an id
# must fit the id group of INBOUND_TOPIC_PATTERN in registry.py.
_ID_PATTERN = re.compile(r"[a-z][a-z0-9-]{1,31}")


class InstitutionFileError(ValueError):
    """Raised when an institutions file cannot be read, has an invalid row, or repeats an id."""


@dataclass(frozen=True)
class Institution:
    id: str
    region: Region
    kind: InstitutionKind
    name_ko: str
    name_en: str


@cache
def all_institutions() -> dict[str, Institution]:
    """Load the packaged institutions and, if MEDGOV_EXTRA_INSTITUTIONS_FILE is set, the extra file.

    The result is cached for the life of the process, so a service reads a
    changed file or variable only after a restart, or after
    all_institutions.cache_clear(). Raises InstitutionFileError when a file is
    invalid or an extra id is already packaged.
    """
    packaged = load_institutions_file(_FILE)
    extra_path = os.environ.get(EXTRA_INSTITUTIONS_ENV, "").strip()
    if not extra_path:
        return packaged

    extra = load_institutions_file(Path(extra_path))
    clashes = sorted(set(packaged) & set(extra))
    if clashes:
        raise InstitutionFileError(
            f"{extra_path} (named by {EXTRA_INSTITUTIONS_ENV}) lists {', '.join(clashes)}, which the packaged "
            f"institutions.yaml already contains. Remove these rows or give the institutions other ids."
        )
    return {**packaged, **extra}


def get_institution(institution_id: str) -> Institution:
    try:
        return all_institutions()[institution_id]
    except KeyError:
        raise KeyError(f"unknown institution {institution_id!r}; known: {', '.join(sorted(all_institutions()))}") from None


def hospitals() -> list[Institution]:
    return [item for item in all_institutions().values() if item.kind == "hospital"]


def load_institutions_file(path: Path) -> dict[str, Institution]:
    """Read and validate one institutions file and return its institutions by id.

    An empty file has no institutions. Raises InstitutionFileError, naming the
    file and the row, for an unreadable file, an invalid row or an id listed twice.
    """
    try:
        rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise InstitutionFileError(f"cannot read institutions file {path}: {error}") from error
    except yaml.YAMLError as error:
        # PyYAML's message spans several lines and names "<unicode string>"; the service prints one line.
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise InstitutionFileError(f"institutions file {path} is not valid YAML{where}: {problem}") from error
    if rows is None:
        return {}
    if not isinstance(rows, list):
        raise InstitutionFileError(f"institutions file {path} must contain a YAML list of rows, not {type(rows).__name__}")

    institutions: dict[str, Institution] = {}
    for number, row in enumerate(rows, start=1):
        institution = _parse_row(row, f"{path}, row {number}")
        if institution.id in institutions:
            raise InstitutionFileError(f"{path}, row {number}: institution id '{institution.id}' is listed twice")
        institutions[institution.id] = institution
    return institutions


def write_institutions_file(path: Path, institutions: Iterable[Institution]) -> Path:
    """Write institutions to `path` in the row format of institutions.yaml and return the path."""
    rows = [{**asdict(item), "region": item.region.value} for item in institutions]
    path.write_text(yaml.safe_dump(rows, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _parse_row(row: object, where: str) -> Institution:
    expected = [item.name for item in fields(Institution)]
    if not isinstance(row, dict):
        raise InstitutionFileError(f"{where}: expected a mapping with {', '.join(expected)}, got {row!r}")
    missing = [name for name in expected if name not in row]
    unknown = sorted(str(name) for name in row if name not in expected)
    if missing or unknown:
        problems = [f"missing fields {missing}" if missing else "", f"unknown fields {unknown}" if unknown else ""]
        raise InstitutionFileError(
            f"{where}: {' and '.join(item for item in problems if item)}. Expected the fields {', '.join(expected)}."
        )
    for name in expected:
        if not isinstance(row[name], str) or not row[name].strip():
            raise InstitutionFileError(f"{where}: field '{name}' must be a non-empty string, got {row[name]!r}")

    if not _ID_PATTERN.fullmatch(row["id"]):
        raise InstitutionFileError(
            f"{where}: invalid id {row['id']!r}. An id has 2 to 32 characters of a-z, 0-9 and '-' and starts with a letter."
        )
    if row["region"] not in {item.value for item in Region}:
        raise InstitutionFileError(f"{where}: unknown region {row['region']!r}. Expected one of {', '.join(Region)}.")
    kinds = get_args(InstitutionKind)
    if row["kind"] not in kinds:
        raise InstitutionFileError(f"{where}: unknown kind {row['kind']!r}. Expected one of {', '.join(kinds)}.")
    return Institution(**{**row, "region": Region(row["region"])})
