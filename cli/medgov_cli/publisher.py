"""Client library a hospital's systems use to send commands to their inbound topic.

Everything is validated against the contracts and pseudonymized on the
hospital side; only then does a record leave through Kafka. Each record gets
its own outcome (accepted after the broker acknowledged it, or rejected with
the reason), so a batch with a few bad records still delivers the good ones.
"""

import asyncio
import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from pydantic import ValidationError

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.events.inbound import RecordConsent, RevokeConsent
from medgov_shared.contracts.institutions import get_institution
from medgov_shared.contracts.pseudonym import is_pseudonym, pseudonymize
from medgov_shared.contracts.registry import inbound_topic, payload_class
from medgov_shared.messaging.errors import describe_validation_error

from medgov_consent.domain.errors import ConsentRejected
from medgov_consent.domain.fhir_consent import read_fhir_consent

from medgov_cli.settings import BrokerUnavailable, PublisherSettings
from medgov_cli.subjects import json_type_name

_TRANSIENT = (KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError, TimeoutError)

# aiokafka retries a batch for as long as the broker is away; each attempt is cut off after this long.
SEND_TIMEOUT_S = 15.0
# How long closing waits for records still in the producer's buffer.
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RecordOutcome:
    index: int
    label: str  # file name or line number shown to the operator
    accepted: bool
    event_type: str | None = None
    event_id: str | None = None
    reason: str | None = None


@dataclass
class PublishReport:
    outcomes: list[RecordOutcome] = field(default_factory=list)

    @property
    def accepted(self) -> list[RecordOutcome]:
        return [item for item in self.outcomes if item.accepted]

    @property
    def rejected(self) -> list[RecordOutcome]:
        return [item for item in self.outcomes if not item.accepted]


class Rejected(ValueError):
    """A record that cannot be sent; the message gives the reason."""


def staged_file(staging_root: Path, name: str) -> Path:
    """Return the path of `name` inside the staging folder; a path that leads outside it is rejected.

    The catalog reads dataset files from the same folder, so a name that
    resolves elsewhere (an absolute path, "..", or a symbolic link out of
    the folder) would make the publisher read and describe a file the
    catalog never reads.
    """
    root = staging_root.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise Rejected(f"{name}: outside the staging folder {root}; give a path relative to --staging-root")
    if path.is_dir():
        raise Rejected(f"{name}: a folder in the staging folder {root}; name the files in it one by one")
    if not path.is_file():
        raise Rejected(f"{name}: no such file in the staging folder {root}")
    return path


