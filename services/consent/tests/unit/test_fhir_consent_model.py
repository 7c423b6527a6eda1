"""The narrower Consent model against fhir.resources: same fields and types, nothing accepted that fhir.resources rejects, the same reading."""

import copy
import json
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir_core import types as fhir_types
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError

from medgov_consent.domain import fhir_consent_model
from medgov_consent.domain.errors import ConsentRejected
from medgov_consent.domain.fhir_consent import _read_validated, read_fhir_consent
from medgov_consent.domain.fhir_xml import parse_fhir_xml
from medgov_consent.domain.policy import KOREA_STANDARD_TIME, ConsentPolicy

from .conftest import sample_data_dir

NARROW_MODELS = [
    value
    for value in vars(fhir_consent_model).values()
    if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == fhir_consent_model.__name__
    and not value.__name__.startswith("_")
]

# Institutions the samples name, so that their provisions are read further
# than the first unknown organization.
INSTITUTIONS = ("knuh", "f001", "Organization/f001")


def _consent_samples() -> dict[str, dict[str, Any]]:
    root = sample_data_dir() / "fhir"
    samples = {path.name: json.loads(path.read_text()) for path in sorted((root / "hl7-r4-examples" / "consent").glob("Consent-*.json"))}
    for path in sorted((root / "mii-consent-xml").glob("*Consent*.xml")):
        samples[path.name] = parse_fhir_xml(path.read_bytes())
    # An empty table would leave the tests below with nothing to check.
    assert len(samples) >= 10, f"expected the ten Consent samples under {root}; set MEDGOV_SAMPLE_DATA"
    return samples


SAMPLES = _consent_samples()


# The narrower model's date types and the fhir_core types they replace.
# test_dates_read_alike checks that each accepts only what its counterpart accepts.
DATE_TYPES = {
    fhir_consent_model.DateTimeType: fhir_types.DateTimeType,
    fhir_consent_model.DateType: fhir_types.DateType,
    fhir_consent_model.InstantType: fhir_types.InstantType,
}


def _shape(annotation: Any) -> Any:
    """A comparable description of a field type: optional, list, and the primitive type or the element's name."""
    annotation = DATE_TYPES.get(annotation, annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [argument for argument in typing.get_args(annotation) if argument is not type(None)]
        return ("optional", _shape(inner))
    if origin in (list, typing.List):  # noqa: UP006 - fhir.resources annotates with typing.List
        return ("list", _shape(typing.get_args(annotation)[0]))
    if origin is typing.Annotated or annotation in (str, bool, int):
        return annotation
    if origin is typing.Literal:
        return annotation
    if isinstance(annotation, str):  # a forward reference inside list[...]
        return annotation
    name = getattr(annotation, "__name__", repr(annotation))
    return name.removesuffix("Type")


def _narrows(mine: Any, theirs: Any) -> bool:
    """Whether a field of shape `mine` accepts only values a field of shape `theirs` accepts."""
    if mine == theirs:
        return True
    if isinstance(theirs, tuple) and theirs[0] == "optional":
        return _narrows(mine[1] if isinstance(mine, tuple) and mine[0] == "optional" else mine, theirs[1])
    if isinstance(mine, tuple) and isinstance(theirs, tuple) and mine[0] == theirs[0] == "list":
        return _narrows(mine[1], theirs[1])
    return False


@pytest.mark.parametrize("model", NARROW_MODELS, ids=lambda model: model.__name__)
def test_each_field_narrows_its_fhir_resources_field(model: type[BaseModel]) -> None:
    counterpart = get_fhir_model_class(model.__name__)
    for name, field in model.model_fields.items():
        if name == "resourceType":
            assert field.annotation == typing.Literal["Consent"]
            continue
        assert name in counterpart.model_fields, f"{model.__name__}.{name} is not an element of fhir.resources' model"
        theirs = counterpart.model_fields[name]
        assert field.alias in (None, theirs.alias), f"{model.__name__}.{name}"
        mine_shape, their_shape = _shape(field.rebuild_annotation()), _shape(theirs.rebuild_annotation())
        assert _narrows(mine_shape, their_shape), f"{model.__name__}.{name}: {mine_shape} against {their_shape}"


@pytest.mark.parametrize("model", NARROW_MODELS, ids=lambda model: model.__name__)
def test_fields_fhir_resources_requires_are_required(model: type[BaseModel]) -> None:
    counterpart = get_fhir_model_class(model.__name__)
    required = {name for name, field in counterpart.model_fields.items() if field.is_required()}
    required |= {name for name, _ in counterpart.get_required_fields(counterpart.model_construct())}
    for name in required:
        assert name in model.model_fields, f"{model.__name__}.{name} is missing"
        assert model.model_fields[name].is_required(), f"{model.__name__}.{name} must be required"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_consent_sample_takes_the_narrower_model(name: str) -> None:
    # The narrower model is there to cover real exports; if a sample falls
    # back to fhir.resources, it has lost its purpose for that export.
    consent = fhir_consent_model.Consent.model_validate(SAMPLES[name])
    assert consent.status


def _outcome(validated: Any) -> ConsentPolicy | tuple[str, str, str | None]:
    try:
        return _read_validated(validated, institution_ids=INSTITUTIONS, local_zone=KOREA_STANDARD_TIME)
    except ConsentRejected as error:
        return (error.code, error.message, error.path)


def _assert_same_reading(resource: dict[str, Any]) -> bool:
    """Check that whatever the narrower model accepts, fhir.resources accepts and reads the same; return whether it accepted."""
    try:
        narrow = fhir_consent_model.Consent.model_validate(resource)
    except ValidationError:
        return False
    full_model = get_fhir_model_class("Consent")
    try:
        full = full_model.model_validate(copy.deepcopy(resource))
    except ValidationError as error:
        pytest.fail(f"the narrower model accepted a Consent that fhir.resources rejects: {error}\n{json.dumps(resource)[:2000]}")
    assert _outcome(narrow) == _outcome(full)
    return True


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_samples_read_alike_in_both(name: str) -> None:
    assert _assert_same_reading(SAMPLES[name])


ODD_VALUES = (
    None, "", " ", "two  spaces", [], {}, [None], 0, -1, 1.5, True, "true",
    "2016", "2016-05", "2016-13", "2016-02-30", "2016-05-11", "2016-05-11T10:00:00", "2016-05-11T10:00:00+09:00",
    "2016-12-31T23:59:60Z", "permit", "deny", "active", "inactive", "OPTIN", "OPTOUT", "Organization/knuh",
    "urn:medgov:institution", "http://terminology.hl7.org/CodeSystem/consentscope", "research",
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
    {"reference": "Organization/knuh"}, {"start": "2020-01-01", "end": "2019-01-01"},
    [{"url": "http://example.org/e", "valueString": "x"}], [{"url": "http://example.org/e"}],
    [{"url": "http://example.org/e", "valueString": "x", "valueCode": "y"}], [{"valueString": "x"}],
    [{"type": "deny"}], [{"coding": [{"code": "x"}]}],
)
ODD_KEYS = ("extra", "_status", "class_fhir", "fhir_comments", "modifierExtension", "extension", "resource_type", "id", "class")


def _positions(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "div":
                found.extend(_positions(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_positions(value, (*path, index)))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated_samples(draw: st.DrawFn) -> dict[str, Any]:
    resource = copy.deepcopy(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_positions(resource)))
        target = _at(resource, path)
        action = draw(st.sampled_from(("replace", "delete", "add", "wrap")))
        if not path:
            action = "add"
        if action == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(ODD_KEYS))] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
            continue
        if not path:
            continue
        parent, last = _at(resource, path[:-1]), path[-1]
        if action == "delete":
            del parent[last]
        elif action == "wrap" and isinstance(target, list):
            parent[last] = target[0] if target else {}
        elif action == "wrap":
            parent[last] = [target]
        else:
            parent[last] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
    return resource


