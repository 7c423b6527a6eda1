"""Screening: is a submitted application valid, and is it complete enough for the boards?

Two kinds of problem are handled differently. An invalid value (an unknown dataset or
institution, a period that ends before it starts) is bad input: the command is
rejected and nothing is stored. A missing item is a normal outcome: the
application is kept and the applicant gets a RevisionRequested that lists every
missing item at once.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.types import DataEnvironment

from medgov_review.domain.errors import (
    DatasetWithdrawn,
    InvalidPeriod,
    UnknownDataset,
    UnknownInstitution,
    reject_personal_data_in,
)
from medgov_review.domain.purpose import PURPOSE_PERMISSIONS, DatasetTerms, DuoTerm
from medgov_review.domain.sla import KST


@dataclass(frozen=True)
class ApplicationDraft:
    """The application as submitted, in which any field may be missing."""

    applicant_institution: str | None = None
    principal_investigator: str | None = None
    title: str | None = None
    purpose_text: str | None = None
    purpose_codes: tuple[str, ...] = ()
    dataset_ids: tuple[str, ...] = ()
    requested_start: date | None = None
    requested_end: date | None = None
    data_environment: DataEnvironment | None = None
    irb_document_ref: str | None = None


@dataclass(frozen=True)
class ApplicationContent:
    """A complete application, as the boards review it."""

    applicant_institution: str
    principal_investigator: str
    title: str
    purpose_text: str
    purpose_codes: tuple[str, ...]
    dataset_ids: tuple[str, ...]
    requested_start: date
    requested_end: date
    data_environment: DataEnvironment
    irb_document_ref: str


@dataclass(frozen=True)
class MissingItem:
    item: str
    explanation: str


@dataclass(frozen=True)
class Screening:
    content: ApplicationContent | None
    missing: tuple[MissingItem, ...]

    @property
    def complete(self) -> bool:
        return self.content is not None


_TEXT_ITEMS = {
    "applicant_institution": "name the applicant's registered institution",
    "principal_investigator": "name the principal investigator",
    "title": "give the project title",
    "purpose_text": "describe the purpose of the data use in words",
    "irb_document_ref": "give the reference of the IRB documents",
}


def screen(draft: ApplicationDraft, catalog: Mapping[str, DatasetTerms], received_at: datetime) -> Screening:
    """Validate the draft, then list every missing item; return the complete content if none is missing.

    Raises UnknownInstitution, UnknownDataset, DatasetWithdrawn, InvalidPeriod
    or PersonalDataInText for invalid values.
    """
    validate_draft(draft, catalog, received_at.astimezone(KST).date())
    missing = missing_items(draft)
    if missing:
        return Screening(content=None, missing=missing)
    return Screening(content=_complete(draft), missing=())


def validate_draft(draft: ApplicationDraft, catalog: Mapping[str, DatasetTerms], today: date) -> None:
    reject_personal_data_in({item: getattr(draft, item) for item in _TEXT_ITEMS})
    _validate_institution(draft.applicant_institution)
    _validate_datasets(draft.dataset_ids, catalog)
    _validate_period(draft.requested_start, draft.requested_end, today)


def _validate_institution(institution_id: str | None) -> None:
    if institution_id and institution_id.strip() and institution_id.strip() not in all_institutions():
        raise UnknownInstitution(
            f"applicant institution {institution_id!r} is not registered; use the id of a registered institution",
            institution_id=institution_id,
        )


def _validate_datasets(dataset_ids: tuple[str, ...], catalog: Mapping[str, DatasetTerms]) -> None:
    unknown = [item for item in dataset_ids if item not in catalog]
    if unknown:
        raise UnknownDataset(
            f"dataset(s) not found in the catalog: {', '.join(unknown)}; request only published datasets",
            dataset_ids=unknown,
        )
    withdrawn = [item for item in dataset_ids if catalog[item].withdrawn]
    if withdrawn:
        raise DatasetWithdrawn(
            f"dataset(s) withdrawn by their holder: {', '.join(withdrawn)}; remove them from the request",
            dataset_ids=withdrawn,
        )


def _validate_period(start: date | None, end: date | None, today: date) -> None:
    if start is not None and end is not None and end < start:
        raise InvalidPeriod(
            f"requested_end {end} is before requested_start {start}; the expiry must not precede the start",
            requested_start=str(start),
            requested_end=str(end),
        )
    if end is not None and end < today:
        raise InvalidPeriod(
            f"requested_end {end} is in the past (today is {today} KST); request a period that has not ended",
            requested_end=str(end),
        )


def missing_items(draft: ApplicationDraft) -> tuple[MissingItem, ...]:
    missing = [
        MissingItem(item, explanation)
        for item, explanation in _TEXT_ITEMS.items()
        if not _text(getattr(draft, item))
    ]
    purpose_problem = _purpose_codes_problem(draft.purpose_codes)
    if purpose_problem:
        missing.append(MissingItem("purpose_codes", purpose_problem))
    if not draft.dataset_ids:
        missing.append(MissingItem("dataset_ids", "list at least one requested dataset"))
    if draft.requested_start is None:
        missing.append(MissingItem("requested_start", "give the first day of the requested period"))
    if draft.requested_end is None:
        missing.append(MissingItem("requested_end", "give the last day of the requested period"))
    if draft.data_environment is None:
        environments = ", ".join(item.value for item in DataEnvironment)
        missing.append(MissingItem("data_environment", f"choose the data environment ({environments})"))
    return tuple(sorted(missing, key=lambda item: _ITEM_ORDER.index(item.item)))


_ITEM_ORDER = (
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
)


def _purpose_codes_problem(codes: tuple[str, ...]) -> str | None:
    terms = [DuoTerm.parse(code) for code in codes]
    permissions = [term for term in terms if term.shorthand in PURPOSE_PERMISSIONS]
    if not permissions:
        return "code the purpose with at least one GA4GH DUO purpose term (GRU, HMB, DS:<disease> or POA)"
    if any(term.shorthand == "DS" and not term.qualifier for term in permissions):
        return "name the disease of a disease-specific purpose, e.g. DS:C34 for lung cancer"
    return None


def _text(value: str | None) -> str:
    return value.strip() if value else ""


def _complete(draft: ApplicationDraft) -> ApplicationContent:
    # missing_items() returned nothing, so every optional field below is set.
    assert draft.requested_start is not None
    assert draft.requested_end is not None
    assert draft.data_environment is not None
    return ApplicationContent(
        applicant_institution=_text(draft.applicant_institution),
        principal_investigator=_text(draft.principal_investigator),
        title=_text(draft.title),
        purpose_text=_text(draft.purpose_text),
        purpose_codes=tuple(dict.fromkeys(draft.purpose_codes)),
        dataset_ids=tuple(dict.fromkeys(draft.dataset_ids)),
        requested_start=draft.requested_start,
        requested_end=draft.requested_end,
        data_environment=draft.data_environment,
        irb_document_ref=_text(draft.irb_document_ref),
    )
