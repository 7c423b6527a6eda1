"""`medgov dlq show` writes its table to standard output, whole and verbatim, when that is a file."""

import os
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from medgov_shared.messaging import dlq
from medgov_shared.testing.services import topic_tag

pytestmark = pytest.mark.integration

# Longer than 80 columns, so a table cut to a default terminal width would wrap it.
ERROR = "RevokeConsent cns-knuh-0042 rejected (not_consent_recorder): consent cns-knuh-0042 was recorded by knuh"
# Text a sender controls, which Rich would read as markup: a closing tag and a character class.
MARKUP_ERROR = "'[/bold]' version 1 is not a command; subject: String should match pattern '^[a-z]{2,16}'"


async def test_table_on_standard_output_without_wrapping(infra):
    topic = f"medgov.test-{topic_tag()}.v1.dlq"
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        headers = [(dlq.REASON, b"rejected"), (dlq.ERROR, ERROR.encode()), (dlq.ORIGINAL_TOPIC, b"medgov.inbound.dcmc.v1"),
                   (dlq.ORIGINAL_PARTITION, b"3"), (dlq.ORIGINAL_OFFSET, b"17")]
        await producer.send_and_wait(topic, b"{}", headers=headers)
        await producer.send_and_wait(topic, b"{}", headers=[(dlq.REASON, b"unknown_command"), (dlq.ERROR, MARKUP_ERROR.encode())])
    finally:
        await producer.stop()

    result = subprocess.run(
        [sys.executable, "-m", "medgov_cli.main", "dlq", "show", topic], capture_output=True, text=True, timeout=60,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers},
    )

    assert result.returncode == 0, result.stderr
    assert ERROR in result.stdout
    assert "medgov.inbound.dcmc.v1[3]@17" in result.stdout
    assert ERROR not in result.stderr
    assert MARKUP_ERROR in result.stdout