class HospitalPublisher:
    def __init__(self, settings: PublisherSettings, institution_id: str, *, max_attempts: int = 5) -> None:
        institution = get_institution(institution_id)
        if institution.region != settings.region:
            raise ValueError(
                f"institution {institution_id} belongs to region {institution.region.value}, "
                f"but MEDGOV_REGION is {settings.region.value}"
            )
        self.settings = settings
        self.institution_id = institution_id
        self.topic = inbound_topic(institution_id)
        self.max_attempts = max_attempts
        self._producer: AIOKafkaProducer | None = None
        self._sequence = 0

    async def __aenter__(self) -> "HospitalPublisher":
        producer = AIOKafkaProducer(
            **self.settings.client_options(), enable_idempotence=True, acks="all", client_id=f"hospital-{self.institution_id}"
        )
        bootstrap = self.settings.kafka_bootstrap_servers
        try:
            await producer.start()
        except KafkaConnectionError:
            await producer.stop()
            raise BrokerUnavailable(
                f"cannot reach the Kafka broker at {bootstrap}; check MEDGOV_KAFKA_BOOTSTRAP_SERVERS (or KAFKA_BOOTSTRAP_SERVERS) "
                "and that the broker runs (`make up` starts the local one)"
            ) from None
        try:
            await producer.partitions_for(self.topic)
        except (UnknownTopicOrPartitionError, KafkaTimeoutError):
            await producer.stop()
            raise BrokerUnavailable(
                f"topic {self.topic} not found on the Kafka broker at {bootstrap}; the services create it "
                "when they start, or the region operator creates it for a new hospital"
            ) from None
        except TopicAuthorizationFailedError:
            await producer.stop()
            raise BrokerUnavailable(
                f"not authorized to write topic {self.topic} on the Kafka broker at {bootstrap}; "
                "check the hospital's Kafka user (MEDGOV_KAFKA_SASL_USERNAME)"
            ) from None
        self._producer = producer
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), timeout=CLOSE_TIMEOUT_S)
            except TimeoutError:
                # Only records never reported as sent can still be in the buffer.
                pass

    # -- building commands -------------------------------------------------------

    def pseudonymize(self, local_patient_id: str) -> str:
        """Return the pseudonym of a local id; a value that already is a pseudonym passes unchanged."""
        if not isinstance(local_patient_id, str):
            raise Rejected(f"the local patient id must be a string, got {json_type_name(local_patient_id)}")
        if is_pseudonym(local_patient_id.strip()):
            pseudonym = local_patient_id.strip()
            region, own_region = pseudonym.split(".", 1)[0], self.settings.region.value
            if region != own_region:
                # The consent service would dead-letter it as subject_of_other_region.
                raise Rejected(
                    f"the pseudonym {pseudonym[:24]}... belongs to region {region!r}, not to {own_region!r} "
                    f"(MEDGOV_REGION); give the local patient id, or send from that region"
                )
            return pseudonym
        return pseudonymize(
            local_patient_id,
            region=self.settings.region.value,
            key=self.settings.key_bytes(),
            key_version=self.settings.pseudonym_key_version,
        )

    def command(self, event_type: str, data: dict[str, Any], *, local_patient_id: str | None = None) -> EventPayload:
        """Validate `data` as the named inbound command, pseudonymizing the patient first."""
        try:
            cls = payload_class(event_type)
        except LookupError:
            raise Rejected(f"unknown command type {event_type!r}") from None
        if cls.__module__ != RecordConsent.__module__:
            raise Rejected(f"{event_type} is not a hospital command; hospitals send RegisterDataset, RecordConsent, RevokeConsent or SubmitApplication")
        kind = get_institution(self.institution_id).kind
        if event_type in (RecordConsent.event_type, RevokeConsent.event_type) and kind != "hospital":
            # The consent service would dead-letter it, so reject it before anything is sent.
            raise Rejected(f"{event_type} comes only from hospitals; {self.institution_id} is a {kind}")
        given_institution = data.get("institution_id", self.institution_id)
        if given_institution is None:
            raise Rejected("data.institution_id is null; remove it, the command takes the institution from -i")
        if given_institution != self.institution_id:
            raise Rejected(
                f"data.institution_id is {given_institution!r}, but the command is sent as {self.institution_id!r}; "
                f"remove it from the data or send the command as {given_institution!r}"
            )
        body = {**data, "institution_id": self.institution_id}
        if cls is RecordConsent and isinstance(body.get("fhir_consent"), dict):
            # Whatever path built the command, the hospital's patient id and narrative stay at the hospital.
            body["fhir_consent"] = self.cleaned_consent(body["fhir_consent"])
        if local_patient_id is not None:
            subject = self.pseudonymize(local_patient_id)
            if body.get("subject", subject) != subject:
                raise Rejected(
                    "the patient is given twice, as 'patient' and as data.subject, and they differ; keep one of them"
                )
            body["subject"] = subject
        elif "subject" in cls.model_fields and "subject" not in body:
            raise Rejected(f"{event_type} needs the patient: add \"patient\": <local patient id> to the line")
        try:
            command = cls.model_validate(body)
        except ValidationError as error:
            raise Rejected(f"invalid {event_type}: {describe_validation_error(error)}") from None
        return command

    @staticmethod
    def read_consent_locally(consent_id: str, fhir_consent: dict[str, Any]) -> None:
        """Read a FHIR Consent as the consent service will, and raise Rejected for one it would dead-letter."""
        try:
            read_fhir_consent(fhir_consent)
        except ConsentRejected as error:
            raise Rejected(f"Consent {consent_id} rejected ({error.code}): {error.message}") from None

    def consent_command(self, fhir_consent: dict[str, Any], *, read_locally: bool = True) -> RecordConsent:
        """Turn a FHIR R4 Consent into RecordConsent, replacing the patient reference with its pseudonym.

        With `read_locally` the Consent is first read as the consent service
        will read it, and one the service would dead-letter raises Rejected.
        """
        if not isinstance(fhir_consent, dict):
            raise Rejected(f"expected a FHIR Consent resource (a JSON object), got {json_type_name(fhir_consent)}")
        if fhir_consent.get("resourceType") != "Consent":
            raise Rejected(f"expected a FHIR Consent resource, got resourceType {fhir_consent.get('resourceType')!r}")
        patient = fhir_consent.get("patient")
        if patient is None:
            raise Rejected("Consent.patient is missing; the consent cannot be tied to a patient")
        if not isinstance(patient, dict):
            raise Rejected(
                f"Consent.patient must be a Reference object such as {{\"reference\": \"Patient/123\"}}, "
                f"got {json_type_name(patient)}"
            )
        reference = patient.get("reference")
        if not reference:
            raise Rejected("Consent.patient.reference is missing; the consent cannot be tied to a patient")
        if not isinstance(reference, str):
            raise Rejected(f"Consent.patient.reference must be a string such as \"Patient/123\", "
                           f"got {json_type_name(reference)}")
        local_id = reference.rsplit("/", 1)[-1].removeprefix("urn:uuid:")
        consent_id = str(fhir_consent.get("id") or "")
        if not consent_id:
            raise Rejected("Consent.id is missing")
        # `command` removes the patient and narrative and pseudonymizes the other Patient references.
        command = self.command(
            "RecordConsent",
            {"consent_id": f"{self.institution_id}-{consent_id}", "fhir_consent": fhir_consent},
            local_patient_id=local_id,
        )
        assert isinstance(command, RecordConsent)
        if read_locally:
            self.read_consent_locally(consent_id, command.fhir_consent)
        return command

    def cleaned_consent(self, fhir_consent: dict[str, Any]) -> dict[str, Any]:
        """Return a copy of a FHIR Consent without its patient and narrative, other Patient references pseudonymized."""
        cleaned = self._pseudonymize_patient_references(copy.deepcopy(fhir_consent))
        cleaned.pop("patient", None)
        cleaned.pop("text", None)  # narrative often names the patient
        return cleaned

    def _pseudonymize_patient_references(self, value: Any) -> Any:
        """Replace every Patient reference (e.g. a performer) with an identifier holding its pseudonym."""
        if isinstance(value, list):
            return [self._pseudonymize_patient_references(item) for item in value]
        if not isinstance(value, dict):
            return value
        reference = value.get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            return {
                "type": "Patient",
                "identifier": {"system": "urn:medgov:pseudonym", "value": self.pseudonymize(reference[len("Patient/"):])},
            }
        return {key: self._pseudonymize_patient_references(item) for key, item in value.items()}

    def revocation_command(
        self, local_patient_id: str, consent_id: str, effective_at: str, scope: ConsentScope | None = None
    ) -> RevokeConsent:
        data: dict[str, Any] = {"consent_id": consent_id, "effective_at": effective_at}
        if scope is not None:
            data["scope"] = scope.model_dump(mode="json")
        command = self.command("RevokeConsent", data, local_patient_id=local_patient_id)
        assert isinstance(command, RevokeConsent)
        return command

    # -- sending -------------------------------------------------------------------

    def envelope(self, command: EventPayload) -> Envelope:
        """Wrap a command in a new envelope from this hospital, numbering it in this publisher's sequence."""
        self._sequence += 1
        if getattr(command, "sequence", 1) is None:
            command = command.model_copy(update={"sequence": self._sequence})
        return wrap(command, source=f"medgov/hospital/{self.institution_id}", region=self.settings.region)

    async def send(self, command: EventPayload) -> str:
        """Send one command and wait for the broker; transient failures are retried with back-off."""
        return await self.send_envelope(self.envelope(command))

    async def send_envelope(self, envelope: Envelope) -> str:
        """Send one envelope and return its event id; every retry resends the same envelope.

        A send that timed out may still have reached the broker. Resending the
        same event id lets the services' inbox drop the second copy, where a
        new envelope would be applied twice.
        """
        assert self._producer is not None, "use `async with HospitalPublisher(...)`"
        value = envelope.to_json()
        delay = 0.2
        for attempt in range(1, self.max_attempts + 1):
            try:
                await asyncio.wait_for(
                    self._producer.send_and_wait(self.topic, value=value, key=envelope.subject.encode()),
                    timeout=SEND_TIMEOUT_S,
                )
                return str(envelope.id)
            except _TRANSIENT:
                if attempt == self.max_attempts:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def publish_all(self, items: Iterable[tuple[str, EventPayload | Rejected]]) -> PublishReport:
        """Send every valid command; rejected items are reported with their reason and not sent."""
        report = PublishReport()
        unavailable_at: str | None = None
        for index, (label, item) in enumerate(items):
            if isinstance(item, Rejected):
                report.outcomes.append(RecordOutcome(index, label, False, reason=str(item)))
                continue
            if unavailable_at is not None:
                # Each record would wait through every retry again; report which ones to send later instead.
                report.outcomes.append(RecordOutcome(
                    index, label, False, item.event_type, reason=f"not sent: the broker was unavailable at {unavailable_at}"
                ))
                continue
            try:
                event_id = await self.send(item)
            except (ValueError, TypeError) as error:
                # Raised before anything is sent, for example by a document nested too deep to write as JSON.
                report.outcomes.append(RecordOutcome(
                    index, label, False, item.event_type, reason=f"not sent: the command cannot be written as JSON: {error}"
                ))
                continue
            except _TRANSIENT as error:
                unavailable_at = label
                report.outcomes.append(RecordOutcome(
                    index, label, False, item.event_type,
                    reason=f"broker unavailable after {self.max_attempts} attempts: {type(error).__name__} {error}".rstrip(),
                ))
                continue
            except KafkaError as error:
                # Not retried: the broker refused this record (too large, not authorized ...).
                report.outcomes.append(RecordOutcome(
                    index, label, False, item.event_type, reason=f"rejected by the broker: {type(error).__name__}: {error}"
                ))
                continue
            report.outcomes.append(RecordOutcome(index, label, True, item.event_type, event_id))
        return report
