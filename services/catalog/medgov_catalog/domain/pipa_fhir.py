"""PIPA scan of FHIR resources: identifying elements of the data subjects.

Patient, RelatedPerson and Person describe the data subject and the people
around them, so their names, telecoms, addresses, identifiers, photos, birth
and death dates and contacts are reported, together with a narrative that
repeats one of those values. In every resource a reference to such a person
that carries a `display` (usually the person's name) is reported, and so is
any string that looks like a Korean resident registration number.

NOTE: names and identifiers of practitioners and organizations are not
reported; they are staff and institutions, not the data subjects. Attachments
(base64 data) are not decoded, so a name inside an attached note is missed.
"""

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

from medgov_shared.contracts.guards import contains_rrn
from medgov_shared.contracts.pseudonym import is_pseudonym

from medgov_catalog.domain.pipa_scan import IdentifierCategory, IdentifierFinding, IdentifierKind

PERSON_RESOURCE_TYPES = frozenset({"Patient", "RelatedPerson", "Person"})

_MOTHERS_MAIDEN_NAME = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
_BIRTH_PLACE = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
_BIRTH_TIME = "http://hl7.org/fhir/StructureDefinition/patient-birthTime"
_GEOLOCATION = "http://hl7.org/fhir/StructureDefinition/geolocation"
_PERSON_REFERENCE = re.compile(r"(^|/)(Patient|RelatedPerson|Person)/[^/]+")
_HTML_TAG = re.compile(r"<[^>]+>")
_YEAR_ONLY = re.compile(r"^\d{4}$")

# A repeated value shorter than this is too likely to occur by chance in a narrative.
_MIN_ECHO_CHARS = 3

_IDENTIFIER_TYPE_KINDS = {
    "MR": IdentifierKind.MEDICAL_RECORD_NUMBER,
    "SS": IdentifierKind.SOCIAL_SECURITY_NUMBER,
    "DL": IdentifierKind.DRIVERS_LICENSE_NUMBER,
    "PPN": IdentifierKind.PASSPORT_NUMBER,
    "NI": IdentifierKind.NATIONAL_IDENTIFIER,
    "NH": IdentifierKind.NATIONAL_IDENTIFIER,
    "MB": IdentifierKind.INSURANCE_NUMBER,
    "MA": IdentifierKind.INSURANCE_NUMBER,
    "MC": IdentifierKind.INSURANCE_NUMBER,
    "SN": IdentifierKind.INSURANCE_NUMBER,
}
_IDENTIFIER_SYSTEM_KINDS = {
    "http://hl7.org/fhir/sid/us-ssn": IdentifierKind.SOCIAL_SECURITY_NUMBER,
    # Dutch citizen service number (BSN), used by the HL7 example patients.
    "urn:oid:2.16.840.1.113883.2.4.6.3": IdentifierKind.NATIONAL_IDENTIFIER,
}


