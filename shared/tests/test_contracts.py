"""Event contracts: registry coverage, generated docs, compatibility and personal-data guards."""

import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from asyncpg.pgproto.pgproto import UUID as PgUUID
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from medgov_shared import asyncapi
from medgov_shared.contracts.compatibility import breaking_changes, published_schemas
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.contracts.guards import (
    _ASCII_DIGITS as ASCII_DIGITS,
    RRN_PATTERN,
    PersonalDataError,
    contains_rrn,
    redact_personal_data,
    reject_naive_datetimes,
    reject_personal_data,
)
from medgov_shared.contracts.events.consent import ConsentGranted, ConsentRevoked, ConsentScope
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.contracts.pseudonym import is_pseudonym, pseudonymize
from medgov_shared.messaging.dlq import DeadLetter
from medgov_shared.contracts.registry import (
    SERVICE_TOPICS,
    UnknownEventType,
    all_event_types,
    institution_of_inbound_topic,
    parse_payload,
)

REPO = Path(__file__).resolve().parents[2]
KEY = b"0123456789abcdef0123456789abcdef"
SUBJECT = pseudonymize("MRN-0001", region="daegu", key=KEY)

DESIGN_EVENTS = {
    "review": {"ApplicationSubmitted", "ReviewStarted", "IrbDecisionRecorded", "DrbDecisionRecorded",
               "RevisionRequested", "ApplicationApproved", "ApplicationRejected", "ReviewSlaWarning",
               "ReviewSlaBreached", "AccessGranted", "AccessRevoked", "AccessExpired"},
    "catalog": {"DatasetRegistered", "DatasetSubjectsAdded", "DatasetPublished", "DatasetWithdrawn",
                "ComplianceViolationFlagged"},
    "consent": {"ConsentGranted", "ConsentRevoked", "ExclusionRequested", "ExclusionAcknowledged",
                "ExclusionOverdue"},
    "grants": {"FundAllocated", "SubsidyAwarded", "ToolGrantAwarded", "MilestoneReached", "GrantDisbursed",
               "PoolExhausted"},
}


