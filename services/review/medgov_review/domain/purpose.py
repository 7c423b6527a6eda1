"""Match an application's coded purpose against each dataset's data-use terms (GA4GH DUO).

A dataset carries one or more DUO permissions (what research it may serve) and
any number of modifiers (extra conditions). The applicant codes the purpose
with permission terms (GRU, HMB, DS:<disease>, POA) and may declare NCU (the
use will be non-commercial) or GSO (the study is genetic). Term meanings follow
the DUO release of EBISPOT/DUO duo.csv.

The result lists findings for reviewers, it does not decide anything:

- conflict: the purpose breaks a term of the dataset;
- check: a term that software cannot evaluate, which reviewers must judge;
- obligation: a duty the approval will carry if granted.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from medgov_shared.contracts.types import Region

# Numeric DUO ids and the shorthand this module reasons with. NPOA and CC have
# no shorthand in the contracts' DuoCode pattern, so they arrive numerically.
DUO_SHORTHAND = {
    "DUO:0000004": "NRES",
    "DUO:0000042": "GRU",
    "DUO:0000006": "HMB",
    "DUO:0000007": "DS",
    "DUO:0000011": "POA",
    "DUO:0000044": "NPOA",
    "DUO:0000043": "CC",
    "DUO:0000046": "NCU",
    "DUO:0000045": "NPU",
    "DUO:0000018": "NPUNCU",
    "DUO:0000021": "IRB",
    "DUO:0000016": "GSO",
    "DUO:0000015": "NMDS",
    "DUO:0000012": "RS",
    "DUO:0000019": "PUB",
    "DUO:0000020": "COL",
    "DUO:0000029": "RTN",
    "DUO:0000025": "TS",
    "DUO:0000022": "GS",
    "DUO:0000028": "IS",
    "DUO:0000027": "PS",
    "DUO:0000026": "US",
    "DUO:0000024": "MOR",
}

PERMISSIONS = frozenset({"NRES", "GRU", "HMB", "DS", "POA"})
PURPOSE_PERMISSIONS = frozenset({"GRU", "HMB", "DS", "POA"})

OBLIGATIONS = {
    "PUB": "results must be made available to the wider scientific community",
    "COL": "the applicant must collaborate with the dataset's primary investigators",
    "RTN": "derived or enriched data must be returned to the data holder",
    "MOR": "results must not be published before the holder's moratorium date",
    "TS": "use is approved for a limited number of months",
    "GS": "use is limited to a geographic region",
    "IS": "use is limited to the approved institution",
    "PS": "use is limited to the approved project",
    "US": "use is limited to the approved users",
}


@dataclass(frozen=True)
class DuoTerm:
    """A DUO code split into its shorthand and its qualifier (the disease of DS:<disease>)."""

    code: str
    shorthand: str
    qualifier: str | None = None

    @classmethod
    def parse(cls, code: str) -> "DuoTerm":
        mapped = DUO_SHORTHAND.get(code.upper())
        if mapped is not None:
            return cls(code=code, shorthand=mapped)
        head, _, qualifier = code.partition(":")
        if head.upper() in {"DS", "RS"}:
            return cls(code=code, shorthand=head.upper(), qualifier=qualifier or None)
        return cls(code=code, shorthand=code.upper())

    def __str__(self) -> str:
        return self.code


class FindingKind(StrEnum):
    CONFLICT = "conflict"
    CHECK = "check"
    OBLIGATION = "obligation"


@dataclass(frozen=True)
class PurposeFinding:
    dataset_id: str
    term: str
    kind: FindingKind
    explanation: str


@dataclass(frozen=True)
class DatasetTerms:
    """A published dataset's terms, as the review service stores them from the catalog's events."""

    dataset_id: str
    version: int
    institution_id: str
    region: Region
    title: str
    duo_codes: tuple[str, ...]
    withdrawn: bool = False


@dataclass(frozen=True)
class PurposeReport:
    findings: tuple[PurposeFinding, ...]

    @property
    def conflicts(self) -> tuple[PurposeFinding, ...]:
        return self.of_kind(FindingKind.CONFLICT)

    def of_kind(self, kind: FindingKind) -> tuple[PurposeFinding, ...]:
        return tuple(item for item in self.findings if item.kind is kind)

    def for_dataset(self, dataset_id: str) -> tuple[PurposeFinding, ...]:
        return tuple(item for item in self.findings if item.dataset_id == dataset_id)


@dataclass(frozen=True)
class Purpose:
    """The applicant's coded purpose and what the matcher needs to know about the applicant."""

    codes: tuple[str, ...]
    for_profit_applicant: bool

    @property
    def terms(self) -> tuple[DuoTerm, ...]:
        return tuple(DuoTerm.parse(code) for code in self.codes)

    @property
    def permissions(self) -> tuple[DuoTerm, ...]:
        return tuple(term for term in self.terms if term.shorthand in PURPOSE_PERMISSIONS)

    def declares(self, shorthand: str) -> bool:
        return any(term.shorthand == shorthand for term in self.terms)

    @property
    def commercial(self) -> bool:
        """Whether the use counts as commercial: a for-profit applicant's does unless it declares NCU.

        Reviewers must verify such a declaration.
        """
        return self.for_profit_applicant and not self.declares("NCU")


