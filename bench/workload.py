"""Benchmark events: RecordConsent commands built from a real FHIR Consent, and each service's event mix.

One envelope per event type is built through the contracts and validated; the
copies differ only in ids, pseudonyms, dates and sequence numbers, which keeps
building 100,000 events cheap without sending anything the contracts reject.
Every event carries a sequence number: inbound commands in their `sequence`
field, other events only in the benchmark's own bookkeeping.
"""

import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.contracts.events.catalog import (
    ComplianceFlagCleared,
    ComplianceViolationFlagged,
    DatasetDescription,
    DatasetFigures,
    DatasetPublished,
    DatasetRegistered,
    DatasetSubjectsAdded,
    Finding,
)
from medgov_shared.contracts.events.inbound import RecordConsent, RegisterDataset, RevokeConsent, SubmitApplication
from medgov_shared.contracts.events.review import AccessGranted, ApplicationApproved, ApplicationSubmitted
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.institutions import Institution
from medgov_shared.contracts.registry import inbound_topic, parse_payload, payload_class
from medgov_shared.testing.institutions import throwaway_hospital

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = Path(os.environ.get("MEDGOV_SAMPLE_DATA", REPO_ROOT / ".." / "shared" / "data")).resolve()

REVIEW_TOPIC = "medgov.review.v1"
CATALOG_TOPIC = "medgov.catalog.v1"

# The consent service accepts consents only from hospitals listed in
# institutions.yaml, so its commands go to a real hospital's inbound topic.
# No test or demo publishes for this hospital, so that topic stays quiet.
CONSENT_HOSPITAL = "dcmc"
# The review and catalog commands go to a fresh inbound topic per run, of the
# institution `bench-<run id>`. The catalog accepts datasets only from
# registered hospitals, so the catalog workload registers that institution
# through the extra institutions file (Workload.institutions).
GRANTEE = "vendor-medvision"
APPLICANT = "vendor-lunapath"
DATA_HOLDERS = ("knuh", "knuch", "dsmc", "yumc", "dcmc")
REGION = "daegu"
REMOTE_REGION = "daejeon"
PSEUDONYM_KEY = b"medgov-benchmark-pseudonym-key-32b"

# The FHIR R4 example "consent-example-basic" (an OPTIN, 985 bytes as compact
# JSON). With the envelope, a RecordConsent is about 1.5 KB.
BASIC_CONSENT = SAMPLE_DATA / "fhir" / "hl7-r4-examples" / "consent" / "Consent-consent-example-basic.json"
# The MII broad consent is the only research consent among the samples, so the
# subjects whose revocations are timed record it: only a consent that permits
# research lets a grant reach them.
MII_CONSENT = SAMPLE_DATA / "fhir" / "mii-consent-xml" / "Example_MII_Consent_Einwilligung_2.xml"
# A small FHIR resource and one DICOM instance with a patient name in it, so
# each local registration reads two files and raises a compliance flag.
REGISTERED_FILES = ("fhir/hl7-r4-examples/imaging/ImagingStudy-example.json", "dicom/fileset/77654033/CR1/6154")

EPOCH = datetime(2027, 3, 2, tzinfo=UTC)


@dataclass(frozen=True)
class BenchEvent:
    """One serialized CloudEvent and the sequence number the correctness gate checks."""

    sequence: int
    event_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes
    command: bool = False  # an inbound command, whose payload carries `sequence` too


@dataclass
class Workload:
    """Events for one service run: `setup` is applied before the timed `events` are sent."""

    events: list[BenchEvent]
    setup: list[BenchEvent] = field(default_factory=list)
    fresh_topics: list[str] = field(default_factory=list)
    # Throwaway institutions the service must know, passed to it in an extra institutions file.
    institutions: list[Institution] = field(default_factory=list)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def subject_of(run_id: str, number: int) -> str:
    return pseudonymize(f"bench-{run_id}-{number}", region=REGION, key=PSEUDONYM_KEY)


def fhir_consent_without_patient(path: Path) -> dict[str, Any]:
    """Load a FHIR Consent sample without `patient`, which RecordConsent replaces by the pseudonym."""
    if path.suffix == ".xml":
        from medgov_consent.domain.fhir_xml import parse_fhir_xml

        resource = parse_fhir_xml(path.read_bytes())
    else:
        resource = json.loads(path.read_text(encoding="utf-8"))
    resource.pop("patient", None)
    return resource


