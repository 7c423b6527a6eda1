"""Clinical dates of FHIR resources and of partial FHIR dates.

The dataset's date range covers when care happened: encounters, observations,
procedures, immunizations, conditions, reports, prescriptions and claims.
Birth dates, `meta.lastUpdated` and the dates a record was written are left
out, because they tell nothing about the period the data covers.
"""

import calendar
import re
from collections.abc import Mapping
from datetime import date
from typing import Any

# Top-level elements per resource type that hold a clinical date, a dateTime or a Period.
CLINICAL_DATE_ELEMENTS: Mapping[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("onsetDateTime", "onsetPeriod"),
    "CarePlan": ("period",),
    "CareTeam": ("period",),
    "Claim": ("billablePeriod",),
    "Condition": ("onsetDateTime", "onsetPeriod", "abatementDateTime", "abatementPeriod"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod"),
    "Encounter": ("period",),
    "EpisodeOfCare": ("period",),
    "ExplanationOfBenefit": ("billablePeriod",),
    "ImagingStudy": ("started",),
    "Immunization": ("occurrenceDateTime",),
    "Media": ("createdDateTime", "createdPeriod"),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod"),
    "MedicationDispense": ("whenHandedOver",),
    "MedicationRequest": ("authoredOn",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod"),
    "Observation": ("effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    "Procedure": ("performedDateTime", "performedPeriod"),
    "ServiceRequest": ("occurrenceDateTime", "occurrencePeriod", "authoredOn"),
    "Specimen": ("receivedTime",),
}

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def clinical_date_bounds(resource: Mapping[str, Any]) -> tuple[date, date] | None:
    """Return the earliest and latest clinical day of a resource, or None if it has none."""
    days: list[date] = []
    for element in CLINICAL_DATE_ELEMENTS.get(str(resource.get("resourceType")), ()):
        value = resource.get(element)
        if isinstance(value, Mapping):
            days += _period_days(value)
        elif isinstance(value, str):
            days += _day_bounds(value)
    return (min(days), max(days)) if days else None


def _period_days(period: Mapping[str, Any]) -> list[date]:
    days = []
    if isinstance(period.get("start"), str):
        days += _day_bounds(period["start"])[:1]
    if isinstance(period.get("end"), str):
        days += _day_bounds(period["end"])[1:]
    return days


def _day_bounds(value: str) -> list[date]:
    """Return the first and last day that a FHIR date or dateTime can mean.

    "2015" means 2015-01-01 to 2015-12-31, "2015-02" the days of February. A
    dateTime counts on its calendar day as written, in its own time zone.
    """
    match = _PARTIAL_DATE.match(value)
    if match is None:
        return []
    year, month, day = (int(part) if part else None for part in match.groups())
    try:
        if month is None:
            return [date(year, 1, 1), date(year, 12, 31)]
        if day is None:
            return [date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])]
        return [date(year, month, day), date(year, month, day)]
    except ValueError:
        return []
