"""Sending the hospitals' commands so that a retry never creates a second event.

Each command is wrapped in its CloudEvents envelope once. When the broker
does not acknowledge it (it is restarting, a leader moves), the same bytes
with the same event id are sent again until the broker acknowledges them.
A copy that did reach the log before the failure is then dropped by the
services' inboxes instead of becoming a second event.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.registry import inbound_topic

from medgov_cli.chaos.workload import REGION, Command
from medgov_cli.settings import PublisherSettings

log = structlog.get_logger(__name__)

_BACKOFF_START_S = 0.2
_BACKOFF_MAX_S = 5.0


class DeliveryFailed(Exception):
    """The broker did not acknowledge a command before the delivery deadline; it may or may not be in the log."""

    def __init__(self, message: str, event_id: uuid.UUID) -> None:
        super().__init__(message)
        self.event_id = event_id


@dataclass(frozen=True)
class Delivery:
    event_id: uuid.UUID
    attempts: int


class CommandSender:
    """One idempotent producer per sending institution, as each hospital runs its own client."""

    def __init__(self, settings: PublisherSettings, sources: tuple[str, ...], *, deadline_s: float) -> None:
        self.settings = settings
        self.sources = sources
        self.deadline_s = deadline_s
        self.retried = 0
        self._producers: dict[str, AIOKafkaProducer] = {}

    async def __aenter__(self) -> "CommandSender":
        for source in self.sources:
            producer = AIOKafkaProducer(
                **self.settings.client_options(), enable_idempotence=True, acks="all",
                client_id=f"hospital-{source}", linger_ms=5,
            )
            await producer.start()
            self._producers[source] = producer
        return self

    async def __aexit__(self, *_: object) -> None:
        for producer in self._producers.values():
            await producer.stop()

    async def deliver(self, command: Command) -> Delivery:
        """Send until the broker acknowledges; raise DeliveryFailed after `deadline_s`."""
        envelope = wrap(command.payload, source=f"medgov/hospital/{command.institution}", region=REGION)
        value = envelope.to_json()
        key = envelope.subject.encode()
        topic = inbound_topic(command.institution)
        producer = self._producers[command.institution]

        deadline = time.monotonic() + self.deadline_s
        delay = _BACKOFF_START_S
        attempt = 1
        while True:
            try:
                await producer.send_and_wait(topic, value=value, key=key)
                return Delivery(envelope.id, attempt)
            except KafkaError as error:
                if time.monotonic() > deadline:
                    raise DeliveryFailed(
                        f"{command.event_type} {envelope.id} from {command.institution} not acknowledged after "
                        f"{attempt} attempts in {self.deadline_s:.0f} s: {type(error).__name__}: {error}",
                        envelope.id,
                    ) from error
                self.retried += 1
                log.debug("send not acknowledged; sending the same event again", event_id=str(envelope.id),
                          attempt=attempt, error=f"{type(error).__name__}: {error}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX_S)
            attempt += 1
