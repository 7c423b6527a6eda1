"""Checks that keep direct patient identifiers and naive times off the bus.

Every payload model runs `reject_personal_data` before field validation, so a
producer cannot publish and a consumer cannot accept a payload that carries a
Korean resident registration number (RRN) or a field whose name marks it as a
raw patient identifier.
"""

import re
import unicodedata
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from medgov_shared.contracts.pseudonym import is_pseudonym

# An RRN is YYMMDD-GNNNNNN where G (1-8) encodes century and sex; the hyphen is
# often dropped, or typed as a dash or a full-width hyphen by a Korean input
# method. Requiring a plausible month and day keeps order numbers and
# timestamps from matching. The number must not touch a Latin letter or digit
# on either side: a hex id or digest (a UUID without hyphens, a SHA-256) often
# holds 13 digits in a row, while an RRN in text stands apart from them
# (Hangul next to it still matches). Between the two parts the pattern takes
# an optional dash of any kind, with up to three white-space or invisible
# characters (soft hyphen, zero-width space) on either side of it. Use
# contains_rrn, which also reads the decimal digits of other scripts.
_GAP = r"[\s\u00ad\u200b-\u200d\u2060\ufeff]{0,3}"
RRN_PATTERN = re.compile(
    r"(?<![0-9A-Za-z])\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])"
    + _GAP + r"[-\u2010-\u2015\u2212\ufe63\uff0d]?" + _GAP
    + r"[1-8]\d{6}(?![0-9A-Za-z])"
)

_RRN_DIGITS = 13

# Every decimal digit of the Basic Multilingual Plane (Arabic-Indic, Devanagari,
# full-width and so on) as its ASCII digit.
_ASCII_DIGITS = {
    code: str(unicodedata.decimal(chr(code)))
    for code in range(0x80, 0x10000)
    if unicodedata.category(chr(code)) == "Nd"
}

# Escapes such as \t or \xa0 that a message shows in place of a character (Python's repr).
_ESCAPE_IN_MESSAGE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[tnrfv])")


def _comparable(text: str) -> str:
    # NFKC turns full-width digits and hyphens into ASCII; the table does the other digits.
    return unicodedata.normalize("NFKC", text).translate(_ASCII_DIGITS)


# In ASCII text an RRN starts with six ASCII digits in a row. Searching for
# them first is about ten times faster than RRN_PATTERN on text without any,
# because RRN_PATTERN tries its look-behind at every position.
_SIX_DIGITS = re.compile(r"[0-9]{6}")


def contains_rrn(text: str) -> bool:
    """Tell whether `text` contains an RRN-shaped number, in any script's decimal digits."""
    if len(text) < _RRN_DIGITS:
        return False
    if not text.isascii():
        text = _comparable(text)
        if not text.isascii():
            return RRN_PATTERN.search(text) is not None
    digits = _SIX_DIGITS.search(text)
    # Searching from `digits` keeps the text before it, which RRN_PATTERN's look-behind examines.
    return digits is not None and RRN_PATTERN.search(text, digits.start()) is not None


def redact_personal_data(text: str) -> str:
    """Return `text` with every RRN-shaped number replaced, for error messages that quote input.

    A character that the message shows as an escape (a tab as \\t) counts as a
    space. A message without such a number comes back unchanged.
    """
    comparable = _ESCAPE_IN_MESSAGE.sub(" ", text)
    if not comparable.isascii():
        comparable = _comparable(comparable)
    if RRN_PATTERN.search(comparable) is None:
        return text
    return RRN_PATTERN.sub("[RRN removed]", comparable)


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


# A path is rendered only for an error message, so the walk passes it as
# linked (parent, segment) pairs instead of building a string per node. This
# check runs on every field of every event, in and out.
LinkedPath = tuple[Any, str | int] | None


def render_path(path: LinkedPath) -> str:
    """Render a linked path as field names and list indexes: `a.b[0].c`."""
    segments: list[str | int] = []
    while path is not None:
        path, segment = path
        segments.append(segment)
    text = ""
    for segment in reversed(segments):
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text = f"{text}.{segment}" if text else segment
    return text


def _name_of(key: Any) -> str:
    name = str(key)
    if "." in name or "[" in name:
        name = name.rsplit(".", 1)[-1].split("[", 1)[0]
    return name.lower()


# Types of JSON values. A value of one of them is no model, and the walks
# skip the isinstance test, which is slow for a model class (an ABC).
_JSON_TYPES = frozenset({str, int, float, bool, type(None), dict, list})


def _check_personal(value: Any, path: LinkedPath, name: str, naive: bool) -> None:
    # With `naive` True the same walk also rejects datetimes without a time zone.
    if type(value) not in _JSON_TYPES:
        if isinstance(value, BaseModel):  # a payload built in Python nests models
            value = value.model_dump()
        elif naive and isinstance(value, datetime):
            _require_zone(value, path)
            return
    if path is not None and name in RAW_IDENTIFIER_FIELDS and isinstance(value, (str, int, dict, list)):
        raise PersonalDataError(
            f"field '{render_path(path)}' is a raw patient identifier; send the keyed pseudonym "
            "in 'subject' instead"
        )
    if isinstance(value, str):
        # A keyed pseudonym's hex digest can contain 13 digits that look like an RRN.
        if len(value) >= _RRN_DIGITS and contains_rrn(value) and not is_pseudonym(value):
            raise PersonalDataError(
                f"field '{render_path(path)}' contains what looks like a Korean resident registration "
                "number; remove it before publishing"
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            key_text = key if type(key) is str else str(key)
            if len(key_text) >= _RRN_DIGITS and contains_rrn(key_text) and not is_pseudonym(key_text):
                # The message names the parent only, because the key itself is the number.
                raise PersonalDataError(
                    f"a field name in '{render_path(path) or 'the payload'}' contains what looks like a Korean "
                    "resident registration number; remove it before publishing"
                )
            _check_personal(item, (path, key_text), _name_of(key), naive)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_personal(item, (path, index), name, naive)  # a list item is named by the field that contains the list


def _check_naive(value: Any, path: LinkedPath) -> None:
    if type(value) not in _JSON_TYPES and isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, datetime):
        _require_zone(value, path)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_naive(item, (path, str(key)))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_naive(item, (path, index))


def _require_zone(value: datetime, path: LinkedPath) -> None:
    if value.tzinfo is None:
        raise ValueError(f"field '{render_path(path)}' is a naive datetime; give a time zone (UTC expected)")


def _root(root: str) -> tuple[LinkedPath, str]:
    return ((None, root), _name_of(root)) if root else (None, "")


def reject_personal_data(value: Any, root: str = "", *, naive_datetimes: bool = False) -> None:
    """Raise PersonalDataError if `value` holds an RRN or a raw identifier field.

    With `naive_datetimes` the same walk also raises ValueError for a datetime
    without a time zone, as `reject_naive_datetimes` would, at the cost of one walk instead of two.
    """
    _check_personal(value, *_root(root), naive_datetimes)


def reject_naive_datetimes(value: Any, root: str = "") -> None:
    """Raise ValueError naming the first datetime without a time zone."""
    _check_naive(value, _root(root)[0])
