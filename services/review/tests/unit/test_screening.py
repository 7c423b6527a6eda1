"""Screening: invalid values are rejected, missing items are listed all at once."""

from dataclasses import fields, replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_review.domain.errors import (
    DatasetWithdrawn,
    InvalidPeriod,
    PersonalDataInText,
    UnknownDataset,
    UnknownInstitution,
)
from medgov_review.domain.screening import ApplicationDraft, screen

from .conftest import CNUH_MR, DSMC_LAB, JNUH_XR, KNUH_CT, T0, WITHDRAWN, Catalog, complete_draft

ALL_ITEMS = [
    "applicant_institution",
    "principal_investigator",
    "title",
    "purpose_text",
    "purpose_codes",
    "dataset_ids",
    "requested_start",
    "requested_end",
    "data_environment",
    "irb_document_ref",
]


def test_complete_draft_passes(catalog: Catalog) -> None:
    result = screen(complete_draft(), catalog, T0)

    assert result.complete
    assert result.missing == ()
    assert result.content is not None
    assert result.content.dataset_ids == (KNUH_CT.dataset_id,)


def test_empty_draft_lists_every_item(catalog: Catalog) -> None:
    result = screen(ApplicationDraft(), catalog, T0)

    assert not result.complete
    assert [item.item for item in result.missing] == ALL_ITEMS
    assert all(item.explanation for item in result.missing)


def test_blank_text_counts_as_missing(catalog: Catalog) -> None:
    result = screen(complete_draft(principal_investigator="   ", irb_document_ref=""), catalog, T0)

    assert [item.item for item in result.missing] == ["principal_investigator", "irb_document_ref"]


@pytest.mark.parametrize(
    ("codes", "hint"),
    [
        (("NCU", "PUB"), "at least one GA4GH DUO purpose term"),
        (("DS",), "name the disease"),
        ((), "at least one GA4GH DUO purpose term"),
    ],
)
def test_uncoded_purpose_is_missing(catalog: Catalog, codes: tuple[str, ...], hint: str) -> None:
    result = screen(complete_draft(purpose_codes=codes), catalog, T0)

    assert [item.item for item in result.missing] == ["purpose_codes"]
    assert hint in result.missing[0].explanation


def test_numeric_duo_purpose_counts_as_coded(catalog: Catalog) -> None:
    assert screen(complete_draft(purpose_codes=("DUO:0000006",)), catalog, T0).complete


def test_unknown_datasets_are_all_named(catalog: Catalog) -> None:
    draft = complete_draft(dataset_ids=(KNUH_CT.dataset_id, "ds-nope-1", "ds-nope-2"))

    with pytest.raises(UnknownDataset) as caught:
        screen(draft, catalog, T0)

    assert caught.value.details["dataset_ids"] == ["ds-nope-1", "ds-nope-2"]
    assert "ds-nope-1, ds-nope-2" in caught.value.message


def test_withdrawn_dataset_is_rejected(catalog: Catalog) -> None:
    with pytest.raises(DatasetWithdrawn, match=WITHDRAWN.dataset_id):
        screen(complete_draft(dataset_ids=(WITHDRAWN.dataset_id,)), catalog, T0)


def test_unknown_institution_is_rejected(catalog: Catalog) -> None:
    with pytest.raises(UnknownInstitution, match="vendor-unknown"):
        screen(complete_draft(applicant_institution="vendor-unknown"), catalog, T0)


def test_expiry_before_start_is_rejected(catalog: Catalog) -> None:
    draft = complete_draft(requested_start=date(2027, 6, 1), requested_end=date(2027, 5, 31))

    with pytest.raises(InvalidPeriod, match="before requested_start"):
        screen(draft, catalog, T0)


def test_period_that_already_ended_is_rejected(catalog: Catalog) -> None:
    draft = complete_draft(requested_start=date(2026, 1, 1), requested_end=date(2026, 12, 3))

    with pytest.raises(InvalidPeriod, match="in the past"):
        screen(draft, catalog, T0)


def test_one_day_period_is_valid(catalog: Catalog) -> None:
    draft = complete_draft(requested_start=date(2026, 12, 4), requested_end=date(2026, 12, 4))

    assert screen(draft, catalog, T0).complete


def test_invalid_value_wins_over_missing_items(catalog: Catalog) -> None:
    draft = ApplicationDraft(dataset_ids=("ds-nope",))

    with pytest.raises(UnknownDataset):
        screen(draft, catalog, T0)


def test_repeated_ids_and_codes_are_merged(catalog: Catalog) -> None:
    draft = complete_draft(
        dataset_ids=(KNUH_CT.dataset_id, CNUH_MR.dataset_id, KNUH_CT.dataset_id), purpose_codes=("HMB", "HMB")
    )

    content = screen(draft, catalog, T0).content

    assert content is not None
    assert content.dataset_ids == (KNUH_CT.dataset_id, CNUH_MR.dataset_id)
    assert content.purpose_codes == ("HMB",)


_EMPTY = {field.name: field.default for field in fields(ApplicationDraft)}


@given(st.sets(st.sampled_from(ALL_ITEMS)))
def test_missing_items_are_exactly_the_removed_fields(removed: set[str]) -> None:
    catalog = {item.dataset_id: item for item in (KNUH_CT, CNUH_MR, DSMC_LAB, JNUH_XR)}
    draft = replace(complete_draft(), **{name: _EMPTY[name] for name in removed})

    result = screen(draft, catalog, T0)

    assert {item.item for item in result.missing} == removed
    assert result.complete is (not removed)


def test_resident_number_in_text_is_rejected(catalog: Catalog) -> None:
    draft = complete_draft(purpose_text="Cohort includes 900101-1234567")

    with pytest.raises(PersonalDataInText, match="purpose_text"):
        screen(draft, catalog, T0)
