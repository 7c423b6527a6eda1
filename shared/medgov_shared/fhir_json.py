"""A check of FHIR JSON that pydantic's FHIR models do not make: dates and times given as numbers.

FHIR JSON writes date, dateTime, instant and time values as strings. The
models of fhir.resources read them with pydantic, which takes a number as
Unix time, so `"effectiveDateTime": 12345` validates as 1970-01-01T03:25:45Z.
The check walks the validated model beside the JSON it came from and finds
each place where the model contains a date or time and the JSON a number. It
needs no table of element names, which differ per resource type and can
hold numbers elsewhere (`MolecularSequence.variant.start` is an integer).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from functools import cache
from typing import Any

from pydantic import BaseModel

from medgov_shared.contracts.guards import LinkedPath, render_path

# JSON numbers as Python's json and orjson give them (bool is an int, but a JSON true is no number).
_NUMBER_TYPES = (int, float, Decimal)


@dataclass(frozen=True)
class NumberForTime:
    """A number found where FHIR JSON has a date or time string."""

    path: str
    value: Any

    @property
    def message(self) -> str:
        return f"a date or time is a string in FHIR JSON, such as \"2026-11-02\", got the number {self.value}"


def find_number_for_time(model: BaseModel, source: Mapping[str, Any]) -> NumberForTime | None:
    """Return the first number given for a date or time element, or None if there is none.

    `model` must be the result of validating `source`. The path uses the JSON
    names (`effectivePeriod.start`, `event[0]`).
    """
    # The walk passes the path as linked (parent, segment) pairs and renders it only for a find.
    found = _find_in_model(model, source, None)
    if found is None:
        return None
    trail, value = found
    return NumberForTime(render_path(trail), value)


def _find_in_model(model: BaseModel, source: Mapping[str, Any], trail: LinkedPath) -> tuple[LinkedPath, Any] | None:
    names = _attribute_names(type(model))
    for key, source_value in source.items():
        if type(source_value) is str:
            continue  # most values, and never a number
        name = names.get(key)
        if name is None:
            continue
        found = _find_in_value(getattr(model, name, None), source_value, (trail, key))
        if found is not None:
            return found
    return None


def _find_in_value(value: Any, source: Any, trail: LinkedPath) -> tuple[LinkedPath, Any] | None:
    if isinstance(value, (date, time)):  # a datetime is a date
        if isinstance(source, _NUMBER_TYPES) and not isinstance(source, bool):
            return trail, source
        return None
    if isinstance(value, BaseModel) and isinstance(source, Mapping):
        return _find_in_model(value, source, trail)
    if isinstance(value, list) and isinstance(source, list):
        for index, (item, source_item) in enumerate(zip(value, source, strict=False)):
            if type(source_item) is str:
                continue
            found = _find_in_value(item, source_item, (trail, index))
            if found is not None:
                return found
    return None


@cache
def _attribute_names(model_class: type[BaseModel]) -> dict[str, str]:
    """Map each JSON name of a model's fields (its alias, or else its name) to the attribute that contains its value."""
    return {field.alias or name: name for name, field in model_class.model_fields.items()}
