"""Fixtures for grants integration tests: private input topics, an event publisher, settings and tokens."""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.testing.services import topic_tag, unique_name
from medgov_shared.web.auth import issue_token

from medgov_grants.domain.policy import default_policy
from medgov_grants.settings import GrantsSettings

SOURCE_BY_TYPE = {
    "AccessGranted": "review",
    "DatasetPublished": "catalog",
    "DatasetWithdrawn": "catalog",
    "ComplianceViolationFlagged": "catalog",
    "ComplianceFlagCleared": "catalog",
    "ExclusionOverdue": "consent",
    "ExclusionAcknowledged": "consent",
}


class InputTopics:
    """Private stand-ins for medgov.review.v1, medgov.catalog.v1 and medgov.consent.v1, three partitions each.

    Other tests of the session publish to the real topics, so a grants
    service under test consumes only these and receives only its own test's events.
    """

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        tag = topic_tag()
        self.by_source = {source: f"medgov.test-grants-{tag}.{source}.v1" for source in ("review", "catalog", "consent")}

    @property
    def names(self) -> list[str]:
        return list(self.by_source.values())

    async def create(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            topics = [NewTopic(name, 3, 1) for name in self.names] + [NewTopic(f"{name}.dlq", 1, 1) for name in self.names]
            await admin.create_topics(topics)
        finally:
            await admin.close()

    async def publish(self, payloads: list[EventPayload], *, time: datetime | None = None) -> list[Envelope]:
        """Publish each payload as its producing service would, keyed by its aggregate id."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await producer.start()
        envelopes = []
        try:
            for payload in payloads:
                source = SOURCE_BY_TYPE[payload.event_type]
                envelope = wrap(payload, source=f"medgov/{source}", region="daegu", time=time or datetime.now(UTC))
                await producer.send_and_wait(self.by_source[source], value=envelope.to_json(), key=payload.key.encode())
                envelopes.append(envelope)
        finally:
            await producer.stop()
        return envelopes


@pytest.fixture
async def input_topics(infra) -> InputTopics:  # type: ignore[no-untyped-def]
    topics = InputTopics(infra.kafka_bootstrap_servers)
    await topics.create()
    return topics


@pytest.fixture
def grants_settings(settings_factory) -> Callable[..., GrantsSettings]:  # type: ignore[no-untyped-def]
    """Build GrantsSettings with a fresh database and consumer group per call."""

    def build(**overrides: object) -> GrantsSettings:
        values = {"kafka_group_id": unique_name("grants"), "create_topics": True, **overrides}
        return settings_factory(GrantsSettings, **values)

    return build


@pytest.fixture
def policy_file(tmp_path: Path) -> Callable[[int], Path]:
    """Write the default policy with another fund size to a YAML file and return its path."""

    def write(total_krw: int) -> Path:
        data = default_policy().model_dump(mode="json")
        data["fund"]["total_krw"] = total_krw
        data["milestones"] = data["milestones"]["milestones"]
        path = tmp_path / f"policy-{total_krw}.yaml"
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return path

    return write


@pytest.fixture
def token(jwt_secret: str) -> Callable[..., dict[str, str]]:
    def headers(*roles: str, institution: str | None = None, subject_id: str = "user-1") -> dict[str, str]:
        signed = issue_token(jwt_secret, subject_id=subject_id, roles=roles, institution=institution)
        return {"Authorization": f"Bearer {signed}"}

    return headers
