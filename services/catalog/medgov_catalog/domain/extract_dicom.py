"""Read DICOM Part 10 files and DICOMDIR file-sets with pydicom.

Large values (pixel data above all) are deferred: pydicom records where they
are and does not load them. pydicom 3.0 accepts many truncated files without
an error (a short read becomes a short value, and a missing sequence
delimiter silently yields an empty data set), so `_check_complete` compares
what was parsed with the size of the file.
"""

import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from medgov_catalog.domain.figures import DateRange, FileFigures, FileReading, subject_key
from medgov_catalog.domain.pipa_dicom import scan_dicom_dataset
from medgov_catalog.domain.rejection import FileRejected, RejectionReason

# Values above this size stay on disk until read; a data set's text elements are far smaller.
DEFER_SIZE_BYTES = 256 * 1024

DEFAULT_CHARACTER_SET = "ISO_IR 6"
_UNDEFINED_LENGTH = 0xFFFFFFFF
_DELIMITER_ITEM_BYTES = 8
_INACTIVE_RECORD = 0x0000
_PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Explicit VR elements of these VRs have a 12-byte header (tag, VR, 2 reserved bytes, 32-bit length).
_LONG_HEADER_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
# A complete element header has at least 8 bytes (tag and 32-bit length, implicit VR).
_MIN_ELEMENT_HEADER_BYTES = 8


def read_dicom(path: Path, name: str) -> FileReading:
    """Read one DICOM instance: its figures and identifier findings."""
    with _translated_errors(name):
        dataset = _read(path, name)
        _check_identified(dataset, name)
        figures = FileFigures(
            modalities=_values(dataset, "Modality"),
            body_parts=frozenset(part.upper() for part in _values(dataset, "BodyPartExamined")),
            character_sets=_character_sets([dataset]),
            study_uids=_values(dataset, "StudyInstanceUID"),
            series_uids=_values(dataset, "SeriesInstanceUID"),
            instance_uids=_instance_uid(dataset),
            subject_keys=_subject_keys([dataset]),
            **_date_fields([_first_date(dataset)]),
        )
        findings = tuple(scan_dicom_dataset(dataset, name))
        warnings = _warnings(dataset)
    return FileReading(figures=figures, findings=findings, warnings=warnings)


def read_dicomdir(path: Path, name: str) -> FileReading:
    """Read a DICOMDIR: figures from its directory records, and the instance files it references.

    A referenced file's path is the DICOMDIR's own folder plus the Referenced
    File ID, relative to the staging area. The caller reads those files as
    files of the dataset. Inactive records (Record In-use Flag 0) are skipped.
    """
    with _translated_errors(name):
        dataset = _read(path, name)
        records = [record for record in dataset.get("DirectoryRecordSequence", []) if _is_active(record)]
        by_type = _records_by_type(records)
        leaf_records = [record for record in records if "ReferencedFileID" in record]
        figures = FileFigures(
            modalities=_union(_values(record, "Modality") for record in by_type.get("SERIES", [])),
            character_sets=_character_sets([dataset, *records]),
            study_uids=_union(_values(record, "StudyInstanceUID") for record in by_type.get("STUDY", [])),
            series_uids=_union(_values(record, "SeriesInstanceUID") for record in by_type.get("SERIES", [])),
            instance_uids=_union(_values(record, "ReferencedSOPInstanceUIDInFile") for record in leaf_records),
            subject_keys=_subject_keys(by_type.get("PATIENT", [])),
            **_date_fields(_first_date(record) for record in by_type.get("STUDY", [])),
        )
        folder = PurePosixPath(name).parent
        referenced = tuple(dict.fromkeys(_referenced_path(folder, record) for record in leaf_records))
        findings = tuple(scan_dicom_dataset(dataset, name))
    return FileReading(figures=figures, findings=findings, referenced_files=referenced)