def revoked(**changes) -> dict:
    data = {
        "subject": SUBJECT, "consent_id": "cns-1", "institution_id": "knuh", "region": "daegu",
        "scope": {"kind": "all_research"}, "channel": "dashboard", "effective_at": "2026-12-05T10:00:00Z",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("service", sorted(DESIGN_EVENTS))
def test_registry_declares_design_events(service):
    topic = next(t for t in SERVICE_TOPICS if t.owner == service)

    declared = {cls.event_type for cls in topic.events}

    assert DESIGN_EVENTS[service] <= declared
    assert topic.name == f"medgov.{service}.v1"


@pytest.mark.parametrize("cls", all_event_types(), ids=lambda cls: cls.event_type)
def test_every_field_documented(cls):
    assert cls.__doc__ and cls.__doc__.strip().endswith(".")
    for name, info in cls.model_fields.items():
        assert info.description, f"{cls.event_type}.{name} has no description"
        assert info.examples, f"{cls.event_type}.{name} has no example"


def test_payload_models_frozen():
    payload = ConsentRevoked.model_validate(revoked())

    with pytest.raises(ValidationError):
        payload.consent_id = "other"  # type: ignore[misc]


def test_asyncapi_lists_every_event_type():
    document = asyncapi.build()

    assert set(document["components"]["messages"]) == {cls.event_type for cls in all_event_types()}
    assert document["channels"]["consent"]["address"] == "medgov.consent.v1"


def test_committed_asyncapi_is_current():
    committed = (REPO / "docs" / "asyncapi.yaml").read_text(encoding="utf-8")

    assert committed == asyncapi.asyncapi_yaml(), "docs/asyncapi.yaml is stale: run `make docs`"


def test_committed_json_schemas_are_current():
    for name, text in asyncapi.json_schemas().items():
        path = REPO / "docs" / "schemas" / name
        assert path.exists(), f"{path} missing: run `make docs`"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `make docs`"


@pytest.mark.parametrize("name", sorted(published_schemas()))
def test_published_schema_still_compatible(name):
    published = published_schemas()[name]
    current = json.loads(asyncapi.json_schemas()[f"{name}.json"])

    assert breaking_changes(published, current) == []


def test_breaking_change_detected():
    published = published_schemas()["ConsentRevoked.v1"]
    current = json.loads(json.dumps(published))
    del current["properties"]["effective_at"]
    current["required"].append("new_required")

    problems = breaking_changes(published, current)

    assert "field 'effective_at' was removed" in problems
    assert "field 'new_required' became required" in problems


def test_rrn_rejected_with_field_name():
    with pytest.raises(ValidationError) as error:
        ConsentRevoked.model_validate(revoked(consent_id="cns-900101-1234567"))

    assert "field 'consent_id'" in str(error.value)
    assert "resident registration number" in str(error.value)


@pytest.mark.parametrize("text", ["환자8501012345678", "RRN: 850101-2345678", "(850101 2345678)", "850101-2345678"])
def test_rrn_beside_hangul_or_punctuation_matches(text):
    assert RRN_PATTERN.search(text)


@pytest.mark.parametrize(
    "identifier",
    ["f3a9850101234567800c1e2d4b6a7f90", "flag-e8501012345678a", "0850101234567", "8501012345678b"],
)
def test_digits_inside_hex_ids_are_not_an_rrn(identifier):
    assert not RRN_PATTERN.search(identifier)
    assert ConsentRevoked.model_validate(revoked(consent_id=identifier)).consent_id == identifier


@pytest.mark.parametrize(
    "text",
    [
        "900101–1234567", "900101—1234567", "900101－1234567", "900101 - 1234567", "900101  1234567",
        "900101   1234567", "900101\u00ad1234567", "900101\u200b1234567", "900101\t1234567",
        "９００１０１－１２３４５６７", "٩٠٠١٠١-١٢٣٤٥٦٧",
    ],
)
def test_rrn_with_other_separators_or_digits_found(text):
    assert contains_rrn(text)
    assert redact_personal_data(f"got {text!r}") == "got '[RRN removed]'"


@pytest.mark.parametrize("text", ["900101 ,1234567", "2026-12-05T10:00:00+09:00", "ds-knuh-20261205-0001", "RRN900101-1234567"])
def test_not_an_rrn(text):
    assert not contains_rrn(text)


# Text made of the pieces that decide a match: digits (ASCII and full-width),
# dashes, gaps, and letters that touch a number.
_RRN_PIECES = st.lists(
    st.sampled_from(["9", "0", "1", "2", "3", "12", "850101", "1234567", "９", "０", "-", "－", " ", "\n", "\u00ad",
                     "a", "Z", "가", ".", "\"", "x"]),
    max_size=30,
).map("".join)


@given(text=_RRN_PIECES)
@settings(max_examples=400, deadline=None)
def test_contains_rrn_matches_pattern(text):
    # contains_rrn looks for six ASCII digits first and starts the pattern there.
    # The result must equal the pattern's over the whole normalized text.
    comparable = unicodedata.normalize("NFKC", text).translate(ASCII_DIGITS)

    assert contains_rrn(text) == (len(text) >= 13 and RRN_PATTERN.search(comparable) is not None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"provision": {"900101-1234567": "x"}}, "a field name in 'fhir_consent.provision' contains"),
        ({"９００１０１１２３４５６７": 1}, "a field name in 'fhir_consent' contains"),
    ],
)
def test_rrn_as_key_rejected(data, problem):
    with pytest.raises(PersonalDataError) as error:
        reject_personal_data(data, "fhir_consent")

    assert problem in str(error.value)
    assert "1234567" not in str(error.value)
    assert "１２３４５６７" not in str(error.value)


# Numbers are not checked: epoch milliseconds (1705151234567 is 2024-01-13) and
# KRW amounts above a trillion have 13 digits and would look like RRNs.
@pytest.mark.parametrize("value", [1705151234567, 1801011234567, 9001011234567, 12.5, True, 0])
def test_numbers_pass(value):
    reject_personal_data({"count": value})


@pytest.mark.parametrize("text", ["got 'a\\tb'", "번호 ９９ 없음", "id f3a9850101234567800c1e2d4b6a7f90"])
def test_message_without_rrn_unchanged(text):
    assert redact_personal_data(text) == text


def test_dead_letter_error_redacted():
    letter = DeadLetter("unknown_command", "'900101-1234567' version 1 is not a command", 1)

    assert letter.error == "'[RRN removed]' version 1 is not a command"


def test_rrn_in_nested_field_rejected():
    data = {
        "institution_id": "knuh", "dataset_id": "ds-1", "files": ["a.json"], "subjects": [],
        "description": {"title": "t", "description": "주민번호 8501012345678 포함", "publisher": "knuh",
                        "themes": [], "keywords": [], "access_rights": "restricted", "duo_codes": [],
                        "legal_basis": "consent", "contact_point": "office", "distribution_formats": []},
    }

    with pytest.raises(ValidationError) as error:
        RegisterDataset.model_validate(data)

    assert "field 'description.description'" in str(error.value)


