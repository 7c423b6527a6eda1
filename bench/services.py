"""Per-service facts the benchmark uses: the subscription, the environment, and the tables where effects land."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from medgov_catalog.handlers import CONSUMED_TOPICS as CATALOG_TOPICS
from medgov_consent.handlers import CONSUMED_TOPICS as CONSENT_TOPICS
from medgov_grants.handlers import CONSUMED_TOPICS as GRANTS_TOPICS
from medgov_review.handlers import CONSUMED_TOPICS as REVIEW_TOPICS
from medgov_shared.service import consumed_topics_pattern

from bench import database
from bench.gate import GateResult, check
from bench.workload import SAMPLE_DATA, BenchEvent


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    consumes: tuple[str, ...]
    consume_inbound: bool  # as each service's build_service() sets it
    # Reads the sequence number of every command whose effect is stored (database name, run id).
    command_effects: Callable[[str, str], Awaitable[list[int]]] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def pattern(self) -> str:
        return consumed_topics_pattern(self.consumes, inbound=self.consume_inbound)

    def env(self) -> dict[str, str]:
        return dict(self.extra_env)

    async def outbox_backlog(self, database_name: str) -> int:
        rows = await database.fetch_column(database_name, "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")
        return int(rows[0])

    async def gate(self, database_name: str, run_id: str, events: Sequence[BenchEvent]) -> GateResult:
        """Check every event reached the inbox once and every command left its effect once."""
        by_id = {event.event_id: event.sequence for event in events}
        applied = await database.fetch_column(database_name, "SELECT event_id FROM inbox WHERE event_id = ANY($1::uuid[])", list(by_id))
        result = check(by_id.values(), (by_id[event_id] for event_id in applied), note=f"{self.name} inbox")
        if result.lost:
            result = replace(result, notes=result.notes + await _dead_letter_notes(database_name, list(by_id)))
        commands = [event.sequence for event in events if event.command]
        if commands and self.command_effects is not None:
            effects = await self.command_effects(database_name, run_id)
            effect_result = check(commands, effects, note=f"{self.name} command effects")
            result = GateResult(
                expected=result.expected,
                lost=max(result.lost, effect_result.lost),
                duplicated=max(result.duplicated, effect_result.duplicated),
                lost_sample=result.lost_sample or effect_result.lost_sample,
                duplicated_sample=result.duplicated_sample or effect_result.duplicated_sample,
                notes=result.notes + effect_result.notes,
            )
        return result


async def _dead_letter_notes(database_name: str, event_ids: list) -> tuple[str, ...]:
    """Summarize why the service dead-lettered events of this run (reason, first error), if it did."""
    rows = await database.fetch_rows(
        database_name,
        "SELECT reason, min(error) AS error, count(*) AS events FROM dead_letters WHERE event_id = ANY($1::text[]) GROUP BY reason",
        [str(event_id) for event_id in event_ids],
    )
    return tuple(f"{row['events']} dead-lettered ({row['reason']}): {row['error'][:300]}" for row in rows)


def _sequence_suffix(identifier: str) -> int:
    return int(identifier.rsplit("-", 1)[1])


async def _consents(database_name: str, run_id: str) -> list[int]:
    ids = await database.fetch_column(database_name, "SELECT consent_id FROM consents WHERE consent_id LIKE $1", f"cns-%-{run_id}-%")
    return [_sequence_suffix(identifier) for identifier in ids]


async def _applications(database_name: str, run_id: str) -> list[int]:
    ids = await database.fetch_column(
        database_name, "SELECT application_id FROM applications WHERE application_id LIKE $1", f"app-bench-{run_id}-%"
    )
    return [_sequence_suffix(identifier) for identifier in ids]


async def _local_datasets(database_name: str, run_id: str) -> list[int]:
    ids = await database.fetch_column(
        database_name, "SELECT dataset_id FROM datasets WHERE origin = 'local' AND dataset_id LIKE $1", f"ds-bench-{run_id}-%"
    )
    return [_sequence_suffix(identifier) for identifier in ids]


CONSENT = ServiceSpec(
    name="consent",
    consumes=CONSENT_TOPICS,
    consume_inbound=True,
    command_effects=_consents,
)
REVIEW = ServiceSpec(
    name="review", consumes=REVIEW_TOPICS, consume_inbound=True, command_effects=_applications
)
CATALOG = ServiceSpec(
    name="catalog",
    consumes=CATALOG_TOPICS,
    consume_inbound=True,
    command_effects=_local_datasets,
    # The sample-data folder is the staging area of every institution, as in the demo.
    extra_env={"MEDGOV_CATALOG_STAGING_ROOT": str(SAMPLE_DATA), "MEDGOV_CATALOG_STAGING_PER_INSTITUTION": "false"},
)
GRANTS = ServiceSpec(
    name="grants", consumes=GRANTS_TOPICS, consume_inbound=False
)

SERVICES = {spec.name: spec for spec in (CONSENT, REVIEW, CATALOG, GRANTS)}