class _Collector:
    """Findings of one resource, with the values that a narrative must not repeat."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.findings: list[IdentifierFinding] = []
        self.echo_values: dict[str, IdentifierKind] = {}

    def add(self, location: str, kind: IdentifierKind, category: IdentifierCategory, *values: str) -> None:
        self.findings.append(IdentifierFinding(self.file, location, kind, category))
        if category == IdentifierCategory.DIRECT:
            for value in values:
                if len(value.strip()) >= _MIN_ECHO_CHARS:
                    self.echo_values.setdefault(value.strip().casefold(), kind)


def scan_fhir_resource(
    resource: Mapping[str, Any], file: str, location: str, person_urls: frozenset[str] = frozenset()
) -> list[IdentifierFinding]:
    """Return the identifying values in one resource (not a Bundle).

    `location` is the FHIRPath-like position of the resource in its file, for
    example "Patient" or "line 4: Patient" or
    "Bundle.entry[2].resource.ofType(Patient)". `person_urls` holds the
    fullUrls of the persons in the same Bundle, so that a `urn:uuid:`
    reference to one of them is recognised.
    """
    collector = _Collector(file)
    for path, value in _walk(resource, location):
        if isinstance(value, Mapping):
            if value.get("resourceType") in PERSON_RESOURCE_TYPES:
                _scan_person(value, path, collector)
            if _is_person_reference(value, person_urls) and _text(value.get("display")):
                collector.add(f"{path}.display", IdentifierKind.NAME, IdentifierCategory.DIRECT, value["display"])
        elif isinstance(value, str) and _looks_like_rrn(value):
            collector.add(path, IdentifierKind.RESIDENT_REGISTRATION_NUMBER, IdentifierCategory.DIRECT)
    return collector.findings


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _is_person_reference(value: Mapping[str, Any], person_urls: frozenset[str]) -> bool:
    reference = value.get("reference")
    if not isinstance(reference, str):
        # A Reference may name only its type; other mappings with a "type" key are not references.
        return "display" in value and _text(value.get("type")) in PERSON_RESOURCE_TYPES
    return reference in person_urls or _PERSON_REFERENCE.search(reference) is not None


def _scan_person(person: Mapping[str, Any], path: str, collector: _Collector) -> None:
    for index, name in enumerate(_list(person.get("name"))):
        _scan_name(name, f"{path}.name[{index}]", collector)
    for index, contact_point in enumerate(_list(person.get("telecom"))):
        _scan_telecom(contact_point, f"{path}.telecom[{index}]", collector)
    for index, address in enumerate(_list(person.get("address"))):
        _scan_address(address, f"{path}.address[{index}]", collector)
    for index, identifier in enumerate(_list(person.get("identifier"))):
        _scan_identifier(identifier, f"{path}.identifier[{index}]", collector)
    for index, photo in enumerate(_list(person.get("photo"))):
        if photo:
            collector.add(f"{path}.photo[{index}]", IdentifierKind.PHOTO, IdentifierCategory.DIRECT)
    for index, contact in enumerate(_list(person.get("contact"))):
        _scan_contact(contact, f"{path}.contact[{index}]", collector)

    _scan_dates(person, path, collector)
    _scan_person_extensions(person, path, collector)
    _scan_narrative(person, path, collector)


def _scan_contact(contact: Mapping[str, Any], path: str, collector: _Collector) -> None:
    if isinstance(contact.get("name"), Mapping):
        _scan_name(contact["name"], f"{path}.name", collector)
    for index, contact_point in enumerate(_list(contact.get("telecom"))):
        _scan_telecom(contact_point, f"{path}.telecom[{index}]", collector)
    if isinstance(contact.get("address"), Mapping):
        _scan_address(contact["address"], f"{path}.address", collector)


def _scan_name(name: Mapping[str, Any], path: str, collector: _Collector) -> None:
    parts = [_text(name.get("text")), _text(name.get("family"))]
    parts += [_text(given) for given in _list(name.get("given"))]
    present = [part for part in parts if part]
    if present:
        collector.add(path, IdentifierKind.NAME, IdentifierCategory.DIRECT, *present)


def _scan_telecom(contact_point: Mapping[str, Any], path: str, collector: _Collector) -> None:
    value = _text(contact_point.get("value"))
    if value:
        collector.add(path, IdentifierKind.TELECOM, IdentifierCategory.DIRECT, value)


def _scan_address(address: Mapping[str, Any], path: str, collector: _Collector) -> None:
    lines = [_text(line) for line in _list(address.get("line"))]
    full_text = _text(address.get("text"))
    geolocated = any(extension.get("url") == _GEOLOCATION for extension in _list(address.get("extension")))
    if any(lines) or full_text or geolocated:
        collector.add(path, IdentifierKind.ADDRESS, IdentifierCategory.DIRECT, *[line for line in lines if line])
        return
    if _text(address.get("postalCode")):
        collector.add(f"{path}.postalCode", IdentifierKind.POSTAL_CODE, IdentifierCategory.QUASI)
    if _text(address.get("city")) or _text(address.get("district")):
        collector.add(path, IdentifierKind.ADDRESS_PART, IdentifierCategory.QUASI)


def _scan_identifier(identifier: Mapping[str, Any], path: str, collector: _Collector) -> None:
    value = _text(identifier.get("value"))
    if not value:
        return
    if is_pseudonym(value):
        collector.add(path, IdentifierKind.PSEUDONYM, IdentifierCategory.LINK)
        return
    collector.add(path, _identifier_kind(identifier, value), IdentifierCategory.DIRECT, value)


def _identifier_kind(identifier: Mapping[str, Any], value: str) -> IdentifierKind:
    if _looks_like_rrn(value):
        return IdentifierKind.RESIDENT_REGISTRATION_NUMBER
    codings = _list((identifier.get("type") or {}).get("coding"))
    for coding in codings:
        kind = _IDENTIFIER_TYPE_KINDS.get(str(coding.get("code", "")))
        if kind is not None:
            return kind
        if str(coding.get("code", "")).startswith("NN"):
            return IdentifierKind.NATIONAL_IDENTIFIER
    return _IDENTIFIER_SYSTEM_KINDS.get(str(identifier.get("system", "")), IdentifierKind.IDENTIFIER)


def _scan_dates(person: Mapping[str, Any], path: str, collector: _Collector) -> None:
    if _more_precise_than_year(person.get("birthDate")):
        collector.add(f"{path}.birthDate", IdentifierKind.BIRTH_DATE, IdentifierCategory.QUASI)
    if _more_precise_than_year(person.get("deceasedDateTime")):
        collector.add(f"{path}.deceasedDateTime", IdentifierKind.DEATH_DATE, IdentifierCategory.QUASI)
    birth_date_extensions = _list((person.get("_birthDate") or {}).get("extension"))
    for index, extension in enumerate(birth_date_extensions):
        if extension.get("url") == _BIRTH_TIME:
            collector.add(f"{path}._birthDate.extension[{index}]", IdentifierKind.BIRTH_DATE, IdentifierCategory.QUASI)


def _scan_person_extensions(person: Mapping[str, Any], path: str, collector: _Collector) -> None:
    for index, extension in enumerate(_list(person.get("extension"))):
        location = f"{path}.extension[{index}]"
        if extension.get("url") == _MOTHERS_MAIDEN_NAME and _text(extension.get("valueString")):
            collector.add(location, IdentifierKind.NAME, IdentifierCategory.DIRECT, extension["valueString"])
        elif extension.get("url") == _BIRTH_PLACE and isinstance(extension.get("valueAddress"), Mapping):
            _scan_address(extension["valueAddress"], f"{location}.valueAddress", collector)


def _scan_narrative(person: Mapping[str, Any], path: str, collector: _Collector) -> None:
    div = (person.get("text") or {}).get("div")
    if not isinstance(div, str) or not collector.echo_values:
        return
    narrative = html.unescape(_HTML_TAG.sub(" ", div)).casefold()
    echoed = {kind for value, kind in collector.echo_values.items() if value in narrative}
    for kind in sorted(echoed):
        collector.add(f"{path}.text.div", kind, IdentifierCategory.DIRECT)


def _looks_like_rrn(value: str) -> bool:
    # About one keyed pseudonym in 2,000 has 13 hex digits in a row that
    # happen to form a valid-looking RRN, so pseudonyms are exempt.
    return not is_pseudonym(value) and contains_rrn(value)


def _more_precise_than_year(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and not _YEAR_ONLY.match(value)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
