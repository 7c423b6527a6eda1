"""Hypothesis strategies for malformed HTTP requests, derived from a service's OpenAPI document.

Each operation of the document yields requests whose path parameters, query
parameters and body are either valid for the schema or broken the way an
outside caller breaks them. The broken forms are bytes that are not JSON,
JSON of the wrong shape, missing or mistyped fields, huge strings, resident
registration numbers (RRNs), naive datetimes and unknown fields. Valid values come from the
schema's own constraints (pattern, enum, bounds), so requests also reach the
code behind the validation. Bodies that embed a FHIR Consent start from the
real consent examples in the shared sample data.
"""

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

from .event_strategies import HUGE_STRINGS, JSON_VALUES, NAIVE_TIMES, RRNS

# The methods the services' routes use. The framework itself handles HEAD and OPTIONS.
METHODS = ("get", "post", "put", "patch", "delete")
XML_MEDIA_TYPES = ("application/fhir+xml", "application/xml", "text/xml")


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # path | query
    required: bool
    schema: dict[str, Any]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body_schema: dict[str, Any] | None
    # Whether the OpenAPI document lists a bearer-token requirement for it.
    secured: bool

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


@dataclass(frozen=True)
class FuzzRequest:
    method: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    content: bytes | None = None
    content_type: str | None = None
    defects: tuple[str, ...] = field(default=())
    # Set when a path parameter is empty or contains '/' or a line break, so the URL may match no route.
    may_miss_route: bool = False


def operations(document: dict[str, Any]) -> list[Operation]:
    """List every operation of an OpenAPI document, with $refs of parameters and bodies resolved."""
    found = []
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            spec = item[method]
            parameters = tuple(
                Parameter(raw["name"], raw["in"], raw.get("required", False), raw.get("schema", {}))
                for raw in spec.get("parameters", [])
                if raw["in"] in ("path", "query")
            )
            body = spec.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            found.append(Operation(method, path, parameters, body, bool(spec.get("security"))))
    return found


# -- valid values from a JSON Schema ---------------------------------------------------


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength", 60)
    if schema.get("format") == "date":
        return st.dates().map(lambda value: value.isoformat())
    if schema.get("format") == "date-time":
        return st.datetimes(timezones=st.timezones()).map(lambda value: value.isoformat())
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda text: low <= len(text) <= high)
    return st.text(min_size=low, max_size=min(high, low + 60))


