"""The normalized consent policy and the data-use request it is evaluated against.

A policy is a tree of provisions, the shape of FHIR R4 `Consent.provision`:
each provision permits or denies the uses that meet all of its conditions, and
its nested provisions are exceptions that apply only inside those conditions.
A condition set to None does not restrict; an empty set matches nothing.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Literal

from medgov_shared.contracts.types import LegalBasis

from medgov_consent.domain.duo import PurposeCondition, requested_purposes

# Korea has observed no daylight saving time since 1988, so a fixed offset
# reads Korean dates correctly without the operating system's time zone data.
KOREA_STANDARD_TIME = timezone(timedelta(hours=9), "KST")


class Decision(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


@dataclass(frozen=True)
class Period:
    """A time window in UTC; `start` is inclusive, `end` exclusive, either may be open."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for moment in (self.start, self.end):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("period bounds must be timezone-aware")
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError(f"period start {self.start.isoformat()} is not before its end {self.end.isoformat()}")

    def contains(self, moment: datetime) -> bool:
        after_start = self.start is None or self.start <= moment
        before_end = self.end is None or moment < self.end
        return after_start and before_end

    # NOTE: clinical dates carry no time zone, so these two compare whole UTC
    # days. A window bound read in Korea Standard Time can be 9 hours off.
    def covers_dates(self, first: date, last: date) -> bool:
        """Tell whether every day from `first` to `last` lies in the window."""
        first_instant, after_last = _day_bounds(first, last)
        after_start = self.start is None or self.start <= first_instant
        before_end = self.end is None or after_last <= self.end
        return after_start and before_end

    def overlaps_dates(self, first: date, last: date) -> bool:
        """Tell whether some day from `first` to `last` lies in the window."""
        first_instant, after_last = _day_bounds(first, last)
        starts_in_time = self.end is None or first_instant < self.end
        ends_in_time = self.start is None or self.start < after_last
        return starts_in_time and ends_in_time

    def describe(self) -> str:
        start = self.start.isoformat() if self.start else "open"
        end = self.end.isoformat() if self.end else "open"
        return f"{start} until {end}"


def _day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    return datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)


class DataClassKind(StrEnum):
    RESOURCE_TYPE = "resource"  # a FHIR resource type, e.g. MedicationRequest
    MEDIA_TYPE = "media"  # an IANA media type, e.g. application/dicom


@dataclass(frozen=True, order=True)
class DataClass:
    kind: DataClassKind
    code: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.code}"


@dataclass(frozen=True)
class Provision:
    """One permit or deny rule of a policy.

    `path` is the FHIR path of the provision (`provision.provision[1]`), so a
    decision can name the rule that made it. `inapplicable` explains why the
    provision can never apply to research use on this platform, for example a
    treatment-only purpose. Such a provision and its nested ones match nothing.
    """

    decision: Decision
    path: str = "provision"
    period: Period | None = None
    purposes: PurposeCondition | None = None
    dataset_ids: frozenset[str] | None = None
    holder_ids: frozenset[str] | None = None
    recipient_ids: frozenset[str] | None = None
    data_classes: frozenset[DataClass] | None = None
    content_codes: frozenset[str] | None = None
    data_period: Period | None = None
    inapplicable: str | None = None
    provisions: tuple["Provision", ...] = ()

    def walk(self) -> Iterator["Provision"]:
        yield self
        for child in self.provisions:
            yield from child.walk()


@dataclass(frozen=True)
class ConsentPolicy:
    """A consent as the platform evaluates it.

    `given_at` is when the subject gave it (FHIR `Consent.dateTime`), if known.
    `notes` lists what the reader found that the platform does not evaluate.
    """

    root: Provision
    source: Literal["fhir", "dashboard"]
    fhir_id: str | None = None
    given_at: datetime | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetContent:
    """The catalog's findings in a dataset's files: classes of data, coded content and clinical dates."""

    data_classes: frozenset[DataClass] = frozenset()
    content_codes: frozenset[str] = frozenset()
    date_start: date | None = None
    date_end: date | None = None


@dataclass(frozen=True)
class DatasetTerms:
    """A dataset with the facts consent evaluation needs.

    `content` is None until the catalog's registration of the dataset arrives.
    Until then, permits restricted by data class or content do not apply, and
    denies restricted that way do.
    """

    dataset_id: str
    holder_id: str
    duo_codes: tuple[str, ...] = ()
    legal_basis: LegalBasis = LegalBasis.PSEUDONYMIZED_RESEARCH
    content: DatasetContent | None = None
    withdrawn: bool = False
    title: str = ""


@dataclass(frozen=True)
class UseRequest:
    """One data use to decide on: a grant's purposes, on one dataset, for one recipient, at one instant."""

    purposes: tuple[str, ...]
    dataset: DatasetTerms
    recipient_id: str
    recipient_for_profit: bool
    at: datetime
    research_purposes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("request time must be timezone-aware")
        object.__setattr__(self, "research_purposes", requested_purposes(self.purposes))