# Each precision, and texts that are near misses of one: impossible days,
# a month 13, times without a zone or seconds, 24:00, a leap second, more
# digits than a microsecond, zones beyond +14:00, a lower-case z.
DATE_TEXTS = [
    "2016", "2016-05", "2016-13", "2016-05-11", "2016-02-29", "2015-02-29", "2016-02-30", "2016-04-31", "0000", "0001",
    "0001-01-01", "9999-12-31", "2016-5-11", "20160511", "2016-05-11T10:00:00Z", "2016-05-11T10:00:00.5+09:00",
    "2016-05-11T10:00:00.123456789-03:30", "2016-05-11T10:00:00", "2016-05-11T10:00Z", "2016-05-11T24:00:00Z",
    "2016-12-31T23:59:60Z", "2016-05-11T10:00:00+14:00", "2016-05-11T10:00:00+14:30", "2016-05-11T10:00:00z",
    "2016-05-11 10:00:00Z", "2016-05-11T10:00:00+0900", " 2016", "2016\n", "",
]
DATE_TEXT_PATTERN = r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?"


@pytest.mark.parametrize("text", ["2016", "2016-05", "2016-05-11", "2016-05-11T10:00:00+09:00"])
def test_narrower_datetime_reads_each_precision(text: str) -> None:
    # Without this, a narrower type that rejected everything would pass the test below.
    assert TypeAdapter(fhir_consent_model.DateTimeType).validate_python(text)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.sampled_from(DATE_TEXTS), st.from_regex(DATE_TEXT_PATTERN, fullmatch=True)))
def test_dates_read_alike(text: str) -> None:
    for mine, theirs in DATE_TYPES.items():
        try:
            narrow = TypeAdapter(mine).validate_python(text)
        except ValidationError:
            continue  # the reader falls back to fhir.resources, which decides
        full = TypeAdapter(theirs).validate_python(text)
        assert (type(narrow), narrow) == (type(full), full), f"{text!r} as {theirs}"
        if isinstance(narrow, datetime):
            assert narrow.utcoffset() == full.utcoffset(), text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resource=mutated_samples())
def test_mutated_samples_read_alike(resource: dict[str, Any]) -> None:
    _assert_same_reading(resource)


def test_uncovered_element_falls_back(consent_folder: Path) -> None:
    resource = json.loads((consent_folder / "Consent-consent-example-basic.json").read_text())
    resource["status"] = 5
    with pytest.raises(ConsentRejected) as raised:
        read_fhir_consent(resource, institution_ids=INSTITUTIONS)
    assert raised.value.path == "status"
    assert "invalid FHIR R4 Consent" in raised.value.message

    resource["status"] = "active"
    del resource["sourceAttachment"]
    resource["sourceReference"] = {"reference": "DocumentReference/1"}
    with pytest.raises(ValidationError):
        fhir_consent_model.Consent.model_validate(resource)
    assert read_fhir_consent(resource, institution_ids=INSTITUTIONS).fhir_id == "consent-example-basic"