def validate(event: BenchEvent) -> EventPayload:
    """Parse one built event as a consumer does; raises if a builder produced something invalid."""
    return parse_payload(Envelope.from_json(event.value))


class _Template:
    """One validated envelope kept as a dict; `render` fills in what varies per event."""

    def __init__(self, payload: EventPayload, *, source: str, region: str = REGION, time: datetime = EPOCH) -> None:
        envelope = wrap(payload, source=source, region=region, time=time)
        parse_payload(envelope)
        self.document = orjson.loads(envelope.to_json())
        self.key_field = payload_class(payload.event_type).key_field

    def render(self, data: dict[str, Any], *, time: datetime | None = None) -> tuple[uuid.UUID, bytes, bytes]:
        event_id = uuid.uuid4()
        document = {**self.document, "id": str(event_id), "correlationid": str(event_id)}
        document["data"] = {**document["data"], **data}
        document["subject"] = str(document["data"][self.key_field])
        if time is not None:
            document["time"] = time.isoformat().replace("+00:00", "Z")
        return event_id, document["subject"].encode(), orjson.dumps(document)


def _build(
    template: _Template, topic: str, sequence: int, data: dict[str, Any], *, command: bool = False, time: datetime | None = None
) -> BenchEvent:
    event_id, key, value = template.render(data, time=time)
    return BenchEvent(sequence, event_id, topic, key, value, command)


def _hospital_source(institution: str) -> str:
    return f"medgov/hospital/{institution}"


# -- consent -----------------------------------------------------------------


def consent_id_of(run_id: str, sequence: int) -> str:
    return f"cns-{CONSENT_HOSPITAL}-{run_id}-{sequence:08d}"


def record_consents(run_id: str, first: int, count: int, *, consent_file: Path = BASIC_CONSENT) -> list[BenchEvent]:
    """RecordConsent commands with sequence numbers first..first+count-1, each for a new subject."""
    topic = inbound_topic(CONSENT_HOSPITAL)
    template = _Template(
        RecordConsent(
            institution_id=CONSENT_HOSPITAL,
            subject=subject_of(run_id, 0),
            consent_id="cns-template",
            fhir_consent=fhir_consent_without_patient(consent_file),
            sequence=0,
        ),
        source=_hospital_source(CONSENT_HOSPITAL),
    )
    return [
        _build(
            template,
            topic,
            sequence,
            {"subject": subject_of(run_id, sequence), "consent_id": consent_id_of(run_id, sequence), "sequence": sequence},
            command=True,
        )
        for sequence in range(first, first + count)
    ]


def revoke_consents(run_id: str, consent_sequences: Sequence[int], first: int, *, effective_at: datetime) -> list[BenchEvent]:
    """RevokeConsent of the whole consent for each consent sequence number, with sequence numbers from `first`."""
    topic = inbound_topic(CONSENT_HOSPITAL)
    template = _Template(
        RevokeConsent(
            institution_id=CONSENT_HOSPITAL,
            subject=subject_of(run_id, 0),
            consent_id="cns-template",
            effective_at=effective_at,
            sequence=0,
        ),
        source=_hospital_source(CONSENT_HOSPITAL),
    )
    return [
        _build(
            template,
            topic,
            first + index,
            {
                "subject": subject_of(run_id, consent_sequence),
                "consent_id": consent_id_of(run_id, consent_sequence),
                "sequence": first + index,
            },
            command=True,
        )
        for index, consent_sequence in enumerate(consent_sequences)
    ]


def revocation_setup(run_id: str, consent_sequences: Sequence[int], *, grants: int, now: datetime) -> list[BenchEvent]:
    """Put each subject in `grants` active grants: one dataset holding them all, approved `grants` times.

    The subjects record the MII research consent first. Order on the bus is
    kept where it matters: a dataset's events share its key, and one
    application's events share theirs.
    """
    dataset_id = f"ds-{CONSENT_HOSPITAL}-bench-{run_id}"
    events = record_consents_for(run_id, consent_sequences, MII_CONSENT)
    catalog = _dataset_events(run_id, dataset_id, CONSENT_HOSPITAL, [subject_of(run_id, number) for number in consent_sequences])
    review = [event for number in range(grants) for event in _grant_events(run_id, dataset_id, number, now)]
    return events + catalog + review


