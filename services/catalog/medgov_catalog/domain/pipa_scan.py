"""PIPA scan results and the publication rules for each legal basis.

The file readers report every identifying value they meet as a finding of one
of three categories:

- direct: identifies a person on its own (name, telephone or e-mail, full
  address, medical record number, resident registration number, DICOM
  PatientID, a photo). Blocks publication under every legal basis.
- quasi: identifies a person in combination (full birth or death date, postal
  code, district, age over 89). Blocks only anonymous datasets.
- link: a key back to the person held by the hospital (the keyed pseudonym, a
  DICOM accession number, the subject list of the command). Allowed for
  pseudonymized and consent datasets, which need it for revocations; blocks
  anonymous datasets, because anonymous information under PIPA Art. 58-2 must
  not be re-identifiable even with other information.

Consent datasets follow the pseudonymized rules: the consent covers the use,
but none of the platform's data environments needs a direct identifier, so
nothing direct leaves the hospital under any legal basis.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from medgov_shared.contracts.events.catalog import Finding
from medgov_shared.contracts.types import LegalBasis, Severity

# One finding is about 120 bytes of JSON (an estimate from the sample data), so
# this keeps the findings of one ComplianceViolationFlagged near 60 KB, far
# below Kafka's 1 MB default.
MAX_FINDINGS_PER_EVENT = 500

SUBJECT_LIST_FILE = "(RegisterDataset command)"

_ARRAY_INDEX = re.compile(r"\[\d+\]")
_LINE_NUMBER = re.compile(r"^line \d+")


class IdentifierCategory(StrEnum):
    DIRECT = "direct"
    QUASI = "quasi"
    LINK = "link"


class IdentifierKind(StrEnum):
    """Finding.kind values."""

    NAME = "name"
    TELECOM = "telecom"
    ADDRESS = "address"
    PHOTO = "photo"
    MEDICAL_RECORD_NUMBER = "medical_record_number"
    RESIDENT_REGISTRATION_NUMBER = "resident_registration_number"
    SOCIAL_SECURITY_NUMBER = "social_security_number"
    NATIONAL_IDENTIFIER = "national_identifier"
    PASSPORT_NUMBER = "passport_number"
    DRIVERS_LICENSE_NUMBER = "drivers_license_number"
    INSURANCE_NUMBER = "insurance_number"
    IDENTIFIER = "identifier"
    PATIENT_ID = "patient_id"
    PRIVATE_TAG = "private_tag"
    BIRTH_DATE = "birth_date"
    DEATH_DATE = "death_date"
    POSTAL_CODE = "postal_code"
    ADDRESS_PART = "address_part"
    AGE_OVER_89 = "age_over_89"
    PSEUDONYM = "pseudonym"
    ACCESSION_NUMBER = "accession_number"
    SUBJECT_LIST = "subject_list"


@dataclass(frozen=True)
class IdentifierFinding:
    """One identifying value: where it is, what kind it is and how it counts under PIPA."""

    file: str
    location: str
    kind: IdentifierKind
    category: IdentifierCategory

    def to_contract(self) -> Finding:
        return Finding(file=self.file, location=self.location, kind=self.kind.value)


class Rule(StrEnum):
    """ComplianceViolationFlagged.rule values."""

    DIRECT_IDENTIFIER_IN_PSEUDONYMIZED_DATASET = "direct_identifier_in_pseudonymized_dataset"
    DIRECT_IDENTIFIER_IN_CONSENT_DATASET = "direct_identifier_in_consent_dataset"
    DIRECT_IDENTIFIER_IN_ANONYMOUS_DATASET = "direct_identifier_in_anonymous_dataset"
    QUASI_IDENTIFIER_IN_ANONYMOUS_DATASET = "quasi_identifier_in_anonymous_dataset"
    REIDENTIFICATION_LINK_IN_ANONYMOUS_DATASET = "reidentification_link_in_anonymous_dataset"


_DIRECT_RULE = {
    LegalBasis.PSEUDONYMIZED_RESEARCH: Rule.DIRECT_IDENTIFIER_IN_PSEUDONYMIZED_DATASET,
    LegalBasis.CONSENT: Rule.DIRECT_IDENTIFIER_IN_CONSENT_DATASET,
    LegalBasis.ANONYMOUS: Rule.DIRECT_IDENTIFIER_IN_ANONYMOUS_DATASET,
}


@dataclass(frozen=True)
class Violation:
    """A broken rule with its severity and the findings that break it."""

    rule: Rule
    severity: Severity
    findings: tuple[IdentifierFinding, ...]

    def contract_findings(self) -> tuple[Finding, ...]:
        return summarize_for_event(self.findings)


@dataclass(frozen=True)
class ScanVerdict:
    """Whether a dataset version may be published, and every rule it breaks."""

    violations: tuple[Violation, ...]

    @property
    def publishable(self) -> bool:
        return not self.violations


def subject_list_findings(subject_count: int) -> tuple[IdentifierFinding, ...]:
    """Return the finding for a non-empty subject list in the command, which is a re-identification link."""
    if subject_count == 0:
        return ()
    return (
        IdentifierFinding(
            file=SUBJECT_LIST_FILE,
            location=f"subjects ({subject_count} pseudonyms)",
            kind=IdentifierKind.SUBJECT_LIST,
            category=IdentifierCategory.LINK,
        ),
    )


def judge(legal_basis: LegalBasis, findings: Iterable[IdentifierFinding]) -> ScanVerdict:
    """Apply the publication rules of `legal_basis` to the scan findings."""
    by_category: dict[IdentifierCategory, list[IdentifierFinding]] = {category: [] for category in IdentifierCategory}
    for finding in findings:
        by_category[finding.category].append(finding)

    violations = []
    if by_category[IdentifierCategory.DIRECT]:
        violations.append(Violation(_DIRECT_RULE[legal_basis], Severity.HIGH, tuple(by_category[IdentifierCategory.DIRECT])))
    if legal_basis == LegalBasis.ANONYMOUS and by_category[IdentifierCategory.QUASI]:
        violations.append(
            Violation(Rule.QUASI_IDENTIFIER_IN_ANONYMOUS_DATASET, Severity.MEDIUM, tuple(by_category[IdentifierCategory.QUASI]))
        )
    if legal_basis == LegalBasis.ANONYMOUS and by_category[IdentifierCategory.LINK]:
        violations.append(
            Violation(Rule.REIDENTIFICATION_LINK_IN_ANONYMOUS_DATASET, Severity.HIGH, tuple(by_category[IdentifierCategory.LINK]))
        )
    return ScanVerdict(tuple(violations))


def summarize_for_event(findings: Sequence[IdentifierFinding]) -> tuple[Finding, ...]:
    """Return the findings as contract Findings that fit in one event.

    Findings at the same element path in the same file (for example the name
    of each of 200,000 Patient lines) collapse into the first one, whose
    location states how many more there are. Past MAX_FINDINGS_PER_EVENT the
    rest is counted in one last finding of kind 'omitted'; the catalog keeps
    the full list.
    """
    groups: dict[tuple[str, str, str], list[IdentifierFinding]] = {}
    for finding in findings:
        groups.setdefault((finding.file, _path_pattern(finding.location), finding.kind), []).append(finding)

    summarized = [_collapsed(group) for group in groups.values()]
    if len(summarized) <= MAX_FINDINGS_PER_EVENT:
        return tuple(summarized)

    kept = summarized[: MAX_FINDINGS_PER_EVENT - 1]
    omitted = summarized[MAX_FINDINGS_PER_EVENT - 1 :]
    omitted_files = Counter(item.file for item in omitted)
    rest = Finding(
        file=f"{len(omitted_files)} files",
        location=f"{len(omitted)} more findings not listed here",
        kind="omitted",
    )
    return (*kept, rest)


def _collapsed(group: list[IdentifierFinding]) -> Finding:
    first = group[0].to_contract()
    if len(group) == 1:
        return first
    return first.model_copy(update={"location": f"{first.location} (and {len(group) - 1} more like it)"})


def _path_pattern(location: str) -> str:
    # "line 12: Patient.name[0]" and "line 13: Patient.name[0]" share one pattern.
    return _LINE_NUMBER.sub("line #", _ARRAY_INDEX.sub("[]", location))
