"""Checks that keep direct patient identifiers and naive times off the bus.

Every payload model runs `reject_personal_data` before field validation, so a
producer cannot publish and a consumer cannot accept a payload that carries a
Korean resident registration number (RRN) or a field whose name marks it as a
raw patient identifier.
"""

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from medgov_shared.contracts.pseudonym import is_pseudonym

# An RRN is YYMMDD-GNNNNNN where G (1-8) encodes century and sex; the hyphen is
# often dropped. Requiring a plausible month and day keeps order numbers and
# timestamps from matching. The number must not touch a Latin letter or digit
# on either side: a hex id or digest (a UUID without hyphens, a SHA-256) often
# holds 13 digits in a row, while an RRN in text stands apart from them
# (Hangul next to it still matches).
RRN_PATTERN = re.compile(
    r"(?<![0-9A-Za-z])\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])[-\s]?[1-8]\d{6}(?![0-9A-Za-z])"
)

# Field names that only ever hold a raw identifier of a patient. Payloads
# carry the keyed pseudonym in fields named `subject` or `subjects` instead.
RAW_IDENTIFIER_FIELDS = frozenset(
    {
        "patient_id",
        "patientid",
        "patient_name",
        "patientname",
        "patient_birth_date",
        "birth_date",
        "birthdate",
        "date_of_birth",
        "mrn",
        "medical_record_number",
        "rrn",
        "resident_registration_number",
        "jumin",
        "jumin_number",
        "ssn",
        "social_security_number",
        "patient_phone",
        "patient_email",
        "patient_address",
    }
)


class PersonalDataError(ValueError):
    """Raised when a payload carries a direct identifier; the message names the field path."""


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, BaseModel):  # a payload built in Python nests models, not dicts
        value = value.model_dump()
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def _field_name(path: str) -> str:
    return path.rsplit(".", 1)[-1].split("[", 1)[0].lower()


def reject_personal_data(value: Any, root: str = "") -> None:
    """Raise PersonalDataError if `value` holds an RRN or a raw identifier field."""
    for path, item in _walk(value, root):
        if path and isinstance(item, (str, int, dict, list)) and _field_name(path) in RAW_IDENTIFIER_FIELDS:
            raise PersonalDataError(
                f"field '{path}' is a raw patient identifier; send the keyed pseudonym "
                "in 'subject' instead"
            )
        # A keyed pseudonym's hex digest can contain 13 digits that look like an RRN.
        if isinstance(item, str) and not is_pseudonym(item) and RRN_PATTERN.search(item):
            raise PersonalDataError(
                f"field '{path}' contains what looks like a Korean resident registration "
                "number; remove it before publishing"
            )


def reject_naive_datetimes(value: Any, root: str = "") -> None:
    """Raise ValueError naming the first datetime without a time zone."""
    for path, item in _walk(value, root):
        if isinstance(item, datetime) and item.tzinfo is None:
            raise ValueError(f"field '{path}' is a naive datetime; give a time zone (UTC expected)")
        if isinstance(item, date) and not isinstance(item, datetime):
            continue
