"""What the projections take from the catalog's events, without a database."""

from datetime import date

from medgov_shared.contracts.events.catalog import DatasetDescription, DatasetFigures, DatasetRegistered

from medgov_consent.domain.policy import DataClass, DataClassKind
from medgov_consent.repository.projections import content_of, is_for_profit

from .conftest import T0


def registration() -> DatasetRegistered:
    return DatasetRegistered(
        dataset_id="ds-knuh-synthea-0001",
        version=1,
        institution_id="knuh",
        region="daegu",
        description=DatasetDescription(
            title="Synthea bulk export", description="FHIR NDJSON", publisher="knuh", themes=("HEAL",), keywords=(),
            access_rights="restricted", duo_codes=("HMB",), legal_basis="pseudonymized_research",
            contact_point="data-office@knuh.example", distribution_formats=("application/fhir+ndjson",),
        ),
        figures=DatasetFigures(
            resource_counts={"Patient": 13, "Immunization": 161}, subject_count=13, record_count=174,
            condition_codes=("http://snomed.info/sct|44054006",), observation_codes=("http://loinc.org|8302-2",),
            modalities=(), body_parts=(), study_count=0, series_count=0, instance_count=0, character_sets=(),
            date_start="1947-05-02", date_end="2020-03-11",
        ),
        completeness_score=90,
        registered_at=T0,
    )


def test_content_of_registration() -> None:
    content = content_of(registration())

    assert content.data_classes == frozenset(
        {
            DataClass(DataClassKind.RESOURCE_TYPE, "Patient"),
            DataClass(DataClassKind.RESOURCE_TYPE, "Immunization"),
            DataClass(DataClassKind.MEDIA_TYPE, "application/fhir+ndjson"),
        }
    )
    assert content.content_codes == frozenset({"http://snomed.info/sct|44054006", "http://loinc.org|8302-2"})
    assert content.date_start == date(1947, 5, 2)
    assert content.date_end == date(2020, 3, 11)


def test_for_profit_institutions() -> None:
    assert is_for_profit("vendor-medvision") is True
    assert is_for_profit("knuh") is False
    assert is_for_profit("dgmif") is False
    assert is_for_profit("not-registered") is True
