"""Patient ids read from the real FHIR and DICOM samples, and the errors for damaged files."""

import shutil

import pytest

from medgov_cli import subjects
from medgov_cli.subjects import local_patient_ids

DICOM_FILES = ["dicom/single/CT_small.dcm", "dicom/single/MR_small.dcm", "dicom/charset/chrKoreanMulti.dcm",
               "dicom/single/rtplan.dcm", "dicom/fileset/DICOMDIR"]


@pytest.mark.parametrize("name", DICOM_FILES)
def test_complete_dicom_read(name, sample_data):
    ids = local_patient_ids(sample_data / name)

    assert ids
    assert all(isinstance(item, str) and item for item in ids)


def test_every_sample_dicom_complete(sample_data):
    files = [path for path in (sample_data / "dicom").rglob("*") if path.is_file() and path.suffix != ".md"]

    assert len(files) > 20
    for path in files:
        local_patient_ids(path)  # raises ValueError naming a file wrongly called truncated


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.9])
def test_truncated_dicom_named(fraction, sample_data, tmp_path):
    data = (sample_data / "dicom/single/CT_small.dcm").read_bytes()
    path = tmp_path / "CT_small.dcm"
    path.write_bytes(data[: int(len(data) * fraction)])

    with pytest.raises(ValueError, match=r"CT_small\.dcm: truncated DICOM file"):
        local_patient_ids(path)


def test_truncated_element_header_named(sample_data, tmp_path):
    data = (sample_data / "dicom/single/CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data + b"\x08\x00\x20")  # three bytes of a next element's tag

    with pytest.raises(ValueError, match=r"cut\.dcm: truncated DICOM file: it ends inside a data element header"):
        local_patient_ids(path)


def test_empty_ndjson_named(tmp_path):
    path = tmp_path / "Immunization.000.ndjson"
    path.write_text("\n", encoding="utf-8")

    with pytest.raises(ValueError, match=r"Immunization\.000\.ndjson: empty NDJSON file"):
        local_patient_ids(path)


def test_binary_json_named(sample_data, tmp_path):
    path = tmp_path / "Patient.json"
    shutil.copy(sample_data / "dicom/single/CT_small.dcm", path)

    with pytest.raises(ValueError, match=r"Patient\.json: not UTF-8 text \(invalid byte 0x"):
        local_patient_ids(path)


def test_json_array_named(sample_data, tmp_path):
    path = tmp_path / "patients.json"
    path.write_text("[" + (sample_data / "fhir/hl7-r4-examples/patient/Patient-f001.json").read_text() + "]")

    with pytest.raises(ValueError, match=r"patients\.json: the file contains an array, expected a FHIR resource object"):
        local_patient_ids(path)


def test_ndjson_line_array_named(tmp_path):
    path = tmp_path / "bulk.ndjson"
    path.write_text('{"resourceType": "Patient", "id": "p1"}\n[1, 2]\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"bulk\.ndjson: line 2 is an array"):
        local_patient_ids(path)


def test_oversized_json_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with path.open("wb") as sparse:  # a sparse file: large on paper, nothing to read
        sparse.truncate(subjects.MAX_JSON_DOCUMENT_BYTES + 1)
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("the whole file was read"))

    with pytest.raises(ValueError, match=r"huge\.json: \d+ bytes, more than the limit of 67108864 bytes"):
        local_patient_ids(path)


def test_ndjson_read_line_by_line(sample_data, tmp_path, monkeypatch):
    patient = (sample_data / "fhir/hl7-r4-examples/patient/Patient-f001.json").read_text(encoding="utf-8")
    path = tmp_path / "Patient.000.ndjson"
    path.write_text(" ".join(patient.split()) + "\n\n" + '{"resourceType": "Patient", "id": "local-2"}\n', encoding="utf-8")
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("the whole file was read"))

    assert local_patient_ids(path) == {"f001", "local-2"}


def test_ndjson_line_over_limit_named(tmp_path, monkeypatch):
    monkeypatch.setattr(subjects, "MAX_NDJSON_LINE_BYTES", 64)
    path = tmp_path / "bulk.ndjson"
    path.write_text('{"resourceType": "Patient", "id": "p1"}\n{"resourceType": "Patient", "id": "' + "x" * 80 + '"}\n')

    with pytest.raises(ValueError, match=r"bulk\.ndjson: line 2 is longer than the limit of 64 bytes"):
        local_patient_ids(path)


@pytest.mark.parametrize(("name", "text"), [
    ("deep.json", '{"resourceType": "Bundle", "entry": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("deep.ndjson", '{"resourceType": "Patient", "id": "p1"}\n' + "[" * 5000 + "]" * 5000 + "\n"),
])
def test_deeply_nested_json_named(name, text, tmp_path):
    path = tmp_path / name
    path.write_text(text)

    with pytest.raises(ValueError, match=f"{name}: nested too deeply"):
        local_patient_ids(path)
