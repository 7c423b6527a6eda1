"""Purpose matching: the coded purpose against each dataset's DUO terms, with explanations."""

import pytest

from medgov_shared.contracts.types import Region

from medgov_review.domain.purpose import DatasetTerms, DuoTerm, FindingKind, Purpose, match_purpose

from .conftest import synthea_condition_codes

HOSPITAL = False
VENDOR = True


def dataset(*codes: str, dataset_id: str = "ds-knuh-ct-0001") -> DatasetTerms:
    return DatasetTerms(dataset_id, 1, "knuh", Region.DAEGU, "CT", codes)


def findings(
    purpose_codes: tuple[str, ...], dataset_codes: tuple[str, ...], for_profit: bool = HOSPITAL
) -> list[tuple[str, FindingKind]]:
    report = match_purpose(Purpose(purpose_codes, for_profit), [dataset(*dataset_codes)])
    return [(item.term, item.kind) for item in report.findings]


@pytest.mark.parametrize(
    ("purpose", "permission", "conflict"),
    [
        ("HMB", "HMB", False),
        ("DS:C34", "HMB", False),
        ("GRU", "HMB", True),
        ("POA", "HMB", True),
        ("HMB", "GRU", False),
        ("POA", "GRU", False),
        ("GRU", "NRES", False),
        ("DS:C34", "DS:C34", False),
        ("ds:c34", "DS:C34", False),
        ("DS:C50", "DS:C34", True),
        ("HMB", "DS:C34", True),
        ("POA", "POA", False),
        ("HMB", "POA", True),
        ("DUO:0000006", "DUO:0000006", False),
        ("DUO:0000042", "DUO:0000006", True),
    ],
)
def test_permission_matching(purpose: str, permission: str, conflict: bool) -> None:
    result = findings((purpose,), (permission,))

    assert result == ([(purpose, FindingKind.CONFLICT)] if conflict else [])


def test_every_purpose_term_must_be_permitted() -> None:
    # HMB is broader than the dataset's disease, even when DS:C34 alone would fit.
    assert findings(("HMB", "DS:C34"), ("DS:C34",)) == [("HMB", FindingKind.CONFLICT)]


def test_any_dataset_permission_may_cover_the_purpose() -> None:
    assert findings(("POA",), ("HMB", "POA")) == []


def test_dataset_without_permission_needs_a_check() -> None:
    assert findings(("HMB",), ("NCU",)) == [("(none)", FindingKind.CHECK), ("NCU", FindingKind.OBLIGATION)]


@pytest.mark.parametrize(
    ("purpose", "modifier", "for_profit", "kind"),
    [
        (("HMB",), "NCU", VENDOR, FindingKind.CONFLICT),
        (("HMB", "NCU"), "NCU", VENDOR, FindingKind.OBLIGATION),
        (("HMB",), "NCU", HOSPITAL, FindingKind.OBLIGATION),
        (("HMB",), "NPU", VENDOR, FindingKind.CONFLICT),
        (("HMB",), "NPUNCU", VENDOR, FindingKind.CONFLICT),
        (("HMB", "NCU"), "NPUNCU", VENDOR, FindingKind.CONFLICT),
        (("HMB",), "NPUNCU", HOSPITAL, FindingKind.OBLIGATION),
        (("HMB",), "GSO", HOSPITAL, FindingKind.CONFLICT),
        (("HMB", "GSO"), "GSO", HOSPITAL, FindingKind.OBLIGATION),
        (("HMB",), "NMDS", HOSPITAL, FindingKind.CONFLICT),
        (("HMB",), "IRB", VENDOR, FindingKind.OBLIGATION),
        (("HMB",), "PUB", VENDOR, FindingKind.OBLIGATION),
        (("HMB",), "RTN", VENDOR, FindingKind.OBLIGATION),
        (("HMB",), "RS:pediatric", HOSPITAL, FindingKind.CHECK),
        (("HMB",), "DUO:0009999", HOSPITAL, FindingKind.CHECK),
    ],
)
def test_modifier_findings(purpose: tuple[str, ...], modifier: str, for_profit: bool, kind: FindingKind) -> None:
    assert findings(purpose, ("HMB", modifier), for_profit) == [(modifier, kind)]


def test_npu_allows_not_for_profit_applicant() -> None:
    assert findings(("HMB",), ("HMB", "NPU"), HOSPITAL) == []


def test_numeric_npoa_conflicts_only_with_ancestry_research() -> None:
    assert findings(("POA",), ("GRU", "DUO:0000044")) == [("DUO:0000044", FindingKind.CONFLICT)]
    assert findings(("HMB",), ("GRU", "DUO:0000044")) == []


def test_explanations_name_the_reason() -> None:
    report = match_purpose(Purpose(("GRU",), VENDOR), [dataset("HMB", "NCU")])

    explanations = [item.explanation for item in report.conflicts]

    assert explanations[0].startswith("purpose GRU is outside the dataset's permission HMB")
    assert "for-profit" in explanations[1]


def test_conflicts_of_every_dataset_are_listed() -> None:
    datasets = [dataset("DS:C34", dataset_id="ds-a"), dataset("HMB", "NCU", dataset_id="ds-b"), dataset("GRU", dataset_id="ds-c")]

    report = match_purpose(Purpose(("HMB",), VENDOR), datasets)

    assert [(item.dataset_id, item.term) for item in report.conflicts] == [("ds-a", "HMB"), ("ds-b", "NCU")]
    assert report.for_dataset("ds-c") == ()


def test_disease_code_from_real_synthea_bundle_matches_itself() -> None:
    disease = synthea_condition_codes()[0]
    terms = DatasetTerms("ds-jnuh-tb-0001", 1, "jnuh", Region.GWANGJU, "TB cohort", (f"DS:{disease}",))

    matching = match_purpose(Purpose((f"DS:{disease}",), HOSPITAL), [terms])
    other = match_purpose(Purpose(("DS:C34",), HOSPITAL), [terms])

    assert matching.findings == ()
    assert [item.term for item in other.conflicts] == ["DS:C34"]


@pytest.mark.parametrize(
    ("code", "shorthand", "qualifier"),
    [
        ("HMB", "HMB", None),
        ("DS:C34", "DS", "C34"),
        ("DS", "DS", None),
        ("RS:pediatric", "RS", "pediatric"),
        ("DUO:0000046", "NCU", None),
        ("duo:0000046", "NCU", None),
        ("DUO:0000999", "DUO:0000999", None),
    ],
)
def test_duo_term_parsing(code: str, shorthand: str, qualifier: str | None) -> None:
    term = DuoTerm.parse(code)

    assert (term.shorthand, term.qualifier) == (shorthand, qualifier)
    assert str(term) == code
