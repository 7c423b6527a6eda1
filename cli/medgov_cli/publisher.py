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
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError
from pydantic import ValidationError

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.events.inbound import RecordConsent, RevokeConsent
from medgov_shared.contracts.institutions import get_institution
from medgov_shared.contracts.pseudonym import is_pseudonym, pseudonymize
from medgov_shared.contracts.registry import inbound_topic, payload_class
from medgov_shared.messaging.errors import describe_validation_error

from medgov_cli.settings import PublisherSettings

_TRANSIENT = (KafkaConnectionError, KafkaTimeoutError, NotLeaderForPartitionError)


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
        self._producer = AIOKafkaProducer(
            **self.settings.client_options(), enable_idempotence=True, acks="all", client_id=f"hospital-{self.institution_id}"
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._producer is not None:
            await self._producer.stop()

    # -- building commands -------------------------------------------------------

    def pseudonymize(self, local_patient_id: str) -> str:
        """Return the pseudonym of a local id; a value that already is a pseudonym passes unchanged."""
        if is_pseudonym(local_patient_id.strip()):
            return local_patient_id.strip()
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
        body = {**data, "institution_id": self.institution_id}
        if local_patient_id is not None:
            body["subject"] = self.pseudonymize(local_patient_id)
        try:
            return cls.model_validate(body)
        except ValidationError as error:
            raise Rejected(f"invalid {event_type}: {describe_validation_error(error)}") from None

    def consent_command(self, fhir_consent: dict[str, Any]) -> RecordConsent:
        """Turn a FHIR R4 Consent into RecordConsent, replacing the patient reference with its pseudonym."""
        if fhir_consent.get("resourceType") != "Consent":
            raise Rejected(f"expected a FHIR Consent resource, got resourceType {fhir_consent.get('resourceType')!r}")
        reference = (fhir_consent.get("patient") or {}).get("reference")
        if not reference:
            raise Rejected("Consent.patient.reference is missing; the consent cannot be tied to a patient")
        local_id = reference.rsplit("/", 1)[-1].removeprefix("urn:uuid:")
        cleaned = self._pseudonymize_patient_references(copy.deepcopy(fhir_consent))
        cleaned.pop("patient", None)
        cleaned.pop("text", None)  # narrative often names the patient
        consent_id = str(fhir_consent.get("id") or "")
        if not consent_id:
            raise Rejected("Consent.id is missing")
        command = self.command(
            "RecordConsent",
            {"consent_id": f"{self.institution_id}-{consent_id}", "fhir_consent": cleaned},
            local_patient_id=local_id,
        )
        assert isinstance(command, RecordConsent)
        return command

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

    async def send(self, command: EventPayload) -> str:
        """Send one command and wait for the broker; transient failures are retried with back-off."""
        assert self._producer is not None, "use `async with HospitalPublisher(...)`"
        self._sequence += 1
        if getattr(command, "sequence", 1) is None:
            command = command.model_copy(update={"sequence": self._sequence})
        envelope = wrap(command, source=f"medgov/hospital/{self.institution_id}", region=self.settings.region)
        delay = 0.2
        for attempt in range(1, self.max_attempts + 1):
            try:
                await self._producer.send_and_wait(self.topic, value=envelope.to_json(), key=envelope.subject.encode())
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
        for index, (label, item) in enumerate(items):
            if isinstance(item, Rejected):
                report.outcomes.append(RecordOutcome(index, label, False, reason=str(item)))
                continue
            try:
                event_id = await self.send(item)
            except _TRANSIENT as error:
                report.outcomes.append(
                    RecordOutcome(index, label, False, item.event_type, reason=f"broker unavailable after retries: {error}")
                )
                continue
            report.outcomes.append(RecordOutcome(index, label, True, item.event_type, event_id))
        return report
