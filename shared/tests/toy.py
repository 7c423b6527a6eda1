"""A minimal service on the real runtime, used to test the runtime itself."""

import asyncio
from collections import Counter
from pathlib import Path

from medgov_shared.contracts.events.consent import ConsentRevoked
from medgov_shared.messaging.context import HandlerContext, RejectEvent, TransientError
from medgov_shared.service import Service
from medgov_shared.settings import ServiceSettings

MIGRATIONS = Path(__file__).with_name("toy_migrations")


class ToySettings(ServiceSettings):
    service_name = "consent"  # borrows a registered topic name for its outbox


# Test controls: how often each consent id was handled, ids that fail transiently
# until removed from the set, and ids whose handler blocks (to be cancelled).
CALLS: Counter[str] = Counter()
FLAKY: set[str] = set()
SLOW: set[str] = set()


async def record_revocation(context: HandlerContext, payload: ConsentRevoked) -> None:
    CALLS[payload.consent_id] += 1
    if payload.consent_id in FLAKY:
        raise TransientError(f"{payload.consent_id} is flaky")
    if payload.consent_id in SLOW:
        await context.connection.execute(
            "INSERT INTO effects (event_id, subject) VALUES ($1, 'half-written')", context.incoming.id
        )
        await asyncio.sleep(3600)
    if payload.consent_id.startswith("reject-"):
        raise RejectEvent(f"consent {payload.consent_id} is marked for rejection")
    if payload.consent_id.startswith("boom-"):
        raise RuntimeError("handler bug")
    assert context.incoming is not None
    await context.connection.execute(
        "INSERT INTO effects (event_id, subject) VALUES ($1, $2)", context.incoming.id, payload.subject
    )


def build_toy(settings: ToySettings, topics: list[str]) -> Service:
    return Service(
        settings=settings,
        migrations=MIGRATIONS,
        handlers={"ConsentRevoked": record_revocation},
        consumes=topics,
    )
