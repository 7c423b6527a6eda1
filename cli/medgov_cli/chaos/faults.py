"""When and where a chaos run strikes: service kills, broker restarts and database restarts.

Each fault fires when the count of commands the services have applied
passes a random point between 5 % and 95 % of the run, so every fault hits
while work is in flight, however fast the machine is.
"""

import random
from dataclasses import dataclass
from enum import StrEnum

from medgov_cli.chaos.stack import SERVICES

FIRST_FAULT_AT = 0.05
LAST_FAULT_AT = 0.95


class FaultKind(StrEnum):
    KILL = "kill"
    KAFKA_RESTART = "kafka_restart"
    POSTGRES_RESTART = "postgres_restart"


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    at_applied: int  # fires once this many commands were applied
    service: str | None = None  # the service a kill hits

    def describe(self) -> str:
        if self.kind is FaultKind.KILL:
            return f"SIGKILL {self.service}"
        return "restart Kafka" if self.kind is FaultKind.KAFKA_RESTART else "restart PostgreSQL"


def plan_faults(
    rng: random.Random, *, events: int, kills: int, kafka_restarts: int, postgres_restarts: int
) -> list[Fault]:
    """Return the faults in firing order; kills target a random service each."""
    kinds = [FaultKind.KILL] * kills + [FaultKind.KAFKA_RESTART] * kafka_restarts
    kinds += [FaultKind.POSTGRES_RESTART] * postgres_restarts
    rng.shuffle(kinds)
    points = sorted(int(events * rng.uniform(FIRST_FAULT_AT, LAST_FAULT_AT)) for _ in kinds)
    return [
        Fault(kind, point, rng.choice(SERVICES) if kind is FaultKind.KILL else None)
        for kind, point in zip(kinds, points, strict=True)
    ]
