"""The hospital publisher against the real broker, on the real FHIR Consent samples."""

import json
import secrets

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from medgov_cli.publisher import HospitalPublisher, Rejected
from medgov_cli.settings import PublisherSettings
from medgov_shared.contracts.pseudonym import is_pseudonym
from medgov_shared.messaging.topics import ensure_topics


@pytest.fixture
def publisher_settings(infra, monkeypatch) -> PublisherSettings:
    return PublisherSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        region="daegu",
        pseudonym_key=secrets.token_hex(32),
    )


def consent_files(sample_data):
    return sorted((sample_data / "fhir" / "hl7-r4-examples" / "consent").glob("Consent-*.json"))


def test_consent_reference_pseudonymized(sample_data, publisher_settings):
    publisher = HospitalPublisher(publisher_settings, "knuh")
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())

    command = publisher.consent_command(resource)

    raw = json.dumps(command.model_dump(mode="json"))
    assert is_pseudonym(command.subject)
    assert command.subject == publisher.pseudonymize("f001")
    assert "Patient/f001" not in raw
    assert "patient" not in command.fhir_consent
    assert command.consent_id == "knuh-consent-example-basic"


def test_non_consent_resource_rejected(sample_data, publisher_settings):
    publisher = HospitalPublisher(publisher_settings, "knuh")
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/patient/Patient-f001.json").read_text())

    with pytest.raises(Rejected, match="expected a FHIR Consent resource, got resourceType 'Patient'"):
        publisher.consent_command(resource)


def test_raw_identifier_in_command_rejected(publisher_settings):
    publisher = HospitalPublisher(publisher_settings, "knuh")

    with pytest.raises(Rejected, match="raw patient identifier"):
        publisher.command("RevokeConsent", {"consent_id": "c", "effective_at": "2026-12-05T00:00:00Z",
                                            "patient_name": "Kim"}, local_patient_id="p1")


def test_institution_outside_region_refused(publisher_settings):
    with pytest.raises(ValueError, match="belongs to region daejeon"):
        HospitalPublisher(publisher_settings, "cnuh")


@pytest.mark.integration
async def test_publish_reports_each_record(infra, sample_data, publisher_settings, settings_factory):
    from medgov_shared.settings import ServiceSettings

    class TopicSettings(ServiceSettings):
        service_name = "catalog"

    await ensure_topics(settings_factory(TopicSettings))
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition("medgov.inbound.knuh.v1", p) for p in
                  (consumer.partitions_for_topic("medgov.inbound.knuh.v1") or await _partitions(consumer))]
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)

    async with HospitalPublisher(publisher_settings, "knuh") as publisher:
        items = [(path.name, publisher.consent_command(json.loads(path.read_text()))) for path in consent_files(sample_data)]
        items.append(("broken", Rejected("not JSON")))
        report = await publisher.publish_all(items)

    assert len(report.accepted) == len(consent_files(sample_data))
    assert [item.label for item in report.rejected] == ["broken"]
    for partition in partitions:
        consumer.seek(partition, ends[partition])
    received = []
    while len(received) < len(report.accepted):
        batch = await consumer.getmany(timeout_ms=2000)
        assert batch, "published records did not arrive"
        for records in batch.values():
            received.extend(orjson.loads(record.value) for record in records)
    await consumer.stop()
    assert {event["id"] for event in received} == {item.event_id for item in report.accepted}
    assert all(event["source"] == "medgov/hospital/knuh" for event in received)
    assert all("Patient/" not in json.dumps(event["data"]) for event in received)


async def _partitions(consumer):
    await consumer._client.force_metadata_update()  # noqa: SLF001 - refresh after topic creation
    return consumer.partitions_for_topic("medgov.inbound.knuh.v1")
