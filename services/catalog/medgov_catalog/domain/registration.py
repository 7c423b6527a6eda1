"""Turn a RegisterDataset command and the inspection of its files into a version and its events.

The events of one version, in the order they are published (all keyed by the
dataset id, so consumers see them in this order):

1. DatasetRegistered, always, with the figures of the accepted files;
2. if the PIPA scan passes: DatasetSubjectsAdded in chunks, then DatasetPublished;
3. if it fails: one ComplianceViolationFlagged per broken rule. No subject
   list is sent, because a blocked version is never granted and so its
   membership must not spread.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.catalog import (
    ComplianceViolationFlagged,
    DatasetFigures,
    DatasetPublished,
    DatasetRegistered,
)
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.contracts.types import LegalBasis, Region

from medgov_catalog.domain.completeness import CompletenessScore, score_completeness
from medgov_catalog.domain.dataset import DatasetHistory, DatasetRuleViolation, VersionRecord
from medgov_catalog.domain.inspection import DatasetInspection
from medgov_catalog.domain.membership import distinct_subjects, subjects_added_events
from medgov_catalog.domain.pipa_scan import IdentifierFinding, ScanVerdict, Violation, judge, subject_list_findings


class RegistrationRejected(Exception):
    """Raised when a command cannot become a version at all; nothing is recorded for it."""


@dataclass(frozen=True)
class RegisteredVersion:
    """A new dataset version: what was read, how it scored, and whether it may be published."""

    command: RegisterDataset
    version: int
    region: Region
    inspection: DatasetInspection
    figures: DatasetFigures
    completeness: CompletenessScore
    verdict: ScanVerdict
    subjects: tuple[str, ...]
    registered_at: datetime

    @property
    def dataset_id(self) -> str:
        return self.command.dataset_id

    def record(self) -> VersionRecord:
        return VersionRecord(self.version, self.verdict.publishable, self.registered_at)

    def events(self) -> list[EventPayload]:
        registered = self._registered_event()
        if not self.verdict.publishable:
            return [registered, *(self._violation_event(violation) for violation in self.verdict.violations)]
        subjects = subjects_added_events(self.dataset_id, self.version, self.command.institution_id, self.subjects)
        return [registered, *subjects, self._published_event()]

    def _registered_event(self) -> DatasetRegistered:
        return DatasetRegistered(
            dataset_id=self.dataset_id,
            version=self.version,
            institution_id=self.command.institution_id,
            region=self.region,
            description=self.command.description,
            figures=self.figures,
            completeness_score=self.completeness.total,
            registered_at=self.registered_at,
        )

    def _published_event(self) -> DatasetPublished:
        description = self.command.description
        return DatasetPublished(
            dataset_id=self.dataset_id,
            version=self.version,
            institution_id=self.command.institution_id,
            region=self.region,
            title=description.title,
            duo_codes=description.duo_codes,
            legal_basis=description.legal_basis,
            completeness_score=self.completeness.total,
            record_count=self.figures.record_count,
            subject_count=self.figures.subject_count,
            published_at=self.registered_at,
        )

    def _violation_event(self, violation: Violation) -> ComplianceViolationFlagged:
        return ComplianceViolationFlagged(
            dataset_id=self.dataset_id,
            flag_id=flag_id(self.dataset_id, self.version, violation.rule),
            institution_id=self.command.institution_id,
            region=self.region,
            rule=violation.rule.value,
            severity=violation.severity,
            findings=violation.contract_findings(),
            flagged_at=self.registered_at,
        )


def flag_id(dataset_id: str, version: int, rule: str) -> str:
    """Return the same flag id whenever the same version breaks the same rule, so replays add no flags."""
    # UUID form: a bare run of hex digits can look like a resident registration
    # number, which the contracts' personal-data guard rejects.
    return f"flag-{uuid.uuid5(uuid.NAMESPACE_URL, f'urn:medgov:flag:{dataset_id}|{version}|{rule}')}"


def check_command(command: RegisterDataset, history: DatasetHistory | None) -> None:
    """Raise RegistrationRejected if the command itself is unacceptable, before any file is read."""
    if command.description.publisher != command.institution_id:
        raise RegistrationRejected(
            f"description.publisher is '{command.description.publisher}' but the command comes from "
            f"'{command.institution_id}'; a hospital publishes only its own datasets"
        )
    if history is not None:
        try:
            history.check_can_register(command.institution_id)
        except DatasetRuleViolation as error:
            raise RegistrationRejected(str(error)) from None


def register_version(
    command: RegisterDataset,
    history: DatasetHistory | None,
    inspection: DatasetInspection,
    region: Region,
    registered_at: datetime,
) -> RegisteredVersion:
    """Build the next version from the inspected files; raise RegistrationRejected if no file was accepted."""
    check_command(command, history)
    if not inspection.accepted:
        reasons = "; ".join(f"{item.path}: {item.detail}" for item in inspection.rejected) or "no files were listed"
        raise RegistrationRejected(f"none of the dataset's files was accepted: {reasons}")

    subjects = distinct_subjects(command.subjects)
    figures = inspection.figures
    findings = (*inspection.findings, *_subject_link_findings(command.description.legal_basis, subjects))
    return RegisteredVersion(
        command=command,
        version=history.next_version if history else 1,
        region=region,
        inspection=inspection,
        figures=figures,
        completeness=score_completeness(command.description, figures, inspection.media_types),
        verdict=judge(command.description.legal_basis, findings),
        subjects=subjects,
        registered_at=registered_at,
    )


def _subject_link_findings(legal_basis: LegalBasis, subjects: tuple[str, ...]) -> tuple[IdentifierFinding, ...]:
    # Only anonymous datasets treat the subject list as a finding; for the
    # others it is the membership that consent revocations rely on.
    return subject_list_findings(len(subjects)) if legal_basis == LegalBasis.ANONYMOUS else ()
