"""`medgov` commands on bad input: one error line naming the file or value, a non-zero exit, no traceback."""

import json
import secrets
import shutil
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from medgov_cli.main import app
from medgov_shared.testing.services import free_port

CONSENT = "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json"
DICOM = "dicom/single/CT_small.dcm"
IMMUNIZATIONS = "synthea/bulk-export-10-patients/Immunization.000.ndjson"


@pytest.fixture
def environment() -> dict[str, str]:
    # Nothing in these tests may reach a broker, so the bootstrap address is a closed local port.
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "MEDGOV_REGION": "daegu",
        "MEDGOV_PSEUDONYM_KEY": secrets.token_hex(32),
    }


def invoke(arguments: list[str], environment: dict[str, str]):
    return CliRunner().invoke(app, arguments, env=environment)


def assert_clean_failure(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for fragment in fragments:
        assert fragment in result.output


def real_consent(sample_data: Path) -> dict:
    return json.loads((sample_data / CONSENT).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("array", "got an array"),
        ("null", "got null"),
        ("string", "got a string"),
        ("patient-string", "Consent.patient must be a Reference object"),
        ("patient-int", "Consent.patient must be a Reference object"),
        ("reference-int", "Consent.patient.reference must be a string"),
    ],
)
def test_consent_of_wrong_shape_rejected(case, expected, sample_data, tmp_path, environment):
    consent = real_consent(sample_data)
    content = {
        "array": [consent],
        "null": None,
        "string": "Consent",
        "patient-string": {**consent, "patient": "Patient/f001"},
        "patient-int": {**consent, "patient": 1001},
        "reference-int": {**consent, "patient": {"reference": 1001}},
    }[case]
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(content), encoding="utf-8")

    result = invoke(["publish", "consent", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, f"rejected {case}.json: ", expected)


def test_binary_consent_file_named(sample_data, tmp_path, environment):
    path = tmp_path / "scan.json"
    shutil.copy(sample_data / DICOM, path)

    result = invoke(["publish", "consent", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "rejected scan.json: not UTF-8 text (invalid byte 0x")


def test_command_with_int_patient_rejected(tmp_path, environment):
    path = tmp_path / "commands.jsonl"
    line = {"type": "RevokeConsent", "data": {"consent_id": "knuh-c-1", "effective_at": "2026-12-01T00:00:00Z"},
            "patient": 1001}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")

    result = invoke(["publish", "commands", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "rejected commands.jsonl:1: 'patient' must be a string", "got a number")


REVOCATION = {"consent_id": "knuh-c-1", "effective_at": "2026-12-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            {"type": "RevokeConsent", "data": {**REVOCATION, "institution_id": "cnuh"}, "patient": "p1"},
            "data.institution_id is 'cnuh', but the command is sent as 'knuh'",
        ),
        (
            {"type": "RevokeConsent", "data": {**REVOCATION, "subject": "daegu.k1." + "0" * 64}, "patient": "p1"},
            "the patient is given twice, as 'patient' and as data.subject, and they differ",
        ),
        ({"type": "RevokeConsent", "data": REVOCATION}, 'RevokeConsent needs the patient: add "patient"'),
        (
            {"type": "RevokeConsent", "data": {**REVOCATION, "institution_id": None}, "patient": "p1"},
            "data.institution_id is null; remove it",
        ),
        (
            {"type": "RevokeConsent", "data": REVOCATION, "patient": "gwangju.k1." + "0" * 64},
            "belongs to region 'gwangju', not to 'daegu'",
        ),
        (
            {"type": "RecordConsent", "data": {"consent_id": "knuh-c-2", "fhir_consent": {"resourceType": "Consent", "status": 7}},
             "patient": "p1"},
            "Consent knuh-c-2 rejected (malformed_fhir)",
        ),
        ({"type": "RevokeConsent", "data": "str", "patient": "p1"}, "'data' must be an object with the command's fields, got a string"),
        ({"type": "RevokeConsent", "patient": "p1"}, "expected an object with 'type' and 'data'"),
    ],
)
def test_bad_command_line_rejected(line, expected, tmp_path, environment):
    path = tmp_path / "commands.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")

    result = invoke(["publish", "commands", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "rejected commands.jsonl:1:", expected)


def test_consent_folder_and_missing_file_rejected_each(tmp_path, environment):
    folder = tmp_path / "exports"
    folder.mkdir()

    result = invoke(["publish", "consent", "-i", "knuh", str(folder), str(tmp_path / "missing.json")], environment)

    assert_clean_failure(result, "rejected exports:", "Is a directory", "rejected missing.json:", "No such file")


def test_command_lines_decoded_one_by_one(tmp_path, environment):
    path = tmp_path / "commands.jsonl"
    path.write_bytes(b'{"type": "RevokeConsent"\n{"type": "RevokeConsent", "data": {}, "patient": "p\xff"}\n')

    result = invoke(["publish", "commands", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "rejected commands.jsonl:1: not JSON", "rejected commands.jsonl:2: not UTF-8 text (invalid byte 0xff")


def test_empty_commands_file_named(tmp_path, environment):
    path = tmp_path / "empty.ndjson"
    path.write_text("\n\n", encoding="utf-8")

    result = invoke(["publish", "commands", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "medgov: error: ", "empty.ndjson: empty file")


def test_binary_commands_file_named(sample_data, tmp_path, environment):
    path = tmp_path / "commands.jsonl"
    shutil.copy(sample_data / DICOM, path)

    result = invoke(["publish", "commands", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "commands.jsonl: not UTF-8 text")


def publish_dataset(staging: Path, name: str, environment: dict[str, str]):
    arguments = ["publish", "dataset", "-i", "knuh", "--dataset-id", "ds-knuh-cli-test", "--title", "test",
                 "--staging-root", str(staging), name]
    return invoke(arguments, environment)


def test_empty_ndjson_dataset_file_named(tmp_path, environment):
    (tmp_path / "Immunization.000.ndjson").write_text("", encoding="utf-8")

    result = publish_dataset(tmp_path, "Immunization.000.ndjson", environment)

    assert_clean_failure(result, "Immunization.000.ndjson: empty NDJSON file")


def test_truncated_dicom_named(sample_data, tmp_path, environment):
    data = (sample_data / DICOM).read_bytes()
    (tmp_path / "CT_small.dcm").write_bytes(data[: len(data) // 2])

    result = publish_dataset(tmp_path, "CT_small.dcm", environment)

    assert_clean_failure(result, "CT_small.dcm: truncated DICOM file")


def test_bad_files_named_and_good_ones_sent(sample_data, tmp_path, environment):
    shutil.copy(sample_data / IMMUNIZATIONS, tmp_path / "Immunization.000.ndjson")
    (tmp_path / "empty.ndjson").write_text("", encoding="utf-8")
    data = (sample_data / DICOM).read_bytes()
    (tmp_path / "CT_small.dcm").write_bytes(data[: len(data) // 2])
    arguments = ["publish", "dataset", "-i", "knuh", "--dataset-id", "ds-knuh-cli-mixed", "--title", "test",
                 "--staging-root", str(tmp_path), "Immunization.000.ndjson", "empty.ndjson", "CT_small.dcm"]

    result = invoke(arguments, environment)

    # The broker address is closed, so the send itself fails after the files were read.
    assert "Traceback" not in result.output
    assert "no file could be read" not in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "empty.ndjson: empty NDJSON file" in warnings[0]
    assert "CT_small.dcm: truncated DICOM file" in warnings[1]
    assert "Immunization.000.ndjson" not in result.output


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../../../../etc/passwd"])
def test_file_outside_staging_root_rejected(name, sample_data, tmp_path, environment):
    shutil.copy(sample_data / IMMUNIZATIONS, tmp_path / "Immunization.000.ndjson")

    result = publish_dataset(tmp_path, name, environment)

    assert_clean_failure(result, f"{name}: outside the staging folder {tmp_path.resolve()}")


def test_symlink_out_of_staging_root_rejected(tmp_path, environment):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "passwd.ndjson").symlink_to("/etc/passwd")

    result = publish_dataset(staging, "passwd.ndjson", environment)

    assert_clean_failure(result, "passwd.ndjson: outside the staging folder")


def test_unreachable_broker_named(sample_data, environment):
    result = invoke(["publish", "consent", "-i", "knuh", str(sample_data / CONSENT)], environment)

    assert_clean_failure(result, f"cannot reach the Kafka broker at {environment['KAFKA_BOOTSTRAP_SERVERS']}")
    assert len(result.output.strip().splitlines()) == 1


def test_missing_setting_named_once(sample_data, environment):
    del environment["KAFKA_BOOTSTRAP_SERVERS"]

    result = CliRunner().invoke(app, ["publish", "consent", "-i", "knuh", str(sample_data / CONSENT)],
                                env={**environment, "KAFKA_BOOTSTRAP_SERVERS": None,
                                     "MEDGOV_KAFKA_BOOTSTRAP_SERVERS": None})

    assert_clean_failure(result, "MEDGOV_KAFKA_BOOTSTRAP_SERVERS: Field required")
    assert "MEDGOV_MEDGOV_" not in result.output


@pytest.mark.parametrize("key", ["short", secrets.token_urlsafe(32)])
def test_invalid_key_named(key, sample_data, environment):
    environment["MEDGOV_PSEUDONYM_KEY"] = key

    result = invoke(["publish", "consent", "-i", "knuh", str(sample_data / CONSENT)], environment)

    assert_clean_failure(
        result,
        "MEDGOV_PSEUDONYM_KEY: Value error, MEDGOV_PSEUDONYM_KEY must be hex or standard base64",
        "`openssl rand -hex 32` makes a valid key",
    )


def test_dlq_show_unreachable_broker(environment):
    result = invoke(["dlq", "show", "medgov.inbound.knuh.v1.dlq"], environment)

    assert_clean_failure(result, f"cannot reach the Kafka broker at {environment['KAFKA_BOOTSTRAP_SERVERS']}")


def test_dlq_show_not_dead_letter_topic(environment):
    result = invoke(["dlq", "show", "medgov.inbound.knuh.v1"], environment)

    assert_clean_failure(result, "'medgov.inbound.knuh.v1' is not a dead-letter topic; give a name ending in '.dlq'")


@pytest.mark.integration
def test_dlq_show_unknown_topic(infra, environment):
    environment["KAFKA_BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap_servers

    result = invoke(["dlq", "show", "medgov.no-such-topic.v1.dlq"], environment)

    assert_clean_failure(result, "topic medgov.no-such-topic.v1.dlq not found on the Kafka broker")


@pytest.mark.parametrize(
    ("arguments", "variables", "expected"),
    [
        (["--port", "80"], {}, "greater than or equal to 1024"),
        ([], {"MEDGOV_DEMO_PORT": "65533"}, "less than or equal to 65530"),
    ],
)
def test_demo_port_out_of_range(arguments, variables, expected, environment):
    # Wide enough that the error box does not wrap the message.
    result = invoke(["demo", *arguments], {**environment, **variables, "COLUMNS": "200"})

    assert_clean_failure(result, "Invalid value for '--port' (env var: 'MEDGOV_DEMO_PORT')", expected)


@pytest.mark.integration
def test_deeply_nested_consent_rejected_and_others_sent(infra, sample_data, tmp_path, environment):
    deep = tmp_path / "deep.json"
    deep.write_text('{"resourceType": "Consent", "status": ' + "[" * 5000 + "]" * 5000 + "}")
    environment["KAFKA_BOOTSTRAP_SERVERS"] = infra.kafka_bootstrap_servers

    result = invoke(["publish", "consent", "-i", "knuh", str(deep), str(sample_data / CONSENT)], {**environment, "COLUMNS": "200"})

    assert_clean_failure(result, "rejected deep.json: nested too deeply", "1 accepted, 1 rejected")


def test_token_with_unknown_role_rejected(environment):
    result = invoke(["token", "--sub", "fund-1", "--role", "fund_administrator"], {**environment, "JWT_SECRET": "s" * 40})

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--role': unknown role fund_administrator" in result.output
    assert "fund_admin" in result.output
    assert "eyJ" not in result.output


def test_token_with_known_role_signed(environment):
    result = invoke(["token", "--sub", "fund-1", "--role", "fund_admin"], {**environment, "JWT_SECRET": "s" * 40})

    assert result.exit_code == 0, result.output
    assert result.output.count(".") == 2


@pytest.mark.parametrize("ttl", ["0", "-60", "2592001", "99999999999999999999"])
def test_token_ttl_out_of_range_rejected(environment, ttl):
    result = invoke(["token", "--sub", "fund-1", "--role", "fund_admin", "--ttl", ttl], {**environment, "JWT_SECRET": "s" * 40})

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Invalid value for '--ttl'" in result.output
    assert "must be from 1 to 2592000 seconds (30 days)" in result.output
    assert "eyJ" not in result.output


@pytest.mark.parametrize("sub", ["", "  "])
def test_token_without_caller_rejected(environment, sub):
    result = invoke(["token", "--sub", sub, "--role", "operator"], {**environment, "JWT_SECRET": "s" * 40})

    assert result.exit_code == 2, result.output
    assert "Invalid value for '--sub': must name the caller" in result.output
    assert "eyJ" not in result.output


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--role", "patient"], "Invalid value for '--patient-subject': must be the patient's"),
        (["--role", "irb_reviewer", "--patient-subject", "daegu.k1.abc"], "Invalid value for '--patient-subject': must be"),
        (["--role", "patient", "--patient-subject", "p-1001"], "Invalid value for '--patient-subject'"),
        (["--role", "hospital", "--institution", "nosuch"], "Invalid value for '--institution': unknown institution 'nosuch'"),
        (["--role", "hospital"], "Invalid value for '--institution': a token with the role hospital"),
        (["--role", "applicant"], "Invalid value for '--institution': a token with the role applicant"),
    ],
)
def test_token_services_would_reject_not_signed(environment, arguments, expected):
    result = invoke(["token", "--sub", "p1", *arguments], {**environment, "JWT_SECRET": "s" * 40})

    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "eyJ" not in result.output


def test_consent_file_with_utf8_mark_read(tmp_path, environment):
    path = tmp_path / "windows.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"resourceType": "Patient"}')

    result = invoke(["publish", "consent", "-i", "knuh", str(path)], environment)

    # The mark is dropped, so the file is read as JSON and judged by its content.
    assert_clean_failure(result, "rejected windows.json:", "Consent")
    assert "BOM" not in result.output
    assert "not JSON" not in result.output


def test_consent_file_with_utf16_mark_named(tmp_path, environment):
    path = tmp_path / "notepad.json"
    path.write_bytes("\ufeff{}".encode("utf-16-le"))

    result = invoke(["publish", "consent", "-i", "knuh", str(path)], environment)

    assert_clean_failure(result, "rejected notepad.json: UTF-16 or UTF-32 text (it starts with a byte-order mark); save the file as UTF-8")


def test_token_ttl_sets_lifetime(environment):
    result = invoke(["token", "--sub", "fund-1", "--role", "fund_admin", "--ttl", "90"], {**environment, "JWT_SECRET": "s" * 40})

    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.output.strip(), "s" * 40, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 90


def test_replay_of_non_dlq_topic_rejected(environment):
    result = invoke(["dlq", "replay", "medgov.review.v1"], environment)

    assert_clean_failure(result, "'medgov.review.v1' is not a dead-letter topic")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # json's own message here ends in "at", before the place it appends.
        (b'{"resourceType": "Consent",\n "status": "act\x01ive"}', "not JSON (Invalid control character at line 2 column 16)"),
        (b'{"resourceType": "Consent", "n": ' + b"7" * 5000 + b"}", "not JSON this reader takes (a number with more than 4,300 digits)"),
    ],
)
def test_consent_file_json_problem_named(tmp_path, environment, content, expected):
    path = tmp_path / "odd.json"
    path.write_bytes(content)

    result = invoke(["publish", "consent", "-i", "knuh", str(path)], {**environment, "COLUMNS": "200"})

    assert_clean_failure(result, f"rejected odd.json: {expected}")
    assert "at at" not in result.output
    assert "set_int_max_str_digits" not in result.output
