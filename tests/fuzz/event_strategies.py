"""Hypothesis strategies for malformed Kafka records on medgov topics.

A generated record is the topic it arrives on, the raw value bytes and the
list of defects put into it. The defects tell the checks what outcome to
expect: a record with a resident registration number (RRN), a raw identifier
field, a naive time or a foreign institution must never be accepted, and a
record without defects must be.

Valid starting points come from the contracts themselves: every field of
every registered event carries an example, and those examples form a valid
payload (checked by test_schema_examples_are_valid_payloads).
"""

import uuid
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson
from hypothesis import strategies as st

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events import inbound
from medgov_shared.contracts.guards import RAW_IDENTIFIER_FIELDS
from medgov_shared.contracts.registry import SERVICE_TOPICS, all_event_types, inbound_topic

# Registered hospitals, so that the inbound topic names are real ones; no
# record is sent to a broker by the pure parse tests.
HOSPITAL = "knuh"
OTHER_HOSPITAL = "dsmc"

# Defects after which a record must be dead-lettered, whatever else it contains.
MUST_REJECT = frozenset(
    {
        "rrn_in_data",
        "raw_identifier_field",
        "naive_event_time",
        "naive_payload_time",
        "foreign_source",
        "foreign_region",
        "foreign_institution_id",
        "not_json",
        "not_an_object",
        "missing_envelope_field",
        "data_not_an_object",
    }
)

# Strings that match guards.RRN_PATTERN: six digits of a plausible date, an
# optional hyphen or space, and seven digits starting with 1-8.
RRNS = st.builds(
    lambda year, month, day, separator, gender, rest: f"{year:02d}{month:02d}{day:02d}{separator}{gender}{rest:06d}",
    st.integers(0, 99),
    st.integers(1, 12),
    st.integers(1, 28),
    st.sampled_from(["", "-", " "]),
    st.integers(1, 8),
    st.integers(0, 999_999),
)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
HUGE_STRINGS = st.builds(lambda char, size: char * size, st.sampled_from(["a", "가", "0", "\u200b"]), st.integers(10_000, 300_000))
NAIVE_TIMES = st.datetimes().map(lambda moment: moment.replace(tzinfo=None).isoformat())


@dataclass(frozen=True)
class FuzzRecord:
    topic: str
    value: bytes | None
    defects: tuple[str, ...] = field(default=())
    # The field each defect touched, in the same order ("" when it touched none).
    targets: tuple[str, ...] = field(default=())
    # Strings planted as personal data; no error message may repeat them.
    planted: tuple[str, ...] = field(default=())

    @property
    def must_reject(self) -> bool:
        return bool(MUST_REJECT.intersection(self.defects))


@dataclass(frozen=True)
class Defect:
    kind: str
    target: str = ""
    planted: str | None = None


# -- valid starting points ---------------------------------------------------------


def _example_of(schema: dict[str, Any], definitions: dict[str, Any]) -> Any:
    examples = schema.get("examples")
    if examples and examples[0] is not None:
        return examples[0]
    if "$ref" in schema:
        target = definitions[schema["$ref"].rsplit("/", 1)[-1]]
        if "enum" in target:
            return target["enum"][0]
        return {name: _example_of(item, definitions) for name, item in target.get("properties", {}).items()}
    for key in ("anyOf", "allOf"):
        for option in schema.get(key, []):
            if option.get("type") != "null":
                return _example_of(option, definitions)
    return schema.get("default")


@cache
def example_payload(event_class: type[EventPayload]) -> dict[str, Any]:
    """Return a payload built from the examples of the event's fields."""
    schema = event_class.model_json_schema()
    definitions = schema.get("$defs", {})
    return {name: _example_of(item, definitions) for name, item in schema["properties"].items()}


@cache
def datetime_fields(event_class: type[EventPayload]) -> tuple[str, ...]:
    """Return the top-level fields of an event that hold a timestamp."""
    properties = event_class.model_json_schema()["properties"]

    def is_datetime(schema: dict[str, Any]) -> bool:
        options = schema.get("anyOf", [schema])
        return any(option.get("format") == "date-time" for option in options)

    return tuple(name for name, schema in properties.items() if is_datetime(schema))


def envelope_for(event_class: type[EventPayload], payload: dict[str, Any], source: str) -> dict[str, Any]:
    key = payload.get(event_class.key_field) or "key"
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "type": event_class.event_type,
        "time": "2026-12-04T09:00:00Z",
        "subject": str(key),
        "dataschema": event_class.dataschema(),
        "datacontenttype": "application/json",
        "region": "daegu",
        "correlationid": str(uuid.uuid4()),
        "data": payload,
    }


