"""Malformed records through the consumer's parse step, in volume and without a broker.

The consumer turns each Kafka record into (envelope, payload, dead letter)
before any handler runs. There is no public function for that step, so these
tests call EventConsumer._parse on a consumer that never connects. The sample
in test_inbound_broker.py sends real records through a running service.
"""

import pytest
from hypothesis import given

from medgov_shared.contracts.guards import reject_personal_data
from medgov_shared.contracts.institutions import get_institution
from medgov_shared.contracts.registry import UnknownEventType, institution_of_inbound_topic, is_inbound_command, payload_class

from .budget import CASES_RUN, examples_for, fuzz_settings
from .event_strategies import FuzzRecord, cloud_event_records, example_payload, malformed_records
from .parsing import CONSUMER, consumer_record

pytestmark = pytest.mark.fuzz

DEAD_LETTER_REASONS = {"invalid_envelope", "institution_mismatch", "region_mismatch", "invalid_payload", "unknown_command"}


def check_outcome(record: FuzzRecord) -> None:
    """Assert that the parse step dead-letters with a reason, skips an unknown type on a service topic, or accepts a valid event."""
    CASES_RUN["parsed records"] += 1
    envelope, payload, letter = CONSUMER._parse(consumer_record(record))

    if letter is not None:
        assert letter.reason in DEAD_LETTER_REASONS, letter
        assert letter.error.strip(), f"dead letter {letter.reason} without an error message"
        for secret in record.planted:
            assert secret not in letter.error, f"dead-letter error repeats planted personal data {secret!r}"
        if letter.reason == "unknown_command":
            assert institution_of_inbound_topic(record.topic) is not None, "unknown_command on a service topic"
            assert not is_inbound_command(envelope.type, envelope.schema_version), "a hospital command dead-lettered as unknown"
        return

    assert envelope is not None, "neither a dead letter nor an envelope"
    if payload is None:
        assert institution_of_inbound_topic(record.topic) is None, "unknown type on an inbound topic not dead-lettered"
        with pytest.raises(UnknownEventType):
            payload_class(envelope.type, envelope.schema_version)
        return

    assert not record.must_reject, f"accepted a record with defects {record.defects}"
    assert type(payload) is payload_class(envelope.type, envelope.schema_version)
    assert envelope.time.tzinfo is not None
    reject_personal_data(payload.model_dump(mode="json"))
    claimed = institution_of_inbound_topic(record.topic)
    if claimed is not None:
        assert envelope.source == f"medgov/hospital/{claimed}"
        assert envelope.region == get_institution(claimed).region
        assert getattr(payload, "institution_id", None) == claimed


def test_schema_examples_are_valid_payloads() -> None:
    from medgov_shared.contracts.registry import all_event_types

    for event_class in all_event_types():
        event_class.model_validate(example_payload(event_class))


@fuzz_settings(examples_for(quick=400, share=0.60))
@given(malformed_records())
def test_parse_never_raises_and_rejects_specifically(record: FuzzRecord) -> None:
    check_outcome(record)


# Without defects only the event type varies, so hypothesis runs each of the registered types and stops.
@fuzz_settings(200)
@given(cloud_event_records(max_defects=0))
def test_parse_accepts_valid_events(record: FuzzRecord) -> None:
    CASES_RUN["parsed records"] += 1
    envelope, payload, letter = CONSUMER._parse(consumer_record(record))

    assert letter is None, letter
    assert payload is not None
    assert envelope is not None and envelope.type == type(payload).event_type


# The dead-letter reason each forbidden defect must produce when it is the only one.
EXPECTED_REASON = {
    "rrn_in_data": "invalid_payload",
    "raw_identifier_field": "invalid_payload",
    "naive_payload_time": "invalid_payload",
    "naive_event_time": "invalid_envelope",
    "missing_envelope_field": "invalid_envelope",
    "data_not_an_object": "invalid_envelope",
    "foreign_source": "institution_mismatch",
    "foreign_region": "region_mismatch",
    "foreign_institution_id": "institution_mismatch",
}


def single_forbidden_defect(record: FuzzRecord) -> bool:
    return len(record.defects) == 1 and record.defects[0] in EXPECTED_REASON


@fuzz_settings(examples_for(quick=200, share=0.15))
@given(cloud_event_records(max_defects=1).filter(single_forbidden_defect))
def test_parse_names_the_forbidden_defect(record: FuzzRecord) -> None:
    (defect,), (target,) = record.defects, record.targets
    CASES_RUN["parsed records"] += 1

    envelope, payload, letter = CONSUMER._parse(consumer_record(record))

    assert payload is None, f"accepted a record with defect {defect}"
    assert letter is not None, f"record with defect {defect} was not dead-lettered"
    assert letter.reason == EXPECTED_REASON[defect], letter
    assert target in letter.error, f"error {letter.error!r} does not name the field {target!r}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b'{"specversion": "1.0", "id": "\xff"}', "not UTF-8 text (invalid byte 0xff at offset 30); send JSON as UTF-8"),
        ('\ufeff{"specversion": "1.0"}'.encode("utf-16-le"), "UTF-16 or UTF-32 text (it starts with a byte-order mark); send JSON as UTF-8"),
    ],
)
def test_record_not_utf8_named(value: bytes, expected: str) -> None:
    _, payload, letter = CONSUMER._parse(consumer_record(FuzzRecord("medgov.inbound.knuh.v1", value)))

    assert payload is None
    assert letter is not None
    assert letter.reason == "invalid_envelope"
    assert letter.error == f"not a valid CloudEvent: {expected}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"this is not json", "not a valid CloudEvent: not JSON (expected ident at line 1 column 2)"),
        (b'{"specversion": "1.0"', "not a valid CloudEvent: not JSON (EOF while parsing an object at line 1 column 21)"),
    ],
)
def test_record_not_json_named(value: bytes, expected: str) -> None:
    _, payload, letter = CONSUMER._parse(consumer_record(FuzzRecord("medgov.inbound.knuh.v1", value)))

    assert payload is None
    assert letter is not None
    assert letter.reason == "invalid_envelope"
    assert letter.error == expected
