"""The one registry of topics, keys and event schemas.

The AsyncAPI document, the JSON Schemas, the Strimzi KafkaTopic resources and
every consumer's parser are derived from what is declared here.
"""

import re
from dataclasses import dataclass, field
from functools import cache

from pydantic import ValidationError

from medgov_shared.contracts.base import FROM_JSON, EventPayload
from medgov_shared.contracts.envelope import Envelope
from medgov_shared.contracts.events import catalog, consent, grants, inbound, review
from medgov_shared.contracts.institutions import all_institutions

SERVICES = ("review", "catalog", "consent", "grants")
INBOUND_TOPIC_PATTERN = r"^medgov\.inbound\.([a-z][a-z0-9-]{1,31})\.v1$"


@dataclass(frozen=True)
class Topic:
    name: str
    owner: str
    key: str
    description: str
    events: tuple[type[EventPayload], ...]
    partitions: int = 6
    retention_ms: int = -1  # service topics are the record of truth for replays; kept forever
    consumers: tuple[str, ...] = field(default=())

    @property
    def dlq(self) -> str:
        return dlq_topic(self.name)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def inbound_topic(institution_id: str) -> str:
    return f"medgov.inbound.{institution_id}.v1"


def institution_of_inbound_topic(topic: str) -> str | None:
    match = re.match(INBOUND_TOPIC_PATTERN, topic)
    return match.group(1) if match else None


SERVICE_TOPICS: tuple[Topic, ...] = (
    Topic(
        name="medgov.review.v1",
        owner="review",
        key="application_id",
        description="Applications, board decisions, SLA clock and access grants.",
        events=review.EVENTS,
        consumers=("catalog", "consent", "grants"),
    ),
    Topic(
        name="medgov.catalog.v1",
        owner="catalog",
        key="dataset_id",
        description="Datasets, their subjects and PIPA compliance flags.",
        events=catalog.EVENTS,
        # The catalog reads its own topic too: mirrored from other regions, it feeds cross-region search.
        consumers=("review", "consent", "grants", "catalog"),
    ),
    Topic(
        name="medgov.consent.v1",
        owner="consent",
        key="subject",
        description="Consents, revocations and exclusions per pseudonymized subject.",
        events=consent.EVENTS,
        consumers=("grants",),
    ),
    Topic(
        name="medgov.grants.v1",
        owner="grants",
        key="institution_id",
        description="Fund, pools, awards, milestones and disbursements.",
        events=grants.EVENTS,
        consumers=(),
    ),
)


# The commands a hospital or vendor may send on its inbound topic, as "<type> v<version>".
INBOUND_COMMANDS: tuple[str, ...] = tuple(f"{cls.event_type} v{cls.schema_version}" for cls in inbound.EVENTS)


def is_inbound_command(event_type: str, version: int) -> bool:
    """Tell whether a hospital may send this event type and schema version on its inbound topic."""
    return f"{event_type} v{version}" in INBOUND_COMMANDS


def inbound_topics() -> tuple[Topic, ...]:
    """One inbound topic per registered hospital or vendor; retained 30 days."""
    return tuple(
        Topic(
            name=inbound_topic(item.id),
            owner=f"institution:{item.id}",
            key="aggregate id of the command (dataset id, subject pseudonym or application id)",
            description=f"Commands from {item.name_en} ({item.name_ko}).",
            events=inbound.EVENTS,
            retention_ms=30 * 24 * 3600 * 1000,
            consumers=("review", "catalog", "consent"),
        )
        for item in all_institutions().values()
    )


def all_topics() -> tuple[Topic, ...]:
    return SERVICE_TOPICS + inbound_topics()


def topic_of(service: str) -> Topic:
    for topic in SERVICE_TOPICS:
        if topic.owner == service:
            return topic
    raise KeyError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")


def all_event_types() -> tuple[type[EventPayload], ...]:
    return review.EVENTS + catalog.EVENTS + consent.EVENTS + grants.EVENTS + inbound.EVENTS


@cache
def _payload_classes() -> dict[tuple[str, int], type[EventPayload]]:
    classes: dict[tuple[str, int], type[EventPayload]] = {}
    for cls in all_event_types():
        classes[(cls.event_type, cls.schema_version)] = cls
    return classes


class UnknownEventType(LookupError):
    """The envelope names a type or schema version this build does not know."""


def payload_class(event_type: str, version: int = 1) -> type[EventPayload]:
    try:
        return _payload_classes()[(event_type, version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r} version {version}") from None


def parse_payload(envelope: Envelope, *, from_json: bool = False) -> EventPayload:
    """Validate the envelope's data against the class its type and dataschema name.

    `from_json` says that the envelope was parsed from JSON text, so its data
    hold no datetime objects to check for a missing time zone. Raises
    UnknownEventType for a type this build does not know (consumers skip those
    with a metric) and pydantic's ValidationError for invalid data.
    """
    cls = payload_class(envelope.type, envelope.schema_version)
    return cls.model_validate(envelope.data, context={FROM_JSON: True} if from_json else None)


__all__ = [
    "INBOUND_COMMANDS",
    "SERVICES",
    "SERVICE_TOPICS",
    "Topic",
    "UnknownEventType",
    "ValidationError",
    "all_event_types",
    "all_topics",
    "dlq_topic",
    "inbound_topic",
    "inbound_topics",
    "institution_of_inbound_topic",
    "is_inbound_command",
    "parse_payload",
    "payload_class",
    "topic_of",
]