def match_purpose(purpose: Purpose, datasets: Iterable[DatasetTerms]) -> PurposeReport:
    findings: list[PurposeFinding] = []
    for dataset in datasets:
        terms = tuple(DuoTerm.parse(code) for code in dataset.duo_codes)
        findings.extend(_permission_findings(purpose, dataset.dataset_id, terms))
        for term in terms:
            findings.extend(_modifier_findings(purpose, dataset.dataset_id, term))
    return PurposeReport(findings=tuple(findings))


def _permission_findings(purpose: Purpose, dataset_id: str, terms: Sequence[DuoTerm]) -> list[PurposeFinding]:
    granted = [term for term in terms if term.shorthand in PERMISSIONS]
    if not granted:
        return [
            PurposeFinding(
                dataset_id,
                "(none)",
                FindingKind.CHECK,
                "the dataset declares no DUO data-use permission (NRES, GRU, HMB, DS or POA); "
                "reviewers must confirm with the holder what use is allowed",
            )
        ]
    findings = []
    for requested in purpose.permissions:
        if not any(_permits(term, requested) for term in granted):
            allowed = ", ".join(str(term) for term in granted)
            findings.append(
                PurposeFinding(
                    dataset_id, str(requested), FindingKind.CONFLICT, _outside_permission(requested, allowed)
                )
            )
    return findings


def _permits(granted: DuoTerm, requested: DuoTerm) -> bool:
    """Return whether a dataset permission covers a purpose permission."""
    match granted.shorthand:
        case "NRES" | "GRU":
            return True
        case "HMB":
            return requested.shorthand in {"HMB", "DS"}
        case "DS":
            # NOTE: diseases match by exact code only. A purpose about a
            # subtype of the dataset's disease is reported as a conflict, which
            # stays so until the matcher consults a disease ontology.
            return (
                requested.shorthand == "DS"
                and granted.qualifier is not None
                and requested.qualifier is not None
                and granted.qualifier.casefold() == requested.qualifier.casefold()
            )
        case "POA":
            return requested.shorthand == "POA"
    return False


def _outside_permission(requested: DuoTerm, allowed: str) -> str:
    reasons = {
        "GRU": "general research may go beyond health, medical and biomedical purposes",
        "HMB": "health, medical and biomedical research is broader than the permitted use",
        "DS": f"research on disease {requested.qualifier or '(none named)'} is not the permitted disease",
        "POA": "population origins or ancestry research is not permitted",
    }
    return f"purpose {requested} is outside the dataset's permission {allowed}: {reasons[requested.shorthand]}"


def _modifier_findings(purpose: Purpose, dataset_id: str, term: DuoTerm) -> list[PurposeFinding]:
    found = _modifier_finding(purpose, term)
    if found is None:
        return []
    kind, explanation = found
    return [PurposeFinding(dataset_id, str(term), kind, explanation)]


def _modifier_finding(purpose: Purpose, term: DuoTerm) -> tuple[FindingKind, str] | None:
    match term.shorthand:
        case "NRES" | "GRU" | "HMB" | "DS" | "POA" | "CC":
            return None
        case "NCU":
            return _non_commercial(purpose)
        case "NPU":
            return _not_for_profit(purpose)
        case "NPUNCU":
            return _not_for_profit(purpose) or _non_commercial(purpose)
        case "NPOA":
            if purpose.declares("POA"):
                return FindingKind.CONFLICT, "the dataset prohibits population origins or ancestry research (POA)"
            return None
        case "GSO":
            if purpose.declares("GSO"):
                return FindingKind.OBLIGATION, "use is limited to genetic studies, as the purpose declares"
            return (
                FindingKind.CONFLICT,
                "the dataset allows genetic studies only and the purpose does not declare one (GSO)",
            )
        case "NMDS":
            return (
                FindingKind.CONFLICT,
                "the dataset does not allow methods development, and developing an AI model is "
                "development of software or algorithms",
            )
        case "IRB":
            return (
                FindingKind.OBLIGATION,
                "ethics approval is required; the joint review includes the IRB and the application "
                "references IRB documents",
            )
        case "RS":
            return (
                FindingKind.CHECK,
                f"use is limited to research of type {term.qualifier or '(unspecified)'}; reviewers "
                "must confirm that the purpose is of that type",
            )
    if term.shorthand in OBLIGATIONS:
        return FindingKind.OBLIGATION, OBLIGATIONS[term.shorthand]
    return FindingKind.CHECK, "the term is not recognised; reviewers must check it by hand"


def _non_commercial(purpose: Purpose) -> tuple[FindingKind, str]:
    if purpose.commercial:
        return (
            FindingKind.CONFLICT,
            "the dataset allows non-commercial use only and the applicant is a for-profit "
            "organisation that does not declare non-commercial use (NCU)",
        )
    if purpose.for_profit_applicant:
        return (
            FindingKind.OBLIGATION,
            "a for-profit applicant declares non-commercial use; the approval binds it to that declaration",
        )
    return FindingKind.OBLIGATION, "use must stay non-commercial"


def _not_for_profit(purpose: Purpose) -> tuple[FindingKind, str] | None:
    if purpose.for_profit_applicant:
        return (
            FindingKind.CONFLICT,
            "the dataset is limited to not-for-profit organisations and the applicant is for-profit",
        )
    return None