def record_consents_for(run_id: str, consent_sequences: Sequence[int], consent_file: Path) -> list[BenchEvent]:
    """RecordConsent for chosen sequence numbers (each subject and consent id follow from its number)."""
    built = []
    for sequence in consent_sequences:
        built.extend(record_consents(run_id, sequence, 1, consent_file=consent_file))
    return built


def _dataset_events(run_id: str, dataset_id: str, holder: str, subjects: list[str]) -> list[BenchEvent]:
    registered = _Template(_registered(dataset_id, holder, len(subjects)), source="medgov/catalog")
    published = _Template(_published(dataset_id, holder, len(subjects)), source="medgov/catalog")
    chunks = [subjects[index : index + 500] for index in range(0, len(subjects), 500)] or [[]]
    added = _Template(
        DatasetSubjectsAdded(
            dataset_id=dataset_id, version=1, institution_id=holder, chunk_index=0, chunk_count=1, subjects=()
        ),
        source="medgov/catalog",
    )
    events = [_build(registered, CATALOG_TOPIC, -1, {})]
    for index, chunk in enumerate(chunks):
        events.append(
            _build(added, CATALOG_TOPIC, -1, {"chunk_index": index, "chunk_count": len(chunks), "subjects": chunk})
        )
    events.append(_build(published, CATALOG_TOPIC, -1, {}))
    return events


def _grant_events(run_id: str, dataset_id: str, number: int, now: datetime) -> list[BenchEvent]:
    application_id = f"app-bench-{run_id}-{number:03d}"
    grant_id = f"grant-bench-{run_id}-{number:03d}"
    submitted = ApplicationSubmitted(
        application_id=application_id,
        applicant_institution=GRANTEE,
        principal_investigator="Dr. Kim",
        title="흉부 CT 결절 검출 모델",
        purpose_text="폐결절 검출 AI 학습",
        purpose_codes=("HMB",),
        dataset_ids=(dataset_id,),
        requested_start=now.date(),
        requested_end=(now + timedelta(days=300)).date(),
        data_environment="secure_enclave",
        irb_document_ref="irb://dcmc/2026-bench",
        region=REGION,
        regions_involved=(REGION,),
        submitted_at=now - timedelta(days=15),
    )
    approved = ApplicationApproved(
        application_id=application_id,
        applicant_institution=GRANTEE,
        decision_ids=("dec-irb-bench", "dec-drb-bench"),
        conditions=("Secure enclave only",),
        decided_at=now - timedelta(minutes=1),
        days_used=12.0,
    )
    granted = _access_granted(application_id, grant_id, dataset_id, CONSENT_HOSPITAL, now)
    # The AccessGranted envelope time is when the grant took effect, so it must not lie in the future.
    at = now - timedelta(minutes=1)
    return [_encode(wrap(payload, source="medgov/review", region=REGION, time=at), REVIEW_TOPIC) for payload in (submitted, approved, granted)]


def _encode(envelope: Envelope, topic: str) -> BenchEvent:
    parse_payload(envelope)
    return BenchEvent(-1, envelope.id, topic, envelope.subject.encode(), envelope.to_json())


def _access_granted(application_id: str, grant_id: str, dataset_id: str, holder: str, now: datetime) -> AccessGranted:
    return AccessGranted(
        application_id=application_id,
        grant_id=grant_id,
        grantee_institution=GRANTEE,
        dataset_id=dataset_id,
        dataset_ids=(dataset_id,),
        holder_institution=holder,
        data_environment="secure_enclave",
        purpose_codes=("HMB",),
        conditions=("Secure enclave only",),
        starts_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=300),
        region=REGION,
    )


def _description(holder: str) -> DatasetDescription:
    return DatasetDescription(
        title="흉부 CT 코호트",
        description="Chest CT studies 2019-2024",
        publisher=holder,
        themes=("HEAL",),
        keywords=("CT", "lung"),
        temporal_start="2019-01-01",
        temporal_end="2024-12-31",
        access_rights="restricted",
        duo_codes=("HMB", "NCU"),
        legal_basis="pseudonymized_research",
        contact_point=f"data-office@{holder}.example",
        distribution_formats=("application/dicom", "application/fhir+json"),
    )


