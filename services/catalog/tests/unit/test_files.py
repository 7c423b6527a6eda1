"""Format detection from content, and size limits that hold while an upload streams."""

import pytest

from medgov_catalog.domain.extract_fhir import read_fhir_json, read_fhir_ndjson
from medgov_catalog.domain.files import FileFormat, FileLimits, LimitedFileWriter, detect_format, store_stream
from medgov_catalog.domain.rejection import FileRejected, RejectionReason


def _detect(tmp_path, name: str, content: bytes) -> FileFormat:
    path = tmp_path / name
    path.write_bytes(content)
    return detect_format(path, name)


def _rejection(tmp_path, name: str, content: bytes) -> FileRejected:
    with pytest.raises(FileRejected) as raised:
        _detect(tmp_path, name, content)
    return raised.value


def test_dicom_detected_without_extension(tmp_path, sample_data):
    content = (sample_data / "dicom/fileset/77654033/CR1/6154").read_bytes()

    assert _detect(tmp_path, "6154", content) == FileFormat.DICOM


def test_dicomdir_detected_by_sop_class(tmp_path, sample_data):
    content = (sample_data / "dicom/fileset/DICOMDIR").read_bytes()

    assert _detect(tmp_path, "index", content) == FileFormat.DICOMDIR


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.json", b'{"resourceType": "Patient"}', FileFormat.FHIR_JSON),
        ("a.ndjson", b'{"resourceType": "Patient"}\n', FileFormat.FHIR_NDJSON),
        ("a.jsonl", b'{"resourceType": "Patient"}\n', FileFormat.FHIR_NDJSON),
        ("export", b'{"resourceType": "Patient"}\n{"resourceType": "Patient"}\n', FileFormat.FHIR_NDJSON),
        ("doc", b'{\n  "resourceType": "Patient",\n  "id": "x"\n}\n', FileFormat.FHIR_JSON),
        ("bom.json", b'\xef\xbb\xbf  {"resourceType": "Patient"}', FileFormat.FHIR_JSON),
    ],
)
def test_text_formats_detected(tmp_path, name, content, expected):
    assert _detect(tmp_path, name, content) == expected


@pytest.mark.parametrize(
    ("content", "reason", "words"),
    [
        (b"", RejectionReason.EMPTY_FILE, "empty (0 bytes)"),
        (b"  \n\t ", RejectionReason.EMPTY_FILE, "only white space"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, RejectionReason.UNKNOWN_FORMAT, "neither DICOM"),
        (b"<html><body/></html>", RejectionReason.UNKNOWN_FORMAT, "not FHIR XML"),
        (b'<Patient xmlns="http://hl7.org/fhir"/>', RejectionReason.UNSUPPORTED_FORMAT, "FHIR XML"),
        (b"Instance: x\nInstanceOf: Patient\n", RejectionReason.UNSUPPORTED_FORMAT, "FHIR Shorthand"),
        (b'[{"resourceType": "Patient"}]', RejectionReason.NOT_FHIR, "JSON array"),
    ],
)
def test_bad_content_rejected_with_reason(tmp_path, content, reason, words):
    rejection = _rejection(tmp_path, "upload.bin", content)

    assert rejection.reason == reason
    assert words in rejection.detail
    assert "'upload.bin'" in rejection.detail


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("export.ndjson", b'patient 1 consented\n{"resourceType": "Patient"}\n', "' line 1: invalid JSON at"),
        ("export.jsonl", b'# header\n{"resourceType": "Patient"}\n', "' line 1: invalid JSON at"),
        ("study.json", b"resourceType=ImagingStudy", "': invalid JSON at line 1"),
    ],
)
def test_json_name_bad_text_reports_json_error(tmp_path, name, content, where):
    path = tmp_path / name
    path.write_bytes(content)
    file_format = detect_format(path, name)
    reader = read_fhir_ndjson if file_format == FileFormat.FHIR_NDJSON else read_fhir_json

    with pytest.raises(FileRejected) as raised:
        reader(path, name, FileLimits())

    assert raised.value.reason == RejectionReason.INVALID_JSON
    assert f"'{name}{where}" in raised.value.detail


def test_truncated_preamble_is_unknown_format(tmp_path, sample_data):
    content = (sample_data / "dicom/single/CT_small.dcm").read_bytes()[:100]

    assert _rejection(tmp_path, "ct.dcm", content).reason == RejectionReason.UNKNOWN_FORMAT


def test_file_limit_names_file_and_sizes():
    with pytest.raises(FileRejected) as raised:
        FileLimits(max_file_bytes=10).check_file_size("big.dcm", 11)

    assert raised.value.reason == RejectionReason.FILE_TOO_LARGE
    assert "'big.dcm' has 11 bytes" in raised.value.detail
    assert "limit of 10 bytes" in raised.value.detail


def test_upload_under_limit_stored_with_digest(tmp_path):
    stored = store_stream([b"abc", b"def"], tmp_path / "up.json", max_bytes=6, name="up.json")

    assert stored.size_bytes == 6
    assert stored.sha256 == "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721"
    assert (tmp_path / "up.json").read_bytes() == b"abcdef"


def test_oversized_upload_stops_early_and_deletes(tmp_path):
    consumed = []

    def chunks():
        for index in range(1000):
            consumed.append(index)
            yield b"x" * 1024

    with pytest.raises(FileRejected) as raised:
        store_stream(chunks(), tmp_path / "up.dcm", max_bytes=4096, name="up.dcm")

    assert raised.value.reason == RejectionReason.FILE_TOO_LARGE
    assert len(consumed) == 5
    assert not (tmp_path / "up.dcm").exists()


def test_failed_stream_deletes_partial_file(tmp_path):
    def chunks():
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store_stream(chunks(), tmp_path / "up.dcm", max_bytes=4096, name="up.dcm")

    assert not (tmp_path / "up.dcm").exists()


def test_writer_never_overwrites_existing_file(tmp_path):
    (tmp_path / "up.dcm").write_bytes(b"keep")

    with pytest.raises(FileExistsError):
        LimitedFileWriter(tmp_path / "up.dcm", max_bytes=10, name="up.dcm")

    assert (tmp_path / "up.dcm").read_bytes() == b"keep"


class FullDiskStream:
    """A file stream whose close fails as it does when the last bytes cannot be flushed to a full disk."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, chunk: bytes) -> int:
        return self.stream.write(chunk)

    def close(self) -> None:
        self.stream.close()
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("ending", ["finish", "discard"])
def test_partial_file_removed_when_close_fails(tmp_path, ending):
    destination = tmp_path / "upload.ndjson.partial"
    writer = LimitedFileWriter(destination, max_bytes=1024, name="upload.ndjson")
    writer.write(b'{"resourceType": "Patient"}\n')
    writer._stream = FullDiskStream(writer._stream)

    with pytest.raises(OSError, match="No space left"):
        getattr(writer, ending)()

    assert not destination.exists()
