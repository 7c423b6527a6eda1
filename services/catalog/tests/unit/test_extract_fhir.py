"""FHIR JSON, Bundle and NDJSON reading: figures, and errors that name the file and the problem."""

import json

import pytest

from medgov_catalog.domain.extract_fhir import read_fhir_json, read_fhir_ndjson
from medgov_catalog.domain.files import FileLimits
from medgov_catalog.domain.rejection import FileRejected, RejectionReason

OBSERVATION = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2019-03-01T10:00:00+09:00",
}
CONDITION = {
    "resourceType": "Condition",
    "id": "c1",
    "subject": {"reference": "Patient/p2"},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
    "onsetDateTime": "2024-11",
}


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _ndjson(*resources) -> str:
    return "\n".join(json.dumps(item) for item in resources) + "\n"


def _rejected(reader, path, name, limits=None) -> FileRejected:
    with pytest.raises(FileRejected) as raised:
        reader(path, name, limits or FileLimits())
    return raised.value


def test_ndjson_figures(tmp_path):
    path = _write(tmp_path, "x.ndjson", _ndjson(OBSERVATION, CONDITION, {**OBSERVATION, "id": "o2"}))

    figures = read_fhir_ndjson(path, "x.ndjson", FileLimits()).figures.summary()

    assert figures.resource_counts == {"Condition": 1, "Observation": 2}
    assert figures.record_count == 3
    assert figures.subject_count == 2
    assert figures.observation_codes == ("http://loinc.org|8302-2",)
    assert figures.condition_codes == ("http://snomed.info/sct|44054006",)
    assert figures.date_start == "2019-03-01"
    assert figures.date_end == "2024-11-30"


def test_bundle_urn_references_count_one_patient(tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:aaaa", "resource": {"resourceType": "Patient", "gender": "female"}},
            {"resource": {**OBSERVATION, "subject": {"reference": "urn:uuid:aaaa"}}},
        ],
    }

    figures = read_fhir_json(_write(tmp_path, "b.json", bundle), "b.json", FileLimits()).figures.summary()

    assert figures.subject_count == 1
    assert figures.resource_counts == {"Observation": 1, "Patient": 1}


def test_invalid_ndjson_line_named(tmp_path):
    broken = {**OBSERVATION, "id": "bad", "effectiveDateTime": "yesterday"}
    path = _write(tmp_path, "obs.ndjson", _ndjson(OBSERVATION, OBSERVATION, broken))

    rejection = _rejected(read_fhir_ndjson, path, "obs.ndjson")

    assert rejection.reason == RejectionReason.INVALID_FHIR_RESOURCE
    assert rejection.detail.startswith("'obs.ndjson' line 3: Observation (id 'bad') is invalid")
    assert "effectiveDateTime" in rejection.detail


def test_invalid_bundle_entry_named(tmp_path):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": OBSERVATION}, {"resource": {"resourceType": "Observation", "id": "x"}}],
    }

    rejection = _rejected(read_fhir_json, _write(tmp_path, "b.json", bundle), "b.json")

    assert rejection.reason == RejectionReason.INVALID_FHIR_RESOURCE
    assert "Bundle.entry[1].resource.ofType(Observation) (id 'x') is invalid" in rejection.detail
    assert "code: Field required" in rejection.detail


def test_unknown_resource_type(tmp_path):
    path = _write(tmp_path, "x.json", {"resourceType": "Spaceship", "id": "1"})

    rejection = _rejected(read_fhir_json, path, "x.json")

    assert rejection.reason == RejectionReason.UNKNOWN_RESOURCE_TYPE
    assert "'Spaceship' is not a FHIR R4 resource type" in rejection.detail


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"resourceType": "Patient",\n "id": }', "invalid JSON at line 2 column 8"),
        ('{"resourceType": "Patient", "id": "a", "id": "b"}', "the key 'id' occurs twice"),
        ('{"resourceType": "Patient", "extension": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ],
)
def test_invalid_json_located(tmp_path, content, words):
    rejection = _rejected(read_fhir_json, _write(tmp_path, "p.json", content), "p.json")

    assert rejection.reason == RejectionReason.INVALID_JSON
    assert words in rejection.detail