def _route(event_class: type[EventPayload], institution: str) -> tuple[str, str]:
    """Return (topic, source) on which `event_class` normally travels."""
    if event_class in inbound.EVENTS:
        return inbound_topic(institution), f"medgov/hospital/{institution}"
    topic = next(item for item in SERVICE_TOPICS if event_class in item.events)
    return topic.name, f"medgov/{topic.owner}"


# -- defects -------------------------------------------------------------------------


@st.composite
def _payload_defect(
    draw: st.DrawFn, event_class: type[EventPayload], payload: dict[str, Any], touched: frozenset[str]
) -> "Defect":
    """Apply one defect to `payload` in place, leaving the fields of earlier defects (`touched`) alone."""
    names = [name for name in example_payload(event_class) if name in payload and name not in touched]
    if not names:
        return Defect("none")
    kind = draw(
        st.sampled_from(
            ["rrn_in_data", "raw_identifier_field", "naive_payload_time", "drop_field", "wrong_type", "huge_string",
             "foreign_institution_id", "unknown_field", "nested_rrn"]
        )
    )

    if kind == "rrn_in_data":
        rrn = draw(RRNS)
        target = draw(st.sampled_from(names))
        payload[target] = draw(st.sampled_from([rrn, f"patient {rrn} note", [rrn]]))
        return Defect(kind, target, rrn)

    if kind == "nested_rrn":
        rrn = draw(RRNS)
        target = draw(st.sampled_from(["memo", "attachment", "context"]).filter(lambda name: name not in payload))
        payload[target] = {"notes": [{"text": rrn}]}
        return Defect("rrn_in_data", target, rrn)

    if kind == "raw_identifier_field":
        name = draw(st.sampled_from(sorted(RAW_IDENTIFIER_FIELDS)))
        value = draw(st.sampled_from(["12345678", "홍길동", "MRN-000123"]))
        cased = draw(st.sampled_from([name, name.upper()]))
        if draw(st.booleans()) or "extra" in payload:
            payload[cased] = value
        else:
            payload["extra"] = {cased: value}
        return Defect(kind, cased, value)

    if kind == "naive_payload_time":
        fields = [name for name in datetime_fields(event_class) if name not in touched]
        if not fields:
            return Defect("none")
        target = draw(st.sampled_from(fields))
        payload[target] = draw(NAIVE_TIMES)
        return Defect(kind, target)

    # The remaining defects change one of the event's own fields, except unknown_field.
    target = draw(st.sampled_from(names))
    if kind == "drop_field":
        payload.pop(target)
        return Defect(kind, target)

    if kind == "wrong_type":
        payload[target] = draw(JSON_VALUES)
        return Defect(kind, target)

    if kind == "huge_string":
        payload[target] = draw(HUGE_STRINGS)
        return Defect(kind, target)

    if kind == "foreign_institution_id":
        if "institution_id" not in payload or event_class not in inbound.EVENTS:
            return Defect("none")
        payload["institution_id"] = OTHER_HOSPITAL
        return Defect(kind, "institution_id")

    target = draw(st.text(min_size=1, max_size=20).filter(lambda name: name not in payload))
    payload[target] = draw(JSON_VALUES)
    return Defect("unknown_field", target)