def test_raw_identifier_field_rejected():
    with pytest.raises(ValidationError) as error:
        ConsentRevoked.model_validate(revoked(patient_name="Hong Gildong"))

    assert "field 'patient_name' is a raw patient identifier" in str(error.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": [{"b": "x"}, {"note": "850101-2345678"}]}, "field 'a[1].note' contains"),
        ([["ok", "850101-2345678"]], "field '[0][1]' contains"),
        ({"items": [{"patient_id": ["MRN-1"]}]}, "field 'items[0].patient_id' is a raw patient identifier"),
        ({"codes": ("x", {"patient_id": 7})}, "field 'codes[1].patient_id' is a raw patient identifier"),
        ({"meta": {"x.patient_id": "7"}}, "field 'meta.x.patient_id' is a raw patient identifier"),
    ],
)
def test_personal_data_path_names_the_field(value, message):
    with pytest.raises(PersonalDataError) as error:
        reject_personal_data(value)

    assert message in str(error.value)


def test_naive_datetime_path_names_the_field():
    with pytest.raises(ValueError, match=r"field 'root\.times\[2\]' is a naive datetime"):
        reject_naive_datetimes({"times": [datetime(2026, 1, 1, tzinfo=UTC), "x", datetime(2026, 1, 1)]}, "root")


@pytest.mark.timesensitive
def test_naive_datetime_rejected():
    with pytest.raises(ValidationError) as error:
        ConsentRevoked.model_validate(revoked(effective_at="2026-12-05T10:00:00"))

    assert "effective_at" in str(error.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        # Valid in their own zone, but before year 1 or after year 9999 in UTC.
        ("0001-01-01T00:00:00+09:00", "falls outside years 1 to 9999 in UTC"),
        ("9999-12-31T23:00:00-09:00", "falls outside years 1 to 9999 in UTC"),
        # The two ends themselves, which asyncpg would store as -infinity and infinity.
        ("0001-01-01T00:00:00Z", "is an end of years 1 to 9999 in UTC"),
        ("9999-12-31T23:59:59.999999Z", "is an end of years 1 to 9999 in UTC"),
    ],
)
def test_time_beyond_storable_range_rejected(text, problem):
    with pytest.raises(ValidationError) as error:
        ConsentRevoked.model_validate(revoked(effective_at=text))

    assert "effective_at" in str(error.value)
    assert problem in str(error.value)


def test_time_next_to_range_end_accepted():
    payload = ConsentRevoked.model_validate(revoked(effective_at="0001-01-01T00:00:00.000001Z"))

    assert payload.effective_at == datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize("value", [20261205, 0, -62135596800, 1.5, "1733392800", " 20261205 "])
def test_number_for_time_rejected(value):
    # pydantic would otherwise read these as seconds since 1970.
    with pytest.raises(ValidationError) as error:
        ConsentRevoked.model_validate(revoked(effective_at=value))

    assert "expected an ISO 8601 time with a zone" in str(error.value)


@pytest.mark.timesensitive
def test_naive_datetime_object_rejected():
    with pytest.raises(ValidationError) as error:
        ConsentRevoked.model_validate(revoked(effective_at=datetime(2026, 12, 5, 10, 0)))

    assert "effective_at" in str(error.value)


@pytest.mark.timesensitive
def test_aware_time_normalized_to_utc():
    payload = ConsentRevoked.model_validate(revoked(effective_at="2026-12-05T19:00:00+09:00"))

    assert payload.effective_at == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    assert payload.effective_at.utcoffset().total_seconds() == 0


def test_unknown_optional_field_accepted():
    payload = ConsentRevoked.model_validate(revoked(added_later="ok"))

    assert payload.consent_id == "cns-1"


def test_envelope_round_trip():
    payload = ConsentGranted(
        subject=SUBJECT, consent_id="cns-2", institution_id="knuh", region="daegu", scope=ConsentScope(),
        channel="fhir", granted_at=datetime.now(UTC),
    )

    envelope = Envelope.from_json(wrap(payload, source="medgov/consent", region="daegu").to_json())

    assert envelope.type == "ConsentGranted"
    assert envelope.subject == SUBJECT
    assert envelope.dataschema == "urn:medgov:events:ConsentGranted:v1"
    assert envelope.correlationid == envelope.id
    assert parse_payload(envelope) == payload


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-3, minutes=-30))]),
    ),
    data=st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=5),
    causation=st.none() | st.uuids(),
    extras=st.dictionaries(st.sampled_from(["traceparent", "partitionkey", "hospitalref"]), _JSON_VALUES, max_size=2),
)
def test_envelope_json_matches_pydantic_dump(moment, data, causation, extras):
    envelope = Envelope.model_validate(
        {
            "id": str(uuid.uuid4()), "source": "medgov/consent", "type": "ConsentGranted", "time": moment.isoformat(),
            "subject": SUBJECT, "dataschema": "urn:medgov:events:ConsentGranted:v1", "region": "daegu",
            "correlationid": str(uuid.uuid4()), "causationid": str(causation) if causation else None, "data": data, **extras,
        }
    )

    assert envelope.to_json() == orjson.dumps(envelope.model_dump(mode="json", exclude_none=True))


