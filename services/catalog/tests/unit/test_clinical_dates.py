"""Clinical date range of FHIR resources, partial dates included."""

from datetime import date

import pytest

from medgov_catalog.domain.clinical_dates import clinical_date_bounds


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        ({"resourceType": "Observation", "effectiveDateTime": "2015"}, (date(2015, 1, 1), date(2015, 12, 31))),
        ({"resourceType": "Observation", "effectiveDateTime": "2016-02"}, (date(2016, 2, 1), date(2016, 2, 29))),
        ({"resourceType": "Immunization", "occurrenceDateTime": "2020-05-06T23:30:00-05:00"}, (date(2020, 5, 6), date(2020, 5, 6))),
        ({"resourceType": "Encounter", "period": {"start": "2013-01-20", "end": "2013-02-01"}}, (date(2013, 1, 20), date(2013, 2, 1))),
        ({"resourceType": "Encounter", "period": {"start": "2013"}}, (date(2013, 1, 1), date(2013, 1, 1))),
        ({"resourceType": "Patient", "birthDate": "1970-01-01"}, None),
        ({"resourceType": "Observation", "effectiveDateTime": "not a date"}, None),
        ({"resourceType": "Observation", "effectiveDateTime": "2015-13-40"}, None),
    ],
)
def test_clinical_date_bounds(resource, expected):
    assert clinical_date_bounds(resource) == expected