@st.composite
def _envelope_defect(draw: st.DrawFn, envelope: dict[str, Any], event_class: type[EventPayload]) -> "Defect":
    """Apply one defect to the envelope in place."""
    kind = draw(
        st.sampled_from(
            ["missing_envelope_field", "wrong_envelope_type", "naive_event_time", "unknown_type", "foreign_source",
             "foreign_region", "data_not_an_object", "odd_dataschema", "extension_attribute", "bad_specversion"]
        )
    )

    if kind == "missing_envelope_field":
        required = ["id", "source", "type", "time", "subject", "dataschema", "region", "correlationid", "data"]
        target = draw(st.sampled_from(required))
        if envelope.pop(target, None) is None:
            return Defect("none")
        return Defect(kind, target)

    if kind == "wrong_envelope_type":
        target = draw(st.sampled_from(sorted(envelope)))
        envelope[target] = draw(JSON_VALUES)
        if target in {"type", "dataschema", "subject", "datacontenttype"} and isinstance(envelope[target], str):
            # Any string is a valid value of these attributes, so only other types count as defects.
            return Defect("retyped_string_attribute", target)
        return Defect(kind, target)

    if kind == "naive_event_time":
        envelope["time"] = draw(NAIVE_TIMES)
        return Defect(kind, "time")

    if kind == "unknown_type":
        envelope["type"] = draw(st.text(min_size=1, max_size=40))
        envelope["dataschema"] = f"urn:medgov:events:{envelope['type']}:v1"
        return Defect(kind, "type")

    if kind == "foreign_source":
        if event_class not in inbound.EVENTS:
            return Defect("none")
        envelope["source"] = draw(st.sampled_from([f"medgov/hospital/{OTHER_HOSPITAL}", "medgov/catalog", "medgov/hospital/"]))
        return Defect(kind, "source")

    if kind == "foreign_region":
        if event_class not in inbound.EVENTS:
            return Defect("none")
        envelope["region"] = draw(st.sampled_from(["daejeon", "gwangju"]))  # the hospital is in daegu
        return Defect(kind, "region")

    if kind == "data_not_an_object":
        envelope["data"] = draw(st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3)))
        return Defect(kind, "data")

    if kind == "odd_dataschema":
        envelope["dataschema"] = draw(_odd_dataschemas(event_class))
        return Defect(kind, "dataschema")

    if kind == "extension_attribute":
        target = draw(st.text(min_size=1, max_size=12).filter(lambda name: name not in envelope))
        envelope[target] = draw(JSON_VALUES)
        return Defect(kind, target)
    envelope["specversion"] = draw(st.sampled_from(["0.3", "2.0", 1.0, None, ""]))
    return Defect(kind, "specversion")


def _odd_dataschemas(event_class: type[EventPayload]) -> st.SearchStrategy[str]:
    base = f"urn:medgov:events:{event_class.event_type}"
    return st.one_of(
        st.text(max_size=60),
        st.integers(min_value=0, max_value=10**30).map(lambda version: f"{base}:v{version}"),
        st.text(alphabet="0123456789\u00b2\u0663\uff11", min_size=1, max_size=5000).map(lambda digits: f"{base}:v{digits}"),
    )


# -- records ---------------------------------------------------------------------------


@st.composite
def cloud_event_records(draw: st.DrawFn, institution: str = HOSPITAL, max_defects: int = 3) -> FuzzRecord:
    """A CloudEvent of a registered type on its usual topic, with zero to `max_defects` defects."""
    event_class = draw(st.sampled_from(all_event_types()))
    topic, source = _route(event_class, institution)
    payload = dict(example_payload(event_class))
    if "institution_id" in payload and event_class in inbound.EVENTS:
        payload["institution_id"] = institution
    envelope = envelope_for(event_class, payload, source)

    defects: list[Defect] = []
    for _ in range(draw(st.integers(0, max_defects))):
        if draw(st.booleans()):
            defect = draw(_payload_defect(event_class, payload, frozenset(item.target for item in defects)))
            if isinstance(envelope.get("data"), dict):
                envelope["data"] = payload
        else:
            defect = draw(_envelope_defect(envelope, event_class))
        if defect.kind != "none":
            defects.append(defect)
    return FuzzRecord(
        topic,
        orjson.dumps(envelope),
        tuple(item.kind for item in defects),
        tuple(item.target for item in defects),
        tuple(item.planted for item in defects if item.planted),
    )


@st.composite
def not_cloud_event_records(draw: st.DrawFn, institution: str = HOSPITAL) -> FuzzRecord:
    """Bytes that are not JSON, JSON that is not an object, or an object that is no CloudEvent."""
    topic = draw(st.sampled_from([inbound_topic(institution), *(item.name for item in SERVICE_TOPICS)]))
    kind = draw(st.sampled_from(["not_json", "not_an_object", "missing_envelope_field", "tombstone"]))

    if kind == "not_json":
        value = draw(st.binary(max_size=512).filter(lambda raw: not _is_json(raw)))
    elif kind == "not_an_object":
        value = orjson.dumps(draw(st.one_of(JSON_SCALARS, st.lists(JSON_VALUES, max_size=5))))
    elif kind == "missing_envelope_field":
        value = orjson.dumps(draw(st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6)))
    else:
        return FuzzRecord(topic, None, ("not_json",))
    return FuzzRecord(topic, value, (kind,))


def malformed_records(institution: str = HOSPITAL) -> st.SearchStrategy[FuzzRecord]:
    return st.one_of(not_cloud_event_records(institution), cloud_event_records(institution))


def _is_json(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True
