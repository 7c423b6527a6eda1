"""DICOM reading: truncated files are rejected with the reason, DICOMDIR references are followed."""

import shutil

import pydicom
import pytest

from medgov_catalog.domain.extract_dicom import read_dicom, read_dicomdir
from medgov_catalog.domain.files import FileLimits
from medgov_catalog.domain.inspection import inspect_dataset
from medgov_catalog.domain.rejection import FileRejected, RejectionReason

CT_SMALL = "dicom/single/CT_small.dcm"
JPEG2000 = "dicom/single/JPEG2000.dcm"


def _cut(tmp_path, sample_data, relative, keep_bytes):
    content = (sample_data / relative).read_bytes()
    keep = keep_bytes if keep_bytes >= 0 else len(content) + keep_bytes
    path = tmp_path / "cut.dcm"
    path.write_bytes(content[:keep])
    return path


@pytest.mark.parametrize(
    ("relative", "keep_bytes", "words"),
    [
        # Inside the file meta group: pydicom finds no data set.
        (CT_SMALL, 200, "no data elements"),
        # Inside the value of a sequence, which pydicom parses only when it is read.
        (CT_SMALL, 1000, "is cut short: element (0010,1002) declares 72 bytes"),
        # Inside an element header of the data set.
        (CT_SMALL, 990, "ends inside a data element"),
        # Inside the file meta group.
        (CT_SMALL, 141, "ends inside a data element"),
        # Two bytes into the header of the pixel data element.
        (CT_SMALL, 6290, "not a complete data element header"),
        # Inside the native pixel data, which pydicom reads short without an error.
        (CT_SMALL, 20000, "is cut short: element (7FE0,0010) declares 32768 bytes"),
        # Inside the trailing padding element.
        (CT_SMALL, -100, "is cut short: element (FFFC,FFFC)"),
        # Encapsulated (JPEG 2000) pixel data without its sequence delimiter.
        (JPEG2000, -8, "no data elements"),
        # Only the 4 zero bytes after the delimiter tag are missing.
        (JPEG2000, -4, "after the end of the file"),
    ],
)
def test_truncated_dicom_rejected(tmp_path, sample_data, relative, keep_bytes, words):
    path = _cut(tmp_path, sample_data, relative, keep_bytes)

    with pytest.raises(FileRejected) as raised:
        read_dicom(path, "cut.dcm")

    assert raised.value.reason == RejectionReason.TRUNCATED_DICOM
    assert raised.value.detail.startswith("'cut.dcm'")
    assert words in raised.value.detail


@pytest.mark.parametrize("relative", [CT_SMALL, JPEG2000, "dicom/single/rtdose.dcm", "dicom/fileset/DICOMDIR"])
def test_complete_dicom_not_flagged_truncated(sample_data, relative):
    reader = read_dicomdir if relative.endswith("DICOMDIR") else read_dicom

    reading = reader(sample_data / relative, relative)

    assert reading.figures.summary().record_count >= 1


def test_korean_name_decoded_and_charset_reported(sample_data):
    path = sample_data / "dicom/charset/chrKoreanMulti.dcm"

    reading = read_dicom(path, "kr.dcm")

    assert pydicom.dcmread(path).PatientName.family_name == "김희중"
    assert reading.figures.character_sets == frozenset({"ISO 2022 IR 149"})
    assert any(finding.location == "PatientName (0010,0010)" for finding in reading.findings)


def test_dicomdir_references_relative_to_its_folder(sample_data):
    reading = read_dicomdir(sample_data / "dicom/fileset/DICOMDIR", "dicom/fileset/DICOMDIR")

    assert len(reading.referenced_files) == 31
    assert "dicom/fileset/77654033/CR1/6154" in reading.referenced_files
    assert all((sample_data / item).is_file() for item in reading.referenced_files)


def test_fileset_counts_each_instance_once(sample_data):
    files = ["dicom/fileset/DICOMDIR", "dicom/fileset/77654033/CR1/6154"]

    inspection = inspect_dataset(sample_data, files, FileLimits())
    figures = inspection.figures

    assert len(inspection.accepted) == 32
    assert inspection.rejected == ()
    assert (figures.study_count, figures.series_count, figures.instance_count) == (6, 13, 31)
    assert figures.subject_count == 2
    assert figures.modalities == ("CR", "CT", "MR")
    assert figures.body_parts == ("CSPINE", "HEAD")
    assert figures.record_count == 31


def test_missing_fileset_instance_rejected_others_kept(tmp_path, sample_data):
    shutil.copytree(sample_data / "dicom/fileset", tmp_path / "fileset")
    (tmp_path / "fileset/98892003/MR1/4919").unlink()

    inspection = inspect_dataset(tmp_path.resolve(), ["fileset/DICOMDIR"], FileLimits())

    assert len(inspection.accepted) == 31
    assert [item.path for item in inspection.rejected] == ["fileset/98892003/MR1/4919"]
    assert inspection.rejected[0].reason == RejectionReason.NOT_FOUND
    assert "referenced by 'fileset/DICOMDIR'" in inspection.rejected[0].detail


def test_inactive_dicomdir_record_skipped(tmp_path, sample_data):
    dicomdir = pydicom.dcmread(sample_data / "dicom/fileset/DICOMDIR")
    image_records = [item for item in dicomdir.DirectoryRecordSequence if item.DirectoryRecordType == "IMAGE"]
    image_records[0].RecordInUseFlag = 0
    dicomdir.save_as(tmp_path / "DICOMDIR")

    reading = read_dicomdir(tmp_path / "DICOMDIR", "DICOMDIR")

    assert len(reading.referenced_files) == 30
    assert reading.figures.summary().instance_count == 30


def test_not_dicom_content_rejected(tmp_path):
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 40)

    with pytest.raises(FileRejected) as raised:
        read_dicom(path, "x.dcm")

    assert raised.value.reason in {RejectionReason.INVALID_DICOM, RejectionReason.TRUNCATED_DICOM}
    assert raised.value.detail.startswith("'x.dcm'")


def test_missing_preamble_named_without_library_advice(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_bytes("환자 메모, DICOM 아님\n".encode())

    with pytest.raises(FileRejected) as raised:
        read_dicom(path, "notes.dcm")

    assert raised.value.reason == RejectionReason.INVALID_DICOM
    assert raised.value.detail.startswith("'notes.dcm' is not a valid DICOM file: ")
    assert "force" not in raised.value.detail


def test_cut_before_sop_instance_uid_invalid(tmp_path, sample_data):
    path = _cut(tmp_path, sample_data, CT_SMALL, 474)

    with pytest.raises(FileRejected) as raised:
        read_dicom(path, "cut.dcm")

    assert raised.value.reason == RejectionReason.INVALID_DICOM
    assert "has no SOPInstanceUID" in raised.value.detail


def test_image_cut_between_elements_warned(tmp_path, sample_data):
    path = _cut(tmp_path, sample_data, CT_SMALL, 530)

    reading = read_dicom(path, "cut.dcm")

    assert reading.warnings == ("image (CT Image Storage) without pixel data; check that the file is complete",)


def test_complete_image_has_no_warning(sample_data):
    assert read_dicom(sample_data / CT_SMALL, CT_SMALL).warnings == ()
