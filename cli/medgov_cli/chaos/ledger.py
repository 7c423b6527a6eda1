"""The record of sent commands: each one the broker acknowledged, with the key of its expected effect."""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.inbound import RecordConsent, RegisterDataset, RevokeConsent, SubmitApplication

from medgov_cli.chaos.workload import Command


def effect_key(payload: EventPayload) -> tuple[str, ...]:
    """Return the key of the row a command's effect creates: dataset id, (subject, consent id) or application id."""
    if isinstance(payload, RegisterDataset):
        return (payload.dataset_id,)
    if isinstance(payload, RecordConsent | RevokeConsent):
        return (payload.subject, payload.consent_id)
    if isinstance(payload, SubmitApplication):
        return (payload.application_id,)
    raise TypeError(f"no effect key defined for {payload.event_type}")


@dataclass(frozen=True)
class SentEvent:
    """One sent command: its event id, source, sequence number and effect key."""

    event_id: uuid.UUID
    event_type: str
    institution: str
    sequence: int
    key: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.event_type} {self.institution}#{self.sequence} ({self.event_id})"


@dataclass
class Ledger:
    """Commands of one run, sorted by whether the broker acknowledged them."""

    accepted: list[SentEvent] = field(default_factory=list)
    # Commands the broker never acknowledged within the deadline; they may
    # still be in the log, so their effects are neither required nor counted.
    unconfirmed: list[SentEvent] = field(default_factory=list)

    def _entry(self, command: Command, event_id: uuid.UUID) -> SentEvent:
        sequence = command.payload.sequence
        assert sequence is not None, "the workload numbers every command"
        return SentEvent(event_id, command.event_type, command.institution, sequence, effect_key(command.payload))

    def record_accepted(self, command: Command, event_id: uuid.UUID) -> None:
        self.accepted.append(self._entry(command, event_id))

    def record_unconfirmed(self, command: Command, event_id: uuid.UUID) -> None:
        self.unconfirmed.append(self._entry(command, event_id))

    def accepted_of_type(self, event_type: str) -> list[SentEvent]:
        return [item for item in self.accepted if item.event_type == event_type]

    def sequence_gaps(self) -> dict[str, list[int]]:
        """Per source, the sequence numbers below its highest that were neither acknowledged nor given up on."""
        seen: dict[str, set[int]] = defaultdict(set)
        for item in self.accepted + self.unconfirmed:
            seen[item.institution].add(item.sequence)
        return {
            source: missing
            for source, numbers in seen.items()
            if (missing := sorted(set(range(1, max(numbers) + 1)) - numbers))
        }
