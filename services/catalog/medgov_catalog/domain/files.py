"""File formats the catalog reads, format detection from content, and size limits.

Detection looks at the first bytes of a file, never only at its name: DICOM
Part 10 files carry the marker 'DICM' at byte 128 and FHIR instance files often
have no extension (dcmmkdir writes them that way). The name decides only
between a JSON document and NDJSON when the content allows both.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info

from medgov_catalog.domain.rejection import FileRejected, RejectionReason

DICOM_PREAMBLE_BYTES = 128
DICOM_MAGIC = b"DICM"
MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
_SNIFF_BYTES = 4096
_COPY_CHUNK_BYTES = 1024 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"


class FileFormat(StrEnum):
    FHIR_JSON = "fhir_json"
    FHIR_NDJSON = "fhir_ndjson"
    DICOM = "dicom"
    DICOMDIR = "dicomdir"


# Media types for dcat:mediaType in DatasetDescription.distribution_formats.
MEDIA_TYPES = {
    FileFormat.FHIR_JSON: "application/fhir+json",
    FileFormat.FHIR_NDJSON: "application/fhir+ndjson",
    FileFormat.DICOM: "application/dicom",
    FileFormat.DICOMDIR: "application/dicom",
}


@dataclass(frozen=True)
class FileLimits:
    """Size limits applied before and while a file is read.

    `max_file_bytes` applies to every staged or uploaded file; uploads are
    streamed to disk and stopped as soon as they pass it. A JSON document
    (one resource or Bundle) is parsed in memory, where it takes several times
    its size, so it has a lower limit; NDJSON is read one line at a time.
    """

    max_file_bytes: int = 2 * 1024**3
    max_json_document_bytes: int = 64 * 1024**2
    max_ndjson_line_bytes: int = 16 * 1024**2

    def check_file_size(self, name: str, size: int) -> None:
        if size > self.max_file_bytes:
            raise FileRejected(
                RejectionReason.FILE_TOO_LARGE,
                f"'{name}' has {size} bytes, more than the limit of {self.max_file_bytes} bytes",
            )


def detect_format(path: Path, name: str) -> FileFormat:
    """Return the format of the file at `path` from its content, or raise FileRejected.

    `name` is the file's path as the sender gave it; error messages use it.
    """
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
    if not head:
        raise FileRejected(RejectionReason.EMPTY_FILE, f"'{name}' is empty (0 bytes)")

    if head[DICOM_PREAMBLE_BYTES : DICOM_PREAMBLE_BYTES + 4] == DICOM_MAGIC:
        return FileFormat.DICOMDIR if _declares_media_storage_directory(path) else FileFormat.DICOM
    return _detect_text_format(path, name, head)


def _declares_media_storage_directory(path: Path) -> bool:
    # A broken file meta group is reported by the DICOM reader, which names
    # the element; here it only means "not a DICOMDIR".
    try:
        meta = read_file_meta_info(path)
    except (InvalidDicomError, OSError, EOFError, ValueError):
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY_SOP_CLASS


def _detect_text_format(path: Path, name: str, head: bytes) -> FileFormat:
    text = head.removeprefix(_UTF8_BOM).lstrip()
    if not text:
        raise FileRejected(RejectionReason.EMPTY_FILE, f"'{name}' contains only white space")
    if text.startswith(b"{"):
        return _json_or_ndjson(path)
    if text.startswith(b"<"):
        raise _xml_rejection(name, text)
    if _looks_like_fhir_shorthand(text):
        raise FileRejected(
            RejectionReason.UNSUPPORTED_FORMAT,
            f"'{name}' is FHIR Shorthand (FSH) source, not data; compile it with SUSHI and send the FHIR JSON",
        )
    if text.startswith(b"["):
        raise FileRejected(
            RejectionReason.NOT_FHIR,
            f"'{name}' is a JSON array; FHIR JSON is one resource per file, or NDJSON with one resource per line",
        )
    named_format = _format_of_name(path)
    if named_format is not None:
        # The name says JSON or NDJSON, so the JSON reader reports the line and
        # position where the content stops being JSON.
        return named_format
    raise FileRejected(
        RejectionReason.UNKNOWN_FORMAT,
        f"'{name}' is neither DICOM (no 'DICM' marker at byte 128) nor FHIR JSON or NDJSON",
    )


_FORMAT_OF_SUFFIX = {".ndjson": FileFormat.FHIR_NDJSON, ".jsonl": FileFormat.FHIR_NDJSON, ".json": FileFormat.FHIR_JSON}


def _format_of_name(path: Path) -> FileFormat | None:
    """Return the JSON format the file's suffix names, or None for any other suffix."""
    return _FORMAT_OF_SUFFIX.get(path.suffix.lower())


