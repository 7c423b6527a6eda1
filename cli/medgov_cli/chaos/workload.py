"""The mixed inbound commands of a chaos run, built from the real sample files.

The hospitals of the Daegu region register datasets whose files lie in the
sample-data folder, record their patients' FHIR Consents and revoke some of
them. An AI vendor and a research foundation submit data-access
applications. Every command carries its source's next sequence number. Each
command is built so that the services accept it, because the run counts any
command that ends in a dead-letter topic as lost.
"""

import copy
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.inbound import RecordConsent, RegisterDataset, RevokeConsent, SubmitApplication
from medgov_shared.contracts.institutions import hospitals

from medgov_cli.publisher import HospitalPublisher, Rejected
from medgov_cli.subjects import local_patient_ids

REGION = "daegu"
APPLICANTS = ("vendor-medvision", "dgmif")

# Share of each command type in the mix. A RevokeConsent needs a consent
# recorded earlier, so while none is waiting a RecordConsent is sent instead.
COMMAND_MIX: dict[str, float] = {
    RecordConsent.event_type: 0.45,
    RevokeConsent.event_type: 0.15,
    SubmitApplication.event_type: 0.28,
    RegisterDataset.event_type: 0.12,
}

# Sample files without direct identifiers: the catalog's PIPA scan passes
# them, so the seed datasets are published and applications may request them.
SEED_DATASET_FILES = (
    "fhir/hl7-r4-examples/bundle/Bundle-bundle-example.json",
    "fhir/hl7-r4-examples/imaging/ImagingStudy-example.json",
    "fhir/hl7-r4-examples/research/ResearchStudy-example.json",
    "fhir/hl7-r4-examples/auditevent/AuditEvent-example.json",
    "synthea/bulk-export-10-patients/Device.000.ndjson",
)

# Folders of sample files the catalog accepts. Files larger than
# MAX_DATASET_FILE_BYTES are left out, because the Synthea patient bundles
# take about 150 ms each to read and would make registrations dominate the run.
DATASET_FILE_GLOBS = (
    "fhir/hl7-r4-examples/**/*.json",
    "dicom/single/*.dcm",
    "dicom/charset/*.dcm",
    "dicom/fileset/*/*/*",
    "synthea/bulk-export-10-patients/[A-Z]*.ndjson",
)
MAX_DATASET_FILE_BYTES = 64 * 1024

CONSENT_FOLDER = "fhir/hl7-r4-examples/consent"
# The HL7 examples name their custodian hospital Organization/f001; the
# sending hospital's platform id takes its place, as a hospital's own
# integration would map its organization.
SAMPLE_HOSPITAL_REFERENCE = "Organization/f001"


@dataclass(frozen=True)
class Command:
    """One inbound command and the institution whose topic it goes to."""

    institution: str
    payload: EventPayload
    local_patient_id: str | None = None  # the hospital's own id of the patient, never sent

    @property
    def event_type(self) -> str:
        return self.payload.event_type


@dataclass(frozen=True)
class RecordedConsent:
    institution: str
    local_patient_id: str
    consent_id: str


def _replace_references(value: Any, old: str, new: str) -> Any:
    if isinstance(value, list):
        return [_replace_references(item, old, new) for item in value]
    if isinstance(value, dict):
        return {key: (new if key == "reference" and item == old else _replace_references(item, old, new))
                for key, item in value.items()}
    return value