def test_non_utf8_rejected(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes('{"resourceType": "Patient", "id": "\u00e9"}'.encode("latin-1"))

    rejection = _rejected(read_fhir_json, path, "p.json")

    assert rejection.reason == RejectionReason.INVALID_JSON
    assert "not UTF-8" in rejection.detail


def test_json_document_over_limit(tmp_path):
    path = _write(tmp_path, "big.json", OBSERVATION)

    rejection = _rejected(read_fhir_json, path, "big.json", FileLimits(max_json_document_bytes=10))

    assert rejection.reason == RejectionReason.FILE_TOO_LARGE
    assert "send it as NDJSON" in rejection.detail


def test_ndjson_line_over_limit(tmp_path):
    path = _write(tmp_path, "x.ndjson", _ndjson(CONDITION, {**OBSERVATION, "id": "o" * 500}))

    rejection = _rejected(read_fhir_ndjson, path, "x.ndjson", FileLimits(max_ndjson_line_bytes=400))

    assert rejection.reason == RejectionReason.FILE_TOO_LARGE
    assert "line 2 is longer than the limit of 400 bytes" in rejection.detail


def test_ndjson_with_only_blank_lines(tmp_path):
    rejection = _rejected(read_fhir_ndjson, _write(tmp_path, "x.ndjson", "\n\n"), "x.ndjson")

    assert rejection.reason == RejectionReason.EMPTY_FILE


def test_ndjson_blank_lines_skipped(tmp_path):
    path = _write(tmp_path, "x.ndjson", "\n" + _ndjson(OBSERVATION) + "\n\n")

    assert read_fhir_ndjson(path, "x.ndjson", FileLimits()).figures.resource_total == 1


def test_decimals_kept_exact(tmp_path, sample_data):
    path = sample_data / "fhir/invalid-and-corner-cases/observation_decimal_corner_cases.json"

    reading = read_fhir_json(path, "corner.json", FileLimits())

    assert reading.figures.resource_counts == {"Observation": 1}


@pytest.mark.parametrize(
    ("element", "value", "path"),
    [
        ("effectiveDateTime", 1551402000, "effectiveDateTime"),
        ("issued", 1551402000.5, "issued"),
        ("valueTime", 3600, "valueTime"),
        ("effectivePeriod", {"start": "2019-03-01", "end": 1551402000}, "effectivePeriod.end"),
        ("effectiveTiming", {"event": ["2019-03-01", 1551402000]}, "effectiveTiming.event[1]"),
    ],
)
def test_number_for_date_rejected(tmp_path, element, value, path):
    # fhir.resources reads a number as Unix time, and nothing else would stop it reaching the figures.
    observation = {key: item for key, item in OBSERVATION.items() if key != "effectiveDateTime"} | {element: value}

    rejection = _rejected(read_fhir_ndjson, _write(tmp_path, "o.ndjson", _ndjson(observation)), "o.ndjson")

    assert rejection.reason == RejectionReason.INVALID_FHIR_RESOURCE
    assert "line 1: Observation (id 'o1') is invalid" in rejection.detail
    assert f"{path}: a date or time is a string in FHIR JSON" in rejection.detail


def test_integer_where_fhir_has_one_kept(tmp_path):
    # A `start` is a dateTime in Period but an integer here.
    sequence = {"resourceType": "MolecularSequence", "id": "m1", "coordinateSystem": 0, "variant": [{"start": 5, "end": 9}]}

    reading = read_fhir_ndjson(_write(tmp_path, "m.ndjson", _ndjson(sequence)), "m.ndjson", FileLimits())

    assert reading.figures.resource_counts == {"MolecularSequence": 1}