def _json_or_ndjson(path: Path) -> FileFormat:
    named_format = _format_of_name(path)
    if named_format is not None:
        return named_format
    return FileFormat.FHIR_NDJSON if _has_second_json_line(path) else FileFormat.FHIR_JSON


def _has_second_json_line(path: Path) -> bool:
    # Pretty-printed JSON has a line that starts with "{" only at its start, so a
    # second non-blank line that starts with "{" means one object per line.
    with path.open("rb") as stream:
        first = stream.readline(_SNIFF_BYTES * 16)
        if not first.rstrip().endswith(b"}"):
            return False
        for line in stream:
            stripped = line.strip()
            if stripped:
                return stripped.startswith(b"{")
    return False


def _xml_rejection(name: str, text: bytes) -> FileRejected:
    if b"http://hl7.org/fhir" in text:
        return FileRejected(
            RejectionReason.UNSUPPORTED_FORMAT,
            f"'{name}' is FHIR XML, which the catalog does not read; export the resource as FHIR JSON",
        )
    return FileRejected(RejectionReason.UNKNOWN_FORMAT, f"'{name}' is XML but not FHIR XML")


_FSH_KEYWORDS = (b"Instance:", b"Profile:", b"Alias:", b"Extension:", b"ValueSet:", b"CodeSystem:", b"RuleSet:")


def _looks_like_fhir_shorthand(text: bytes) -> bool:
    return any(line.lstrip().startswith(_FSH_KEYWORDS) for line in text.splitlines()[:20])


@dataclass(frozen=True)
class StoredFile:
    """A file written to the staging area, with its size and SHA-256 digest."""

    path: Path
    size_bytes: int
    sha256: str


class LimitedFileWriter:
    """Write chunks of an upload to a file and stop as soon as it passes the size limit.

    Nothing is held in memory beyond one chunk. On an oversized upload the
    partial file is deleted and FileRejected (file_too_large) is raised, so an
    HTTP route can feed it chunk by chunk from an async body stream.
    """

    def __init__(self, destination: Path, max_bytes: int, name: str) -> None:
        self._destination = destination
        self._max_bytes = max_bytes
        self._name = name
        self._size = 0
        self._digest = hashlib.sha256()
        self._stream: BinaryIO = destination.open("xb")

    def write(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._max_bytes:
            self.discard()
            raise FileRejected(
                RejectionReason.FILE_TOO_LARGE,
                f"upload '{self._name}' passed the limit of {self._max_bytes} bytes; the partial file was deleted",
            )
        self._digest.update(chunk)
        self._stream.write(chunk)

    def finish(self) -> StoredFile:
        try:
            # Closing flushes the last bytes, which fails on a full disk.
            self._stream.close()
        except BaseException:
            self._destination.unlink(missing_ok=True)
            raise
        return StoredFile(self._destination, self._size, self._digest.hexdigest())

    def discard(self) -> None:
        try:
            self._stream.close()
        finally:
            self._destination.unlink(missing_ok=True)


def store_stream(chunks: Iterable[bytes], destination: Path, max_bytes: int, name: str) -> StoredFile:
    """Write `chunks` to `destination` under the size limit (see LimitedFileWriter)."""
    writer = LimitedFileWriter(destination, max_bytes, name)
    try:
        for chunk in chunks:
            writer.write(chunk)
    except FileRejected:
        raise
    except BaseException:
        writer.discard()
        raise
    return writer.finish()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_COPY_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