def valid_values(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values that satisfy `schema` (the subset of JSON Schema that pydantic emits for these APIs)."""
    schema = _resolve(schema, components)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of(*(valid_values(option, components, depth) for option in schema["anyOf"]))
    kind = schema.get("type")
    if kind == "string":
        return _strings(schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40))
    if kind == "number":
        return st.one_of(st.integers(0, 10**13), st.floats(allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = valid_values(schema.get("items", {}), components, depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "object" and "properties" in schema and depth < 4:
        return _objects(schema, components, depth)
    return JSON_VALUES


def _objects(schema: dict[str, Any], components: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    required = set(schema.get("required", ()))
    properties = schema["properties"]
    fixed = {name: _property_values(name, item, components, depth) for name, item in properties.items() if name in required}
    optional = {name: _property_values(name, item, components, depth) for name, item in properties.items() if name not in required}
    return st.fixed_dictionaries(fixed, optional=optional)


def _property_values(name: str, schema: dict[str, Any], components: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if name == "fhir_consent":
        return fhir_consents()
    return valid_values(schema, components, depth + 1)


# -- FHIR Consent seeds from the sample data ------------------------------------------------


@cache
def _sample_consents(data_root: Path) -> tuple[dict[str, Any], ...]:
    folder = data_root / "fhir" / "hl7-r4-examples" / "consent"
    consents = []
    for path in sorted(folder.glob("Consent-*.json")):
        consents.append(json.loads(path.read_text(encoding="utf-8")))
    if not consents:
        raise FileNotFoundError(f"no FHIR Consent examples in {folder}; set MEDGOV_SAMPLE_DATA to the shared data folder")
    return tuple(consents)


@cache
def _sample_consent_xml(data_root: Path) -> bytes:
    return (data_root / "fhir" / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml").read_bytes()


SAMPLE_DATA: list[Path] = []


def use_sample_data(root: Path) -> None:
    """Point the FHIR seeds at the shared sample data folder (the `sample_data` fixture's path)."""
    SAMPLE_DATA[:] = [root]


def fhir_consents() -> st.SearchStrategy[dict[str, Any]]:
    """A real FHIR R4 Consent example, unchanged or with one element replaced by any JSON value."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        consent = dict(draw(st.sampled_from(_sample_consents(SAMPLE_DATA[0]))))
        if draw(st.booleans()):
            consent[draw(st.sampled_from(sorted(consent)))] = draw(JSON_VALUES)
        return consent

    return build()


@st.composite
def xml_documents(draw: st.DrawFn) -> bytes:
    """The MII research consent in FHIR XML, unchanged, cut short, or with bytes spliced in."""
    document = _sample_consent_xml(SAMPLE_DATA[0])
    kind = draw(st.sampled_from(["unchanged", "truncated", "spliced", "not_xml", "entity"]))
    if kind == "truncated":
        return document[: draw(st.integers(0, len(document) - 1))]
    if kind == "spliced":
        at = draw(st.integers(0, len(document)))
        return document[:at] + draw(st.binary(min_size=1, max_size=64)) + document[at:]
    if kind == "not_xml":
        return draw(st.binary(max_size=256))
    if kind == "entity":
        # An internal entity bomb; a safe parser refuses it instead of expanding it.
        return (
            b'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Consent xmlns="http://hl7.org/fhir"><id value="&c;"/></Consent>'
        )
    return document


# -- broken values ---------------------------------------------------------------------------


def _broken_json_documents() -> st.SearchStrategy[tuple[bytes, str]]:
    return st.one_of(
        st.binary(max_size=300).map(lambda raw: (raw, "not_json")),
        st.one_of(st.lists(JSON_VALUES, max_size=4), JSON_VALUES.filter(lambda value: not isinstance(value, dict))).map(
            lambda value: (json.dumps(value).encode(), "not_an_object")
        ),
        st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5).map(
            lambda value: (json.dumps(value).encode(), "random_object")
        ),
        # Deeper bodies hit an open bug (a 500 just below the parser's nesting limit, pinned in
        # test_found_bugs.py). Hypothesis also raises the recursion limit while a test runs, which moves
        # that limit, so depths near it would not behave as in production.
        st.integers(50, 400).map(lambda depth: (b"[" * depth + b"]" * depth, "deep_nesting")),
    )


@st.composite
def _mutated_object(draw: st.DrawFn, schema: dict[str, Any], components: dict[str, Any]) -> tuple[bytes, tuple[str, ...]]:
    """A schema-valid object with zero to three defects applied."""
    schema = _resolve(schema, components)
    value = draw(valid_values(schema, components))
    defects: list[str] = []
    if not isinstance(value, dict):
        return json.dumps(value).encode(), ()
    names = sorted(schema.get("properties", {}))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["drop", "wrong_type", "huge_string", "rrn", "naive_datetime", "unknown_field", "null"]))
        target = draw(st.sampled_from(names)) if names else "x"
        if kind == "drop":
            value.pop(target, None)
        elif kind == "wrong_type":
            value[target] = draw(JSON_VALUES)
        elif kind == "huge_string":
            value[target] = draw(HUGE_STRINGS)
        elif kind == "rrn":
            value[target] = draw(RRNS)
        elif kind == "naive_datetime":
            value[target] = draw(NAIVE_TIMES)
        elif kind == "unknown_field":
            value[draw(st.text(min_size=1, max_size=16))] = draw(JSON_VALUES)
        else:
            value[target] = None
        defects.append(kind)
    return json.dumps(value, ensure_ascii=draw(st.booleans())).encode(), tuple(defects)


# -- whole requests -----------------------------------------------------------------------------


def _path_values(parameter: Parameter, components: dict[str, Any]) -> st.SearchStrategy[str]:
    valid = valid_values(parameter.schema, components).map(str)
    hostile = st.sampled_from(["..", ".", "../../etc/passwd", "%00", "a" * 5000, "'; DROP TABLE x; --", "\u0000", " "])
    return st.one_of(valid, st.text(max_size=80), RRNS, hostile)


def _query_values(parameter: Parameter, components: dict[str, Any]) -> st.SearchStrategy[str]:
    def as_text(value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    # httpx refuses a query of 64 KiB or more. A route has at most 10 query parameters here, so each long
    # value stays under 6 KiB once percent-encoded (a Hangul syllable takes 9 characters).
    long_text = st.one_of(
        st.integers(1000, 5000).map(lambda size: "a" * size), st.integers(100, 600).map(lambda size: "가" * size)
    )
    return st.one_of(
        valid_values(parameter.schema, components).map(as_text), st.text(max_size=80), RRNS, long_text
    )


@st.composite
def requests_for(draw: st.DrawFn, operation: Operation, components: dict[str, Any]) -> FuzzRequest:
    """One request to `operation` with generated parameters and body."""
    url = operation.path
    may_miss_route = False
    for parameter in operation.parameters:
        if parameter.location != "path":
            continue
        value = draw(_path_values(parameter, components))
        # Starlette's {name:path} pattern does not match across a line break.
        may_miss_route |= value in ("", ".", "..") or "/" in value or "\n" in value or "\r" in value
        url = url.replace("{" + parameter.name + "}", quote(value, safe="/" if parameter.name == "path" else ""))
        url = url.replace("{" + parameter.name + ":path}", quote(value, safe="/"))

    params: list[tuple[str, str]] = []
    for parameter in operation.parameters:
        if parameter.location == "query" and (parameter.required or draw(st.booleans())):
            params.append((parameter.name, draw(_query_values(parameter, components))))
    if draw(st.integers(0, 9)) == 0:
        params.append((draw(st.text(min_size=1, max_size=10)), draw(st.text(max_size=20))))

    content, content_type, defects = draw(_body(operation, components))
    return FuzzRequest(operation.method.upper(), url, tuple(params), content, content_type, defects, may_miss_route)


@st.composite
def _body(draw: st.DrawFn, operation: Operation, components: dict[str, Any]) -> tuple[bytes | None, str | None, tuple[str, ...]]:
    if operation.body_schema is None:
        if operation.method == "get":
            return None, None, ()
        # Routes that read the raw body: the FHIR XML upload and the staging upload.
        content = draw(st.one_of(xml_documents(), st.binary(max_size=2048)))
        content_type = draw(st.sampled_from([*XML_MEDIA_TYPES, "application/octet-stream", "application/json", None]))
        return content, content_type, ("raw_body",)

    if draw(st.integers(0, 3)) == 0:
        content, defect = draw(_broken_json_documents())
        defects: tuple[str, ...] = (defect,)
    else:
        content, defects = draw(_mutated_object(operation.body_schema, components))
    content_type = draw(st.sampled_from(["application/json"] * 6 + ["text/plain", None, "application/json; charset=latin-1"]))
    return content, content_type, defects