def test_envelope_json_with_database_uuid_and_datetime_subclass():
    """asyncpg returns uuid columns as a UUID subclass, which orjson does not write itself."""

    class LocalTime(datetime):
        pass

    envelope = Envelope.model_validate(
        {
            "id": PgUUID(str(uuid.uuid4())), "source": "medgov/review", "type": "ApplicationSubmitted",
            "time": datetime.now(UTC), "subject": "app-0001", "dataschema": "urn:medgov:events:ApplicationSubmitted:v1",
            "region": "daegu", "correlationid": PgUUID(str(uuid.uuid4())), "data": {},
        }
    )
    later = envelope.model_copy(update={"time": LocalTime(2026, 12, 5, 9, 0, tzinfo=UTC)})

    for item in (envelope, later):
        assert item.to_json() == orjson.dumps(item.model_dump(mode="json", exclude_none=True))


@pytest.mark.timesensitive
def test_envelope_rejects_naive_time():
    raw = json.loads(wrap(ConsentRevoked.model_validate(revoked()), source="medgov/consent", region="daegu").to_json())
    raw["time"] = "2026-12-05T10:00:00"

    with pytest.raises(ValidationError) as error:
        Envelope.model_validate(raw)

    assert "time" in str(error.value)


@pytest.mark.timesensitive
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("effective_at", "2026-12-05T10:00:00", "effective_at"),
        ("note", "환자 850101-1234567", "resident registration number"),
    ],
)
def test_payload_from_json_checked(field, value, problem):
    raw = json.loads(wrap(ConsentRevoked.model_validate(revoked()), source="medgov/consent", region="daegu").to_json())
    raw["data"][field] = value
    envelope = Envelope.from_json(json.dumps(raw))

    with pytest.raises(ValidationError) as error:
        parse_payload(envelope, from_json=True)

    assert problem in str(error.value)


@pytest.mark.timesensitive
def test_payload_built_in_python_naive_object_rejected():
    envelope = wrap(ConsentRevoked.model_validate(revoked()), source="medgov/consent", region="daegu")
    built = envelope.model_copy(update={"data": {**envelope.data, "note": {"seen_at": datetime(2026, 12, 5, 10, 0)}}})

    with pytest.raises(ValidationError, match=r"field 'note\.seen_at' is a naive datetime"):
        parse_payload(built)


def test_unknown_event_type_reported():
    envelope = wrap(ConsentRevoked.model_validate(revoked()), source="medgov/consent", region="daegu")
    renamed = envelope.model_copy(update={"type": "SomethingNew"})

    with pytest.raises(UnknownEventType):
        parse_payload(renamed)


def test_pseudonym_stable_and_keyed():
    first = pseudonymize(" MRN-0001 ", region="daegu", key=KEY)
    other_key = pseudonymize("MRN-0001", region="daegu", key=b"x" * 32)

    assert first == SUBJECT
    assert first != other_key
    assert is_pseudonym(first)
    assert "MRN" not in first


def test_pseudonym_rejects_short_key():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        pseudonymize("MRN-0001", region="daegu", key=b"short")


@pytest.mark.parametrize(
    ("topic", "institution"),
    [("medgov.inbound.knuh.v1", "knuh"), ("medgov.consent.v1", None), ("medgov.inbound.KNUH.v1", None)],
)
def test_inbound_topic_institution(topic, institution):
    assert institution_of_inbound_topic(topic) == institution


def test_pseudonyms_accepted_even_with_long_digit_runs():
    # About one digest in 2,000 holds a run of 13 digits shaped like an RRN.
    subjects = [pseudonymize(f"MRN{index:07d}", region="daegu", key=b"k" * 32) for index in range(3000)]
    digit_runs = [subject for subject in subjects if re.search(r"\d{13}", subject)]

    assert digit_runs, "expected at least one pseudonym whose digest holds 13 digits in a row"
    for subject in subjects:
        assert ConsentRevoked.model_validate(revoked(subject=subject)).subject == subject


def test_widened_pattern_compatible_and_narrowed_breaking():
    published = {"properties": {"code": {"type": "string", "pattern": "^(GRU|HMB)$"}}, "required": ["code"]}
    widened = {"properties": {"code": {"type": "string", "pattern": "^(GRU|HMB|NCU)$"}}, "required": ["code"]}
    narrowed = {"properties": {"code": {"type": "string", "pattern": "^(GRU)$"}}, "required": ["code"]}

    assert breaking_changes(published, widened) == []
    assert breaking_changes(published, narrowed) == ["field 'code' changed type or constraints"]