@contextmanager
def _translated_errors(name: str) -> Iterator[None]:
    # pydicom parses sequences and deferred values only when they are first
    # accessed, so parse errors can surface during extraction and scanning too.
    try:
        yield
    except InvalidDicomError as error:
        raise FileRejected(
            RejectionReason.INVALID_DICOM, f"'{name}' is not a valid DICOM file: {_without_library_hint(error)}"
        ) from None
    except (EOFError, OSError, struct.error, BytesLengthException) as error:
        raise FileRejected(RejectionReason.TRUNCATED_DICOM, f"'{name}' ends inside a data element: {error}") from None
    except (ValueError, KeyError, TypeError, AttributeError, NotImplementedError) as error:
        raise FileRejected(RejectionReason.INVALID_DICOM, f"'{name}' cannot be parsed as DICOM: {error}") from None


def _without_library_hint(error: Exception) -> str:
    """Drop pydicom's advice to call it with force=True, which means nothing to a hospital sending files."""
    sentences = str(error).split(". ")
    return ". ".join(sentence for sentence in sentences if "force=True" not in sentence).rstrip(". ") + "."


def _read(path: Path, name: str) -> FileDataset:
    dataset = dcmread(str(path), defer_size=DEFER_SIZE_BYTES)
    _check_complete(dataset, path.stat().st_size, name)
    return dataset


def _check_complete(dataset: Dataset, size: int, name: str) -> None:
    """Raise FileRejected (truncated_dicom) if the file ends before its last element does.

    NOTE: a file cut exactly between two elements looks complete, so it is
    accepted with the elements it has. An image cut that way gets a warning
    (no pixel data) but is not rejected.
    """
    tags = list(dataset.keys())
    if not tags:
        raise FileRejected(
            RejectionReason.TRUNCATED_DICOM,
            f"'{name}' has no data elements after the file meta information (file cut short, or a sequence "
            "delimiter is missing)",
        )

    for tag in tags:
        raw = dataset.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.length == _UNDEFINED_LENGTH:
            continue
        loaded = raw.value is not None and len(raw.value) < raw.length
        if loaded or raw.value_tell + raw.length > size:
            raise FileRejected(
                RejectionReason.TRUNCATED_DICOM,
                f"'{name}' is cut short: element {tag} declares {raw.length} bytes at offset {raw.value_tell}, "
                f"but the file has {size} bytes",
            )

    end = _end_of_data_set(dataset, tags)
    if end is not None and 0 < size - end < _MIN_ELEMENT_HEADER_BYTES:
        raise FileRejected(
            RejectionReason.TRUNCATED_DICOM,
            f"'{name}' ends with {size - end} bytes at offset {end} that are not a complete data element header",
        )
    if end is not None and end > size:
        raise FileRejected(
            RejectionReason.TRUNCATED_DICOM, f"'{name}' is cut short: its last element ends at offset {end}, after the end of the file"
        )


def _check_identified(dataset: Dataset, name: str) -> None:
    # SOP Class and SOP Instance UID are type 1 in every composite object and
    # come early in the data set, so their absence also catches a file cut
    # inside its first elements.
    missing = [keyword for keyword in ("SOPClassUID", "SOPInstanceUID") if not str(dataset.get(keyword, "")).strip()]
    if missing:
        raise FileRejected(
            RejectionReason.INVALID_DICOM,
            f"'{name}' has no {' or '.join(missing)}, which every DICOM instance needs (is the file cut short?)",
        )


def _warnings(dataset: Dataset) -> tuple[str, ...]:
    # Pixel data comes last, so an image without it may have been cut exactly
    # between two elements. It is only a warning: test and character-set
    # sample files often drop the pixel data on purpose.
    is_image = "Image Storage" in dataset.SOPClassUID.name or "Rows" in dataset
    if is_image and not any(keyword in dataset for keyword in _PIXEL_DATA_KEYWORDS):
        return (f"image ({dataset.SOPClassUID.name}) without pixel data; check that the file is complete",)
    return ()