def _figures(subject_count: int) -> DatasetFigures:
    return DatasetFigures(
        resource_counts={"ImagingStudy": 1},
        subject_count=subject_count,
        record_count=subject_count + 1,
        condition_codes=(),
        observation_codes=(),
        modalities=("CR", "CT"),
        body_parts=("CHEST",),
        study_count=2,
        series_count=4,
        instance_count=12,
        character_sets=(),
        date_start="2019-03-01",
        date_end="2024-11-30",
    )


def _registered(dataset_id: str, holder: str, subject_count: int, region: str = REGION) -> DatasetRegistered:
    return DatasetRegistered(
        dataset_id=dataset_id,
        version=1,
        institution_id=holder,
        region=region,
        description=_description(holder),
        figures=_figures(subject_count),
        completeness_score=85,
        registered_at=EPOCH,
    )


def _published(dataset_id: str, holder: str, subject_count: int, region: str = REGION) -> DatasetPublished:
    return DatasetPublished(
        dataset_id=dataset_id,
        version=1,
        institution_id=holder,
        region=region,
        title="흉부 CT 코호트",
        duo_codes=("HMB", "NCU"),
        legal_basis="pseudonymized_research",
        completeness_score=85,
        record_count=subject_count + 1,
        subject_count=subject_count,
        published_at=EPOCH,
    )


# -- the other services' mixes -------------------------------------------------------


def _mix(count: int, first: int, pattern: Sequence[str], builders: dict[str, Callable[[int], BenchEvent]]) -> list[BenchEvent]:
    return [builders[pattern[sequence % len(pattern)]](sequence) for sequence in range(first, first + count)]


def review_workload(run_id: str, count: int) -> Workload:
    """Submissions from an applicant (nine in ten events) and dataset publications (one in ten).

    Submissions name datasets published in the setup, so screening accepts
    them; their institution is a fresh id with its own inbound topic.
    """
    institution = f"bench-{run_id}"
    topic = inbound_topic(institution)
    pool = [f"ds-bench-{run_id}-{number:03d}" for number in range(20)]
    setup = [_build(_Template(_published(dataset_id, "knuh", 100), source="medgov/catalog"), CATALOG_TOPIC, -1, {}) for dataset_id in pool]

    submit = _Template(
        SubmitApplication(
            institution_id=institution,
            application_id="app-template",
            idempotency_key="sub-template",
            applicant_institution=APPLICANT,
            principal_investigator="Dr. Park",
            title="Chest CT nodule detection",
            purpose_text="Train a nodule detector",
            purpose_codes=("HMB",),
            dataset_ids=(pool[0],),
            requested_start=date(2027, 4, 1),
            requested_end=date(2027, 12, 31),
            data_environment="secure_enclave",
            irb_document_ref="irb://knuh/2027-bench",
            sequence=0,
        ),
        source=_hospital_source(institution),
    )
    publish = _Template(_published("ds-template", "knuh", 100), source="medgov/catalog")

    def submission(sequence: int) -> BenchEvent:
        return _build(
            submit,
            topic,
            sequence,
            {
                "application_id": application_id_of(run_id, sequence),
                "idempotency_key": f"sub-{sequence}",
                "dataset_ids": [pool[sequence % len(pool)], pool[(sequence + 7) % len(pool)]],
                "sequence": sequence,
            },
            command=True,
        )

    def publication(sequence: int) -> BenchEvent:
        return _build(publish, CATALOG_TOPIC, sequence, {"dataset_id": f"ds-bench-{run_id}-p{sequence:08d}"})

    pattern = ["submit"] * 9 + ["publish"]
    events = _mix(count, 0, pattern, {"submit": submission, "publish": publication})
    return Workload(events=events, setup=setup, fresh_topics=[topic])


def application_id_of(run_id: str, sequence: int) -> str:
    return f"app-bench-{run_id}-{sequence:08d}"


