"""The hospital publisher against the real broker, on the real FHIR Consent samples."""

import asyncio
import json
import secrets

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaTimeoutError

from medgov_cli import publisher as publisher_module
from medgov_cli.publisher import HospitalPublisher, Rejected, staged_file
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


def test_record_consent_command_cleaned_before_sending(sample_data, publisher_settings):
    publisher = HospitalPublisher(publisher_settings, "knuh")
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())
    resource["text"] = {"status": "generated", "div": "<div>Kim Minsu, born 1970</div>"}

    command = publisher.command(
        "RecordConsent", {"consent_id": "knuh-basic", "fhir_consent": resource}, local_patient_id="f001"
    )

    raw = json.dumps(command.model_dump(mode="json"))
    assert "patient" not in command.fhir_consent
    assert "text" not in command.fhir_consent
    assert "Patient/f001" not in raw
    assert "Kim Minsu" not in raw
    assert resource["patient"]["reference"] == "Patient/f001"


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


def test_consent_from_a_vendor_refused_before_sending(sample_data, publisher_settings):
    publisher = HospitalPublisher(publisher_settings, "vendor-medvision")
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())

    with pytest.raises(Rejected, match="RecordConsent comes only from hospitals; vendor-medvision is a vendor"):
        publisher.consent_command(resource)


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
        # Sent unread, because this test counts what the broker stored, also for the
        # examples the consent service would dead-letter.
        items = [(path.name, publisher.consent_command(json.loads(path.read_text()), read_locally=False))
                 for path in consent_files(sample_data)]
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


def offline_publisher(producer, **options) -> HospitalPublisher:  # noqa: ANN001 - any object with send_and_wait
    """Return a publisher for knuh whose broker is `producer`, a stand-in."""
    settings = PublisherSettings(kafka_bootstrap_servers="127.0.0.1:9", region="daegu", pseudonym_key=secrets.token_hex(32))
    publisher = HospitalPublisher(settings, "knuh", **options)
    publisher._producer = producer  # noqa: SLF001 - the test stands in for the broker
    return publisher


def basic_consent(sample_data) -> dict:  # noqa: ANN001
    return json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())


class FlakyProducer:
    """Records every send; the first one times out after it reached the broker, as a lost acknowledgement does."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic, value, key):  # noqa: ANN001, ANN201 - AIOKafkaProducer's signature
        self.sent.append(value)
        if len(self.sent) == 1:
            raise KafkaTimeoutError()


async def test_retry_resends_same_event_id(sample_data):
    producer = FlakyProducer()
    publisher = offline_publisher(producer)
    resource = basic_consent(sample_data)

    event_id = await publisher.send(publisher.consent_command(resource))

    sent_ids = [orjson.loads(value)["id"] for value in producer.sent]
    assert len(sent_ids) == 2
    assert sent_ids[0] == sent_ids[1] == event_id


class GoneProducer:
    """A producer whose broker went away: aiokafka then retries a send for as long as it is away."""

    def __init__(self) -> None:
        self.attempts = 0

    async def send_and_wait(self, topic, value, key):  # noqa: ANN001, ANN201 - AIOKafkaProducer's signature
        self.attempts += 1
        await asyncio.Event().wait()


async def test_batch_stops_when_broker_stays_away(sample_data, monkeypatch):
    monkeypatch.setattr(publisher_module, "SEND_TIMEOUT_S", 0.05)
    producer = GoneProducer()
    publisher = offline_publisher(producer, max_attempts=2)
    resource = basic_consent(sample_data)
    items = [(f"c-{index}.json", publisher.consent_command(resource)) for index in range(3)]

    report = await asyncio.wait_for(publisher.publish_all(items), timeout=10)

    assert producer.attempts == 2
    assert report.accepted == []
    assert [(item.label, item.reason) for item in report.rejected] == [
        ("c-0.json", "broker unavailable after 2 attempts: TimeoutError"),
        ("c-1.json", "not sent: the broker was unavailable at c-0.json"),
        ("c-2.json", "not sent: the broker was unavailable at c-0.json"),
    ]


class RecordingProducer:
    """Records every send; the broker stores each one."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send_and_wait(self, topic, value, key):  # noqa: ANN001, ANN201 - AIOKafkaProducer's signature
        self.sent.append(value)


async def test_unwritable_command_reported_and_batch_goes_on(sample_data):
    producer = RecordingProducer()
    publisher = offline_publisher(producer)
    resource = basic_consent(sample_data)
    provision = {"period": resource["provision"]["period"]}
    deep = {**resource, "provision": provision}
    for _ in range(150):  # deeper than pydantic writes as JSON
        provision["provision"] = [{"type": "deny"}]
        provision = provision["provision"][0]
    items = [
        ("first.json", publisher.consent_command(resource, read_locally=False)),
        ("deep.json", publisher.consent_command(deep, read_locally=False)),
        ("last.json", publisher.consent_command(resource, read_locally=False)),
    ]

    report = await publisher.publish_all(items)

    assert [item.label for item in report.accepted] == ["first.json", "last.json"]
    assert [item.label for item in report.rejected] == ["deep.json"]
    assert report.rejected[0].reason.startswith("not sent: the command cannot be written as JSON")
    assert len(producer.sent) == 2


def test_consent_patient_string_rejected(sample_data):
    settings = PublisherSettings(kafka_bootstrap_servers="127.0.0.1:9", region="daegu",
                                 pseudonym_key=secrets.token_hex(32))
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())
    resource["patient"] = "Patient/f001"

    with pytest.raises(Rejected, match="Consent.patient must be a Reference object"):
        HospitalPublisher(settings, "knuh").consent_command(resource)


def test_staged_file_outside_root_rejected(tmp_path):
    with pytest.raises(Rejected, match="outside the staging folder"):
        staged_file(tmp_path, "/etc/passwd")
    with pytest.raises(Rejected, match="outside the staging folder"):
        staged_file(tmp_path, "../etc/passwd")
    with pytest.raises(Rejected, match="no such file in the staging folder"):
        staged_file(tmp_path, "missing.ndjson")
    (tmp_path / "fhir").mkdir()
    with pytest.raises(Rejected, match="fhir: a folder in the staging folder .*; name the files in it one by one"):
        staged_file(tmp_path, "fhir")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"status": "banana"}, r"\(consent_not_active\): status: status is 'banana'"),
        ({"dateTime": "not-a-date"}, r"\(malformed_fhir\): dateTime: invalid FHIR R4 Consent .*DateTime"),
        ({"scope": "research"}, r"\(malformed_fhir\): scope: invalid FHIR R4 Consent .*expected a JSON object, got the string 'research'"),
    ],
)
def test_unusable_consent_rejected_before_sending(sample_data, publisher_settings, change, expected):
    publisher = HospitalPublisher(publisher_settings, "knuh")
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())
    resource.update(change)

    with pytest.raises(Rejected, match=r"^Consent consent-example-basic rejected " + expected):
        publisher.consent_command(resource)


def test_consent_sent_unread_when_asked(sample_data, publisher_settings):
    publisher = HospitalPublisher(publisher_settings, "knuh")
    resource = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-Out.json").read_text())

    with pytest.raises(Rejected, match=r"\(unknown_institution\): provision\.actor\[0\]\.reference"):
        publisher.consent_command(resource)
    command = publisher.consent_command(resource, read_locally=False)
    assert command.consent_id == "knuh-consent-example-Out"