def _end_of_data_set(dataset: Dataset, tags: list[BaseTag]) -> int | None:
    """Return the offset where the last top-level element ends, or None if it cannot be known.

    pydicom keeps the offsets of raw elements only. Empty elements it already
    converted are counted by their header size. A converted element with a
    value (Specific Character Set, a sequence) leaves the end unknown.
    """
    end = None
    trailing_headers = 0
    for tag in tags:
        raw = dataset.get_item(tag)
        if isinstance(raw, RawDataElement):
            end = _end_of_raw_element(raw)
            trailing_headers = 0
        elif raw is not None and raw.VR != "SQ" and raw.is_empty:
            trailing_headers += _header_bytes(raw.VR, dataset)
        else:
            end = None
            trailing_headers = 0
    return None if end is None else end + trailing_headers


def _end_of_raw_element(raw: RawDataElement) -> int | None:
    if raw.length != _UNDEFINED_LENGTH:
        return raw.value_tell + raw.length
    if raw.value is None:
        return None
    # Encapsulated pixel data ends with an 8-byte sequence delimitation item.
    return raw.value_tell + len(raw.value) + _DELIMITER_ITEM_BYTES


def _header_bytes(vr: str, dataset: Dataset) -> int:
    implicit_vr = dataset.original_encoding[0]
    return 8 if implicit_vr or vr not in _LONG_HEADER_VRS else 12


def _values(dataset: Dataset, keyword: str) -> frozenset[str]:
    value = dataset.get(keyword)
    if value is None:
        return frozenset()
    items = value if isinstance(value, (MultiValue, list, tuple)) else [value]
    return frozenset(str(item).strip() for item in items if str(item).strip())


def _instance_uid(dataset: FileDataset) -> frozenset[str]:
    uids = _values(dataset, "SOPInstanceUID")
    if not uids and dataset.file_meta is not None:
        uids = _values(dataset.file_meta, "MediaStorageSOPInstanceUID")
    return uids


def _character_sets(datasets: Iterable[Dataset]) -> frozenset[str]:
    found = _union(_values(dataset, "SpecificCharacterSet") for dataset in datasets)
    return found or frozenset({DEFAULT_CHARACTER_SET})


def _subject_keys(datasets: Iterable[Dataset]) -> frozenset[str]:
    keys = set()
    for dataset in datasets:
        patient_id = str(dataset.get("PatientID", "") or "").strip()
        patient_name = str(dataset.get("PatientName", "") or "").strip(" ^=")
        if patient_id:
            keys.add(subject_key("dicom-id", patient_id))
        elif patient_name:
            keys.add(subject_key("dicom-name", patient_name))
    return frozenset(keys)


def _first_date(dataset: Dataset) -> str:
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        value = str(dataset.get(keyword, "") or "").strip()
        if value:
            return value
    return ""


def _date_fields(values: Iterable[str]) -> dict[str, Any]:
    dates = DateRange()
    for value in values:
        day = _parse_da(value)
        if day is not None:
            dates.include(day, day)
    return {"date_start": dates.start, "date_end": dates.end}


def _parse_da(value: str) -> date | None:
    # DA is YYYYMMDD; the ACR-NEMA form YYYY.MM.DD still occurs in old files.
    digits = value.replace(".", "")[:8]
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _is_active(record: Dataset) -> bool:
    return record.get("RecordInUseFlag", 0xFFFF) != _INACTIVE_RECORD


def _records_by_type(records: Iterable[Dataset]) -> dict[str, list[Dataset]]:
    grouped: dict[str, list[Dataset]] = {}
    for record in records:
        grouped.setdefault(str(record.get("DirectoryRecordType", "")).strip(), []).append(record)
    return grouped


def _referenced_path(folder: PurePosixPath, record: Dataset) -> str:
    components = record.ReferencedFileID
    parts = [components] if isinstance(components, str) else list(components)
    return str(folder.joinpath(*(str(part) for part in parts)))


def _union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
    result: set[str] = set()
    for item in sets:
        result |= item
    return frozenset(result)