def catalog_workload(run_id: str, count: int) -> Workload:
    """Other regions' registrations and publications (19 in 20 events) and local registrations (1 in 20).

    A local registration reads two sample files (a FHIR ImagingStudy and a
    DICOM instance whose patient name raises a compliance flag); its
    institution is a fresh hospital with its own inbound topic.
    """
    institution = f"bench-{run_id}"
    topic = inbound_topic(institution)
    register = _Template(
        RegisterDataset(
            institution_id=institution,
            dataset_id="ds-template",
            description=_description(institution),
            files=REGISTERED_FILES,
            subjects=(),
            sequence=0,
        ),
        source=_hospital_source(institution),
    )
    remote_registered = _Template(_registered("ds-template", "cnuh", 40, REMOTE_REGION), source="medgov/catalog", region=REMOTE_REGION)
    remote_published = _Template(_published("ds-template", "cnuh", 40, REMOTE_REGION), source="medgov/catalog", region=REMOTE_REGION)

    def local(sequence: int) -> BenchEvent:
        return _build(register, topic, sequence, {"dataset_id": dataset_id_of(run_id, sequence), "sequence": sequence}, command=True)

    def remote(sequence: int) -> BenchEvent:
        # A registration and its publication share the dataset id, hence the
        # partition, so the publication is applied after the registration.
        dataset_id = f"ds-remote-{run_id}-{sequence // 2:08d}"
        template = remote_registered if sequence % 2 == 0 else remote_published
        return _build(template, CATALOG_TOPIC, sequence, {"dataset_id": dataset_id})

    pattern = ["remote"] * 19 + ["local"]
    events = _mix(count, 0, pattern, {"remote": remote, "local": local})
    return Workload(events=events, fresh_topics=[topic], institutions=[throwaway_hospital(institution)])


def dataset_id_of(run_id: str, sequence: int) -> str:
    return f"ds-bench-{run_id}-{sequence:08d}"


def grants_workload(run_id: str, count: int) -> Workload:
    """Hospitals' dataset publications and access grants (nine in twenty events each), and compliance flags raised and cleared."""
    publish = _Template(_published("ds-template", "knuh", 100), source="medgov/catalog")
    grant = _Template(_access_granted("app-template", "grant-template", "ds-template", "knuh", EPOCH), source="medgov/review")
    flagged = _Template(
        ComplianceViolationFlagged(
            dataset_id="ds-template",
            flag_id="flag-template",
            institution_id="knuh",
            region=REGION,
            rule="direct_identifier_in_pseudonymized_dataset",
            severity="medium",
            findings=(Finding(file="Patient.000.ndjson", location="Patient[3].name", kind="name"),),
            flagged_at=EPOCH,
        ),
        source="medgov/catalog",
    )
    cleared = _Template(
        ComplianceFlagCleared(
            dataset_id="ds-template", flag_id="flag-template", institution_id="knuh", cleared_at=EPOCH, note="Names removed"
        ),
        source="medgov/catalog",
    )

    def holder(sequence: int) -> str:
        return DATA_HOLDERS[sequence % len(DATA_HOLDERS)]

    def publication(sequence: int) -> BenchEvent:
        return _build(
            publish, CATALOG_TOPIC, sequence, {"dataset_id": dataset_id_of(run_id, sequence), "institution_id": holder(sequence)}
        )

    def access(sequence: int) -> BenchEvent:
        dataset_sequence = max(sequence - 1, 0)
        return _build(
            grant,
            REVIEW_TOPIC,
            sequence,
            {
                "application_id": application_id_of(run_id, sequence),
                "grant_id": f"grant-bench-{run_id}-{sequence:08d}",
                "dataset_id": dataset_id_of(run_id, dataset_sequence),
                "dataset_ids": [dataset_id_of(run_id, dataset_sequence)],
                "holder_institution": holder(sequence),
            },
        )

    def flag(sequence: int) -> BenchEvent:
        # The flag and its clearance share the dataset id and so the partition.
        flag_id = f"flag-bench-{run_id}-{sequence // 2:08d}"
        data = {"dataset_id": f"ds-flagged-{run_id}-{sequence // 2:08d}", "flag_id": flag_id, "institution_id": holder(sequence // 2)}
        return _build(flagged if sequence % 2 == 0 else cleared, CATALOG_TOPIC, sequence, data)

    pattern = ["publish", "access"] * 9 + ["flag", "flag"]
    events = _mix(count, 0, pattern, {"publish": publication, "access": access, "flag": flag})
    return Workload(events=events)
