"""What the test session removes when it ends: the topics named with a topic tag, and nothing else."""

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from medgov_shared.testing.fixtures import _delete_topics
from medgov_shared.testing.services import topic_tag, wait_until

from .test_runtime import create_topic

pytestmark = pytest.mark.integration


async def topic_names(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_tagged_topics_are_deleted_and_others_kept(infra) -> None:
    tag = topic_tag()
    # create_topic adds each name's .dlq topic as well.
    tagged = [f"medgov.test-{tag}.v1", f"medgov.inbound.t-{tag}.v1"]
    # Not made with topic_tag, so the session would not delete it; the test removes it itself.
    untagged = f"medgov.test-kept-{uuid.uuid4().hex[:8]}.v1"
    for name in [*tagged, untagged]:
        await create_topic(infra.kafka_bootstrap_servers, name)

    try:
        await _delete_topics(infra.kafka_bootstrap_servers, [tag])

        async def tagged_gone() -> bool:
            return not any(tag in name for name in await topic_names(infra.kafka_bootstrap_servers))

        await wait_until(tagged_gone, timeout_s=15, message=f"the topics tagged {tag} to be deleted")
        assert {untagged, f"{untagged}.dlq"} <= await topic_names(infra.kafka_bootstrap_servers)
    finally:
        await _delete_topics(infra.kafka_bootstrap_servers, [untagged])
