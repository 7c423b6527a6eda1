"""A narrower model of FHIR R4 Consent, for the elements consent exports use, that pydantic validates almost without Python code.

fhir.resources validates every complex element through a Python wrapper
and two model validators, which made the Consent check the largest cost of
recording a consent (ADR 0032). The models here cover the elements the
platform's samples and the reader use, with fhir.resources' own primitive
types except for dates, and forbid every other key. Dates are read by
pydantic's own date and datetime parsers after a FHIR pattern for each
precision. fhir_core's date types run Python code for every value, about a
third of this model's time on a sample (27 against 17 microseconds). A leap
second (`23:59:60`), which pydantic's parser rejects, falls back to
fhir.resources like any other rejection. The only other Python check is the
one value of an Extension. The reader tries these models first and falls back
to fhir.resources when they reject, which then accepts the resource or gives
its own error message. Within the nesting depth the reader allows, anything
these models accept fhir.resources accepts too. fhir.resources fails on much
deeper resources, which these models would read, so the reader rejects those
before either model runs. The narrower set leaves out on purpose:

- `contained`, `verification`, `sourceReference`, `fhir_comments`, the
  primitive extension keys (`_status` ...) and Python attribute names given
  for aliases (`class_fhir`);
- in Extension, value types other than those listed, and in Identifier,
  `type`, `period` and `assigner`.

services/consent/tests/unit/test_fhir_consent_model.py compares each model
with its fhir.resources counterpart and runs both on the samples and on
mutations of them.
"""

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from fhir_core.types import (
    Base64BinaryType,
    BooleanType,
    CanonicalType,
    CodeType,
    IdType,
    StringType,
    UnsignedIntType,
    UriType,
    UrlType,
    XhtmlType,
)
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, model_validator
from pydantic_core import CoreSchema, core_schema

# The parts of fhir_core's date patterns (FHIR R4's regular expressions).
_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|[+\-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"


def _matching(pattern: str) -> CoreSchema:
    return core_schema.str_schema(pattern=f"^{pattern}$")


# Each precision in the Python type fhir_core gives it: a time with its zone
# as an aware datetime, a full date as a date, a year or year-month as text.
_INSTANT = core_schema.chain_schema([_matching(f"{_YEAR}-{_MONTH}-{_DAY}T{_CLOCK}"), core_schema.datetime_schema(tz_constraint="aware")])
_FULL_DATE = core_schema.chain_schema([_matching(f"{_YEAR}-{_MONTH}-{_DAY}"), core_schema.date_schema()])
_PARTIAL_DATE = _matching(f"{_YEAR}(-{_MONTH})?")


class _CoreSchema:
    """Annotation metadata that gives a field a ready core schema."""

    def __init__(self, *choices: CoreSchema) -> None:
        self.schema = choices[0] if len(choices) == 1 else core_schema.union_schema(list(choices), mode="left_to_right")

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return self.schema


DateTimeType = Annotated[datetime | date | str, _CoreSchema(_INSTANT, _FULL_DATE, _PARTIAL_DATE)]
DateType = Annotated[date | str, _CoreSchema(_FULL_DATE, _PARTIAL_DATE)]
InstantType = Annotated[datetime, _CoreSchema(_INSTANT)]


class _Element(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StringType | None = None
    extension: list["Extension"] | None = None


class Coding(_Element):
    system: UriType | None = None
    version: StringType | None = None
    code: CodeType | None = None
    display: StringType | None = None
    userSelected: BooleanType | None = None


class CodeableConcept(_Element):
    coding: list[Coding] | None = None
    text: StringType | None = None


class Period(_Element):
    start: DateTimeType | None = None
    end: DateTimeType | None = None


class Identifier(_Element):
    use: CodeType | None = None
    system: UriType | None = None
    value: StringType | None = None


class Reference(_Element):
    reference: StringType | None = None
    type: UriType | None = None
    identifier: Identifier | None = None
    display: StringType | None = None


class Extension(_Element):
    url: UriType
    valueBase64Binary: Base64BinaryType | None = None
    valueBoolean: BooleanType | None = None
    valueCode: CodeType | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueCoding: Coding | None = None
    valueDate: DateType | None = None
    valueDateTime: DateTimeType | None = None
    valueIdentifier: Identifier | None = None
    valuePeriod: Period | None = None
    valueReference: Reference | None = None
    valueString: StringType | None = None
    valueUri: UriType | None = None

    @model_validator(mode="after")
    def _one_value(self) -> Self:
        # value[x] is a choice: fhir.resources rejects an extension with two values.
        present = [name for name in _EXTENSION_VALUES if getattr(self, name) is not None]
        if len(present) > 1:
            raise ValueError(f"an extension has one value; got {', '.join(present)}")
        return self


_EXTENSION_VALUES = tuple(name for name in Extension.model_fields if name.startswith("value"))


class Meta(_Element):
    versionId: IdType | None = None
    lastUpdated: InstantType | None = None
    source: UriType | None = None
    profile: list[CanonicalType] | None = None
    security: list[Coding] | None = None
    tag: list[Coding] | None = None


class Narrative(_Element):
    status: CodeType
    div: XhtmlType


class Attachment(_Element):
    contentType: CodeType | None = None
    language: CodeType | None = None
    data: Base64BinaryType | None = None
    url: UrlType | None = None
    size: UnsignedIntType | None = None
    hash: Base64BinaryType | None = None
    title: StringType | None = None
    creation: DateTimeType | None = None


class _BackboneElement(_Element):
    modifierExtension: list[Extension] | None = None


class ConsentPolicy(_BackboneElement):
    authority: UriType | None = None
    uri: UriType | None = None


class ConsentProvisionActor(_BackboneElement):
    role: CodeableConcept
    reference: Reference


class ConsentProvisionData(_BackboneElement):
    meaning: CodeType
    reference: Reference


class ConsentProvision(_BackboneElement):
    type: CodeType | None = None
    period: Period | None = None
    actor: list[ConsentProvisionActor] | None = None
    action: list[CodeableConcept] | None = None
    securityLabel: list[Coding] | None = None
    purpose: list[Coding] | None = None
    class_fhir: list[Coding] | None = Field(default=None, alias="class")
    code: list[CodeableConcept] | None = None
    dataPeriod: Period | None = None
    data: list[ConsentProvisionData] | None = None
    provision: list["ConsentProvision"] | None = None


class Consent(BaseModel):
    """The Consent resource, limited to the elements above."""

    model_config = ConfigDict(extra="forbid")

    resourceType: Literal["Consent"]
    id: IdType | None = None
    meta: Meta | None = None
    implicitRules: UriType | None = None
    language: CodeType | None = None
    text: Narrative | None = None
    extension: list[Extension] | None = None
    modifierExtension: list[Extension] | None = None
    identifier: list[Identifier] | None = None
    status: CodeType
    scope: CodeableConcept
    category: list[CodeableConcept]
    patient: Reference | None = None
    dateTime: DateTimeType | None = None
    performer: list[Reference] | None = None
    organization: list[Reference] | None = None
    sourceAttachment: Attachment | None = None
    policy: list[ConsentPolicy] | None = None
    policyRule: CodeableConcept | None = None
    provision: ConsentProvision | None = None

