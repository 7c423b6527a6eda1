"""Value types shared by the event payloads."""

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints


class Region(StrEnum):
    DAEGU = "daegu"
    DAEJEON = "daejeon"
    GWANGJU = "gwangju"


class DataEnvironment(StrEnum):
    FEDERATED_LEARNING = "federated_learning"
    SECURE_ENCLAVE = "secure_enclave"
    PSEUDONYMIZED_EXTRACT = "pseudonymized_extract"


class LegalBasis(StrEnum):
    """Legal basis under PIPA for processing the dataset."""

    CONSENT = "consent"
    PSEUDONYMIZED_RESEARCH = "pseudonymized_research"
    ANONYMOUS = "anonymous"


class Board(StrEnum):
    IRB = "IRB"
    DRB = "DRB"


class Vote(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REVISE = "revise"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# asyncpg writes these two instants as -infinity and infinity and reads them
# back without a time zone, so they cannot be stored as times.
EARLIEST_INSTANT = datetime.min.replace(tzinfo=UTC)
LATEST_INSTANT = datetime.max.replace(tzinfo=UTC)

_NUMBER = re.compile(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*")


def storable_instant(value: datetime) -> datetime:
    """Return an aware datetime in UTC; raise ValueError when it falls outside what the databases store."""
    try:
        instant = value.astimezone(UTC)
    except OverflowError:
        # pydantic reports a ValueError as a validation error, but lets an OverflowError through.
        raise ValueError(f"{value.isoformat()} falls outside years 1 to 9999 in UTC") from None
    if instant <= EARLIEST_INSTANT or instant >= LATEST_INSTANT:
        raise ValueError(f"{value.isoformat()} is an end of years 1 to 9999 in UTC, which the databases cannot store as a time")
    return instant


def _reject_numbers(value: Any) -> Any:
    # pydantic would read a number, or a string of digits, as seconds since 1970.
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError(f"expected an ISO 8601 time with a zone, such as 2026-12-05T10:00:00+09:00, got {value!r}")
    return value


# Every timestamp on the bus is timezone-aware and normalized to UTC.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_reject_numbers), AfterValidator(storable_instant)]

InstitutionId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$"),
    Field(description="Registered institution id (lower-case, used in topic names).", examples=["knuh"]),
]

# GA4GH Data Use Ontology codes, e.g. GRU, HMB, DS:<disease>, NCU, IRB.
DuoCode = Annotated[
    str,
    StringConstraints(pattern=r"^(GRU|HMB|DS(:[A-Za-z0-9._-]+)?|POA|NRES|NCU|NPU|NMDS|GSO|IRB|RS(:[A-Za-z0-9._-]+)?|PUB|COL|RTN|TS|GS|IS|PS|US|MOR|NPUNCU|NPOA|CC|DUO:\d{7})$"),
    Field(description="GA4GH Data Use Ontology code.", examples=["HMB"]),
]

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]


def field(description: str, example: Any, **kwargs: Any) -> Any:
    """Declare a payload field with its description and one example (both feed the AsyncAPI doc)."""
    return Field(description=description, examples=[example], **kwargs)
