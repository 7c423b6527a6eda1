"""Rejection of a file: a stable reason code plus a message for people."""

from dataclasses import dataclass
from enum import StrEnum


class RejectionReason(StrEnum):
    """Stable codes for rejected files; HTTP responses and stored reports use them."""

    NOT_FOUND = "not_found"
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    PATH_OUTSIDE_STAGING_AREA = "path_outside_staging_area"
    INVALID_PATH = "invalid_path"
    EMPTY_FILE = "empty_file"
    FILE_TOO_LARGE = "file_too_large"
    UNKNOWN_FORMAT = "unknown_format"
    UNSUPPORTED_FORMAT = "unsupported_format"
    INVALID_JSON = "invalid_json"
    NOT_FHIR = "not_fhir"
    UNKNOWN_RESOURCE_TYPE = "unknown_resource_type"
    INVALID_FHIR_RESOURCE = "invalid_fhir_resource"
    INVALID_DICOM = "invalid_dicom"
    TRUNCATED_DICOM = "truncated_dicom"
    UNREADABLE = "unreadable"


class FileRejected(Exception):
    """Raised by a reader when a file cannot be accepted; the message names the problem."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RejectedFile:
    """A file that was not accepted, with the reason and what exactly is wrong."""

    path: str
    reason: RejectionReason
    detail: str
