"""PIPA scan of DICOM data sets, nested sequences and private tags included.

Public attributes are judged by keyword (the patient module attributes of
DICOM PS3.15 Annex E that identify the patient). A private element is
reported when it contains a non-empty text value and its VR is PN, its value
repeats the patient's name or ID from the same data set, or its private
dictionary entry names a patient's name, ID, birth, address or phone (all
direct); any other text element whose entry mentions the patient is a
quasi-identifier. Any text that looks like a Korean resident
registration number is reported wherever free text can hold it.

Empty values and the keyed pseudonym are not direct identifiers: a PatientID
that is a pseudonym is reported as a link, which only anonymous datasets must
not carry.

NOTE: names of physicians and operators (ReferringPhysicianName,
OperatorsName, observer names in SR content) are staff, not data subjects,
and are not reported. Binary values larger than the reader's defer size are
not read, so text hidden in a large private OB element is missed.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

from medgov_shared.contracts.guards import contains_rrn
from medgov_shared.contracts.pseudonym import is_pseudonym
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from medgov_catalog.domain.pipa_scan import IdentifierCategory, IdentifierFinding, IdentifierKind

_DIRECT = IdentifierCategory.DIRECT
_QUASI = IdentifierCategory.QUASI
_LINK = IdentifierCategory.LINK

PATIENT_ATTRIBUTES: dict[str, tuple[IdentifierKind, IdentifierCategory]] = {
    "PatientName": (IdentifierKind.NAME, _DIRECT),
    "PatientID": (IdentifierKind.PATIENT_ID, _DIRECT),
    "OtherPatientIDs": (IdentifierKind.PATIENT_ID, _DIRECT),
    "OtherPatientNames": (IdentifierKind.NAME, _DIRECT),
    "PatientBirthName": (IdentifierKind.NAME, _DIRECT),
    "PatientMotherBirthName": (IdentifierKind.NAME, _DIRECT),
    "PatientAddress": (IdentifierKind.ADDRESS, _DIRECT),
    "PatientTelephoneNumbers": (IdentifierKind.TELECOM, _DIRECT),
    "PatientTelecomInformation": (IdentifierKind.TELECOM, _DIRECT),
    "MedicalRecordLocator": (IdentifierKind.MEDICAL_RECORD_NUMBER, _DIRECT),
    "ResponsiblePerson": (IdentifierKind.NAME, _DIRECT),
    "PatientBirthDate": (IdentifierKind.BIRTH_DATE, _QUASI),
    "PatientBirthTime": (IdentifierKind.BIRTH_DATE, _QUASI),
    "RegionOfResidence": (IdentifierKind.ADDRESS_PART, _QUASI),
    "AccessionNumber": (IdentifierKind.ACCESSION_NUMBER, _LINK),
}

# Values of these attributes must not reappear in private tags.
_ECHOED_ATTRIBUTES = ("PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName")

# Shorter repeated values match too much by chance (an ID like "12" occurs everywhere).
_MIN_ECHO_CHARS = 4

_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
# VRs that can contain free text. Numbers, UIDs, dates and times (DS, IS, UI,
# DA, TM) are left out because their digit runs can look like an RRN.
_FREE_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT", "UN"})
_PRIVATE_IDENTITY_WORDS = re.compile(r"\b(name|id|identifier|birth|address|phone|telephone)\b", re.IGNORECASE)
_AGE_OVER_89 = re.compile(r"^(09\d|[1-9]\d\d)Y$")
_PERSON_NAME_SEPARATORS = " ^="


def scan_dicom_dataset(dataset: Dataset, file: str) -> list[IdentifierFinding]:
    """Return the identifying values in a DICOM data set (or a DICOMDIR)."""
    echoes = _identifying_values(dataset)
    findings = []
    for element, location in _elements(dataset, ""):
        findings += _judge_element(element, location, echoes, file)
    return findings


@dataclass(frozen=True)
class _Value:
    text: str

    @property
    def present(self) -> bool:
        return bool(self.text.strip(_PERSON_NAME_SEPARATORS + "\x00"))


def _elements(dataset: Dataset, prefix: str) -> Iterator[tuple[DataElement, str]]:
    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if _is_deferred_binary(raw):
            continue
        element = dataset[tag]
        location = _location(element, prefix)
        if element.VR == "SQ":
            keyword = element.keyword or str(element.tag)
            for index, item in enumerate(element.value or []):
                yield from _elements(item, f"{prefix}{keyword}[{index}].")
        else:
            yield element, location


def _is_deferred_binary(raw: DataElement | RawDataElement | None) -> bool:
    # Reading a deferred OB/OW value would pull pixel data or other large
    # binary blocks into memory; those are skipped.
    return isinstance(raw, RawDataElement) and raw.value is None and raw.VR not in _TEXT_VRS and raw.VR != "SQ"


def _location(element: DataElement, prefix: str) -> str:
    if element.tag.is_private:
        creator = getattr(element, "private_creator", None) or "unknown creator"
        return f"{prefix}{_tag_text(element.tag)} {creator} {element.name}"
    return f"{prefix}{element.keyword or 'unknown'} {_tag_text(element.tag)}"


def _tag_text(tag: BaseTag) -> str:
    return f"({tag.group:04X},{tag.element:04X})"


def _judge_element(element: DataElement, location: str, echoes: frozenset[str], file: str) -> list[IdentifierFinding]:
    value = _Value(_text_of(element))
    if not value.present:
        return []
    if element.VR in _FREE_TEXT_VRS and _looks_like_rrn(value.text):
        return [IdentifierFinding(file, location, IdentifierKind.RESIDENT_REGISTRATION_NUMBER, _DIRECT)]
    if element.tag.is_private:
        return _judge_private(element, value, location, echoes, file)
    return _judge_public(element, value, location, file)


def _judge_public(element: DataElement, value: _Value, location: str, file: str) -> list[IdentifierFinding]:
    if element.keyword == "PatientAge" and _AGE_OVER_89.match(value.text.strip()):
        return [IdentifierFinding(file, location, IdentifierKind.AGE_OVER_89, _QUASI)]
    rule = PATIENT_ATTRIBUTES.get(element.keyword)
    if rule is None:
        return []
    kind, category = rule
    if category == _DIRECT and all(is_pseudonym(part) for part in _parts(value.text)):
        kind, category = IdentifierKind.PSEUDONYM, _LINK
    return [IdentifierFinding(file, location, kind, category)]


def _judge_private(
    element: DataElement, value: _Value, location: str, echoes: frozenset[str], file: str
) -> list[IdentifierFinding]:
    if _is_private_creator(element.tag) or element.VR not in _TEXT_VRS | {"UN"}:
        return []
    description = element.name
    about_patient = "patient" in description.lower()
    repeats_identifier = any(echo in value.text.casefold() for echo in echoes)
    if element.VR == "PN" or repeats_identifier or (about_patient and _PRIVATE_IDENTITY_WORDS.search(description)):
        return [IdentifierFinding(file, location, IdentifierKind.PRIVATE_TAG, _DIRECT)]
    if about_patient:
        return [IdentifierFinding(file, location, IdentifierKind.PRIVATE_TAG, _QUASI)]
    return []


def _looks_like_rrn(text: str) -> bool:
    # A keyed pseudonym has a one-in-2,000 chance of holding an RRN-shaped digit run.
    return contains_rrn(text) and not all(is_pseudonym(part) for part in _parts(text))


def _is_private_creator(tag: BaseTag) -> bool:
    return 0x0010 <= tag.element <= 0x00FF


def _identifying_values(dataset: Dataset) -> frozenset[str]:
    values = set()
    for keyword in _ECHOED_ATTRIBUTES:
        element = dataset.get(keyword)
        if element is None:
            continue
        for part in _parts(_text_of(dataset[keyword])):
            if len(part) >= _MIN_ECHO_CHARS and not is_pseudonym(part):
                values.add(part.casefold())
    return frozenset(values)


def _parts(text: str) -> list[str]:
    # "Doe^Archibald" yields "Doe^Archibald" itself and each component.
    whole = text.strip(_PERSON_NAME_SEPARATORS)
    components = [part.strip() for part in re.split(r"[\\^=]", whole) if part.strip()]
    return [whole, *components] if whole else []


def _text_of(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        # Private elements of unknown VR arrive as UN bytes; Latin-1 keeps
        # every byte so that ASCII digits and names stay searchable.
        return value.decode("latin-1")
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(item) for item in value)
    return str(value)
