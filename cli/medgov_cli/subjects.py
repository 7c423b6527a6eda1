"""Finding the local patient ids in a hospital's files, so the publisher can pseudonymize them.

FHIR: Patient resource ids and every "Patient/<id>" reference, in JSON
resources, Bundles and NDJSON bulk exports. DICOM: PatientID of each instance.
Every problem with a file raises ValueError whose message starts with the path.
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medgov_shared.utf8 import decode_utf8

UNDEFINED_LENGTH = 0xFFFFFFFF
# The catalog's default limits (max_json_document_bytes, max_ndjson_line_bytes):
# a file the catalog would refuse is refused here before it is read into memory.
MAX_JSON_DOCUMENT_BYTES = 64 * 1024**2
MAX_NDJSON_LINE_BYTES = 16 * 1024**2
# Python's JSON reader, and the code that walks what it read, stop at about 1,000 levels.
TOO_DEEP = "nested too deeply: more levels of arrays and objects inside one another than the reader follows (about 1,000)"
# Values above this size are skipped instead of read, so pixel data stays on disk.
DEFER_SIZE = "64 KB"


def _walk_references(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            yield reference.split("/", 1)[1]
        for item in value.values():
            yield from _walk_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_references(item)


def _fhir_patients(resource: dict) -> Iterator[str]:
    if resource.get("resourceType") == "Patient" and resource.get("id"):
        yield str(resource["id"])
    if resource.get("resourceType") == "Bundle":
        entries = resource.get("entry", [])
        for entry in entries if isinstance(entries, list) else ():
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(inner, dict):
                continue
            if inner.get("resourceType") == "Patient":
                # Synthea bundles address patients by urn:uuid fullUrl as well as by id.
                yield str(inner.get("id") or str(entry.get("fullUrl", "")).removeprefix("urn:uuid:"))
            else:
                yield from _walk_references(inner)
        return
    yield from _walk_references(resource)


def json_type_name(value: Any) -> str:
    """Name a parsed JSON value's type as JSON calls it, for error messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def parse_json(text: str) -> Any:
    """Parse JSON text; raise ValueError starting with "not JSON" and naming the problem and its place."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        # Some of json's messages end in "at" because it appends the place itself.
        problem = error.msg.removesuffix(" at")
        raise ValueError(f"not JSON ({problem} at line {error.lineno} column {error.colno})") from None
    except ValueError as error:
        if "integer string conversion" not in str(error):
            raise
        # Python refuses integers of more than 4,300 digits by default (sys.get_int_max_str_digits).
        raise ValueError(f"not JSON this reader takes (a number with more than {sys.get_int_max_str_digits():,} digits)") from None


def read_bytes(path: Path, limit: int = MAX_JSON_DOCUMENT_BYTES) -> bytes:
    """Read a whole file of at most `limit` bytes; a larger one raises ValueError before anything is read."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise ValueError(
                f"{path}: {size} bytes, more than the limit of {limit} bytes for one JSON document; "
                "split it, or send a bulk export as NDJSON"
            )
        return path.read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None