def load_consent_samples(sample_data: Path) -> list[dict[str, Any]]:
    """Return the HL7 Consent examples that the consent service can read, as parsed JSON.

    The service's own reader decides, so the filter stays true when its
    reading rules change. Examples it rejects (a person as actor, treatment
    purposes only ...) are left out.
    """
    from medgov_consent.domain.errors import ConsentRejected
    from medgov_consent.domain.fhir_consent import read_fhir_consent

    usable = []
    for path in sorted((sample_data / CONSENT_FOLDER).glob("Consent-*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        try:
            read_fhir_consent(_replace_references(resource, SAMPLE_HOSPITAL_REFERENCE, "Organization/knuh"))
        except ConsentRejected:
            continue
        usable.append(resource)
    if not usable:
        raise RuntimeError(
            f"no FHIR Consent example under {sample_data / CONSENT_FOLDER} is readable by the consent service"
        )
    return usable


def dataset_files(sample_data: Path) -> list[str]:
    """Return sample files, relative to the data folder, that a registration may list."""
    found: set[str] = set()
    for pattern in DATASET_FILE_GLOBS:
        for path in sample_data.glob(pattern):
            if path.is_file() and path.stat().st_size <= MAX_DATASET_FILE_BYTES:
                found.add(path.relative_to(sample_data).as_posix())
    if not found:
        raise RuntimeError(
            f"no sample files found under {sample_data}; set MEDGOV_SAMPLE_DATA to the shared data folder"
        )
    return sorted(found)


class Workload:
    """Builds the commands of one run from a seed.

    Each kind of choice draws from its own generator. So for a given seed the
    sequence of command types and every dataset registration (ids, files,
    subjects) are the same. Which consent a revocation picks depends on when
    the broker acknowledged the consents. Ids carry the seed
    and a counter ("ds-knuh-chaos-s7-12"). Below a million commands no id
    has the 6+7 digits of a resident registration number, which the
    contracts reject.
    """

    def __init__(self, publishers: dict[str, HospitalPublisher], sample_data: Path, seed: int) -> None:
        self.publishers = publishers
        self.sample_data = sample_data
        self.id_prefix = f"s{seed}"
        self._mix = random.Random(f"{seed}:mix")
        self._datasets = random.Random(f"{seed}:datasets")
        self._applications = random.Random(f"{seed}:applications")
        self._revocations = random.Random(f"{seed}:revocations")
        self.hospitals = sorted(item.id for item in hospitals() if item.region.value == REGION)
        self.consent_samples = load_consent_samples(sample_data)
        self.files = dataset_files(sample_data)
        self.seed_dataset_ids: list[str] = []
        self._sequences: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._revocable: list[RecordedConsent] = []
        self._patients_of_file: dict[str, frozenset[str]] = {}

    @staticmethod
    def sources() -> tuple[str, ...]:
        return tuple(sorted(item.id for item in hospitals() if item.region.value == REGION)) + APPLICANTS

    # -- the mix -----------------------------------------------------------------

    def seed_commands(self) -> list[Command]:
        """Build one dataset registration per hospital from files the catalog publishes, for applications to request."""
        commands = []
        for hospital, relative in zip(self.hospitals, self._cycle(SEED_DATASET_FILES), strict=False):
            command = self._dataset(hospital, [relative], title="Seed dataset for applications")
            self.seed_dataset_ids.append(command.payload.dataset_id)
            commands.append(command)
        return commands

    def next_command(self) -> Command:
        kinds = list(COMMAND_MIX)
        kind = self._mix.choices(kinds, weights=[COMMAND_MIX[item] for item in kinds])[0]
        if kind == RevokeConsent.event_type and self._revocable:
            return self._revocation()
        if kind == SubmitApplication.event_type and self.seed_dataset_ids:
            return self._application()
        if kind == RegisterDataset.event_type:
            hospital = self._datasets.choice(self.hospitals)
            files = self._datasets.sample(self.files, k=self._datasets.randint(1, 3))
            return self._dataset(hospital, files, title="Chaos run dataset")
        return self._consent()

    def acknowledge(self, command: Command) -> None:
        """Remember a consent the broker acknowledged, so a later command may revoke it."""
        if isinstance(command.payload, RecordConsent) and command.local_patient_id is not None:
            recorded = RecordedConsent(command.institution, command.local_patient_id, command.payload.consent_id)
            self._revocable.append(recorded)

    # -- builders ------------------------------------------------------------------

    def _next(self, counter: str) -> int:
        self._counters[counter] = self._counters.get(counter, 0) + 1
        return self._counters[counter]

    def _numbered(self, institution: str, payload: EventPayload, local_patient_id: str | None = None) -> Command:
        sequence = self._sequences.get(institution, 0) + 1
        self._sequences[institution] = sequence
        return Command(institution, payload.model_copy(update={"sequence": sequence}), local_patient_id)

    def _dataset(self, hospital: str, files: list[str], *, title: str) -> Command:
        publisher = self.publishers[hospital]
        number = self._next("dataset")
        local_ids: set[str] = set()
        for relative in files:
            local_ids |= self._patients_in(relative)
        description = {
            "title": f"{title} {number}",
            "description": f"Files {', '.join(files)} of the sample-data folder",
            "publisher": hospital,
            "themes": ["HEAL"],
            "keywords": ["chaos"],
            "access_rights": "restricted",
            "duo_codes": ["HMB"],
            "legal_basis": "pseudonymized_research",
            "contact_point": f"data-office@{hospital}",
            "distribution_formats": [],
        }
        payload = publisher.command(
            RegisterDataset.event_type,
            {
                "dataset_id": f"ds-{hospital}-chaos-{self.id_prefix}-{number}",
                "description": description,
                "files": files,
                "subjects": sorted(publisher.pseudonymize(local) for local in local_ids),
            },
        )
        return self._numbered(hospital, payload)

    def _patients_in(self, relative: str) -> frozenset[str]:
        if relative not in self._patients_of_file:
            self._patients_of_file[relative] = frozenset(local_patient_ids(self.sample_data / relative))
        return self._patients_of_file[relative]

    def _consent(self) -> Command:
        # Patient n gets the usable examples one after the other, so no
        # (subject, consent id) pair is ever recorded twice.
        index = self._next("consent") - 1
        patient_number, sample_index = divmod(index, len(self.consent_samples))
        hospital = self.hospitals[patient_number % len(self.hospitals)]
        local_id = f"chaos-{self.id_prefix}-{patient_number}"

        resource = copy.deepcopy(self.consent_samples[sample_index])
        resource = _replace_references(resource, SAMPLE_HOSPITAL_REFERENCE, f"Organization/{hospital}")
        resource["patient"] = {"reference": f"Patient/{local_id}"}
        try:
            payload = self.publishers[hospital].consent_command(resource)
        except Rejected as error:
            raise RuntimeError(f"the publisher rejected a consent the chaos workload built: {error}") from error
        return self._numbered(hospital, payload, local_id)

    def _revocation(self) -> Command:
        index = self._revocations.randrange(len(self._revocable))
        # Swap-remove keeps picking a random waiting consent O(1).
        self._revocable[index], self._revocable[-1] = self._revocable[-1], self._revocable[index]
        consent = self._revocable.pop()
        effective_at = datetime.now(UTC).isoformat()
        payload = self.publishers[consent.institution].revocation_command(
            consent.local_patient_id, consent.consent_id, effective_at
        )
        return self._numbered(consent.institution, payload)

    def _application(self) -> Command:
        applicant = self._applications.choice(APPLICANTS)
        number = self._next("application")
        today = date.today()
        complete = self._applications.random() < 0.75
        data: dict[str, Any] = {
            "application_id": f"app-chaos-{self.id_prefix}-{number}",
            "idempotency_key": f"sub-{self.id_prefix}-{number}",
            "applicant_institution": applicant,
            "principal_investigator": "Dr. Kim",
            "title": f"Chest CT nodule detection, chaos run {number}",
            "purpose_text": "Train and validate a lung nodule detector",
            "purpose_codes": ["HMB"],
            "dataset_ids": self._applications.sample(self.seed_dataset_ids, k=self._applications.randint(1, 2)),
            "requested_start": (today + timedelta(days=30)).isoformat(),
            "requested_end": (today + timedelta(days=395)).isoformat(),
            "data_environment": "secure_enclave",
        }
        if complete:
            data["irb_document_ref"] = f"irb://{applicant}/chaos-{number}"
        # Without the IRB reference the review service stores the
        # application and emits RevisionRequested, the other path of a submission.
        payload = self.publishers[applicant].command(SubmitApplication.event_type, data)
        return self._numbered(applicant, payload)

    def _cycle(self, items: tuple[str, ...]) -> Iterator[str]:
        while True:
            yield from items