def ndjson_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) of each non-blank line, reading one line at a time.

    A bulk export can be gigabytes, so the file is never read whole. A line
    over MAX_NDJSON_LINE_BYTES or one that is not UTF-8 raises ValueError
    naming the path and the line.
    """
    try:
        with path.open("rb") as stream:
            for number, raw in enumerate(iter(lambda: stream.readline(MAX_NDJSON_LINE_BYTES + 1), b""), 1):
                if len(raw) > MAX_NDJSON_LINE_BYTES:
                    raise ValueError(f"{path}: line {number} is longer than the limit of {MAX_NDJSON_LINE_BYTES} bytes")
                try:
                    line = decode_utf8(raw)
                except ValueError as error:
                    raise ValueError(f"{path}: line {number}: {error}") from None
                if line.strip():
                    yield number, line
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None


def read_text(path: Path) -> str:
    """Read a file as UTF-8; an unreadable or binary file raises ValueError starting with the path."""
    data = read_bytes(path)
    try:
        return decode_utf8(data)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _ndjson_patients(path: Path) -> set[str]:
    found: set[str] = set()
    resources = 0
    for number, line in ndjson_lines(path):
        try:
            resource = parse_json(line)
        except ValueError as error:
            raise ValueError(f"{path}: line {number}: {error}") from None
        if not isinstance(resource, dict):
            raise ValueError(f"{path}: line {number} is {json_type_name(resource)}, expected a FHIR resource object")
        found |= set(_fhir_patients(resource))
        resources += 1
    if resources == 0:
        raise ValueError(f"{path}: empty NDJSON file, expected one FHIR resource per line")
    return found


def _json_patients(path: Path) -> set[str]:
    text = read_text(path)
    if not text.strip():
        raise ValueError(f"{path}: empty file, expected a FHIR resource")
    try:
        resource = parse_json(text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(resource, dict):
        raise ValueError(f"{path}: the file contains {json_type_name(resource)}, expected a FHIR resource object")
    return set(_fhir_patients(resource))


def _check_complete(path: Path, dataset: Dataset) -> None:
    """Raise ValueError if the file ends inside a data element.

    pydicom stops silently at the end of the file, so a truncated file reads
    as a dataset with fewer elements. A value whose declared length runs past
    the end, or 1 to 7 bytes left after the last element (a cut element
    header), shows the cut. NOTE: a file cut exactly between two elements
    looks complete to this check.
    """
    size = path.stat().st_size
    end = None
    for element in dataset.elements():
        value_tell = getattr(element, "value_tell", None)
        length = getattr(element, "length", UNDEFINED_LENGTH)
        if value_tell is None or length == UNDEFINED_LENGTH:
            end = None
            continue
        end = value_tell + length
        if end > size:
            raise ValueError(
                f"{path}: truncated DICOM file: element {element.tag} declares {length} bytes, "
                f"but the file ends {end - size} bytes early"
            )
    if end is not None and 0 < size - end < 8:
        raise ValueError(f"{path}: truncated DICOM file: it ends inside a data element header")


def _dicom_patients(path: Path) -> set[str]:
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, expected FHIR JSON, NDJSON or DICOM")
    try:
        # Strict reading turns an end of file inside a sequence into EOFError instead of a warning.
        with pydicom_config.strict_reading():
            dataset = pydicom.dcmread(path, defer_size=DEFER_SIZE)
    except InvalidDicomError as error:
        raise ValueError(f"{path}: not a FHIR JSON/NDJSON or DICOM file ({error})") from None
    except EOFError:
        raise ValueError(f"{path}: truncated DICOM file: it ends inside a sequence or data element") from None
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    except Exception as error:  # noqa: BLE001 - pydicom raises many types on damaged files; each names the file
        raise ValueError(f"{path}: unreadable DICOM file, probably truncated or damaged "
                         f"({type(error).__name__}: {error})") from None
    _check_complete(path, dataset)
    if "DirectoryRecordSequence" in dataset:  # a DICOMDIR lists its patients in PATIENT records
        return {
            str(record.PatientID)
            for record in dataset.DirectoryRecordSequence
            if record.get("DirectoryRecordType") == "PATIENT" and record.get("PatientID")
        }
    patient_id = str(dataset.get("PatientID", "") or "")
    return {patient_id} if patient_id else set()


def local_patient_ids(path: Path) -> set[str]:
    """Return the local patient ids found in one file; an unreadable file raises ValueError naming it."""
    name = path.name.lower()
    try:
        if name.endswith(".ndjson"):
            return _ndjson_patients(path)
        if name.endswith(".json"):
            return _json_patients(path)
    except RecursionError:
        raise ValueError(f"{path}: {TOO_DEEP}") from None
    return _dicom_patients(path)
