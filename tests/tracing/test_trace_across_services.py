"""One trace follows an application from the hospital's inbound command through review, consent and grants."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from medgov_cli.demo.events import ensure_all_topics
from medgov_shared.messaging.topics import start_groups_at_end
from medgov_consent.main import build_service as build_consent
from medgov_consent.settings import ConsentSettings
from medgov_grants.main import build_service as build_grants
from medgov_grants.settings import GrantsSettings
from medgov_review.main import build_service as build_review
from medgov_review.settings import ReviewSettings
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import DatasetPublished
from medgov_shared.contracts.events.inbound import SubmitApplication
from medgov_shared.testing.services import http_client, running, unique_name, wait_until
from medgov_shared.web.auth import issue_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VENDOR = "vendor-medvision"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def _publish(bootstrap: str, topic: str, envelope, headers: dict[str, str] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, envelope.to_json(), key=envelope.subject.encode(),
                                     headers=[(name, value.encode()) for name, value in (headers or {}).items()])
    finally:
        await producer.stop()


async def test_application_flow_shares_one_trace(infra, settings_factory, jwt_secret, exporter):
    groups = {name: unique_name(f"trace-{name}") for name in ("review", "consent", "grants")}
    options = {"bootstrap_servers": infra.kafka_bootstrap_servers}
    await ensure_all_topics(options)
    await start_groups_at_end(options, list(groups.values()))
    review = build_review(settings_factory(ReviewSettings, kafka_group_id=groups["review"]))
    consent = build_consent(settings_factory(ConsentSettings, kafka_group_id=groups["consent"]))
    grants = build_grants(settings_factory(GrantsSettings, kafka_group_id=groups["grants"]))
    dataset_id = f"ds-trace-{uuid.uuid4().hex[:8]}"
    application_id = f"app-trace-{uuid.uuid4().hex[:8]}"
    published = DatasetPublished(
        dataset_id=dataset_id, version=1, institution_id="knuh", region="daegu", title="trace test",
        duo_codes=("HMB",), legal_basis="pseudonymized_research", completeness_score=80, record_count=10,
        subject_count=2, published_at=datetime.now(UTC),
    )
    start = datetime.now(UTC).date() + timedelta(days=10)
    command = SubmitApplication(
        institution_id=VENDOR, application_id=application_id, idempotency_key="trace-1",
        applicant_institution=VENDOR, principal_investigator="Dr. Trace", title="Tracing",
        purpose_text="Train a model", purpose_codes=("HMB",), dataset_ids=(dataset_id,),
        requested_start=start, requested_end=start + timedelta(days=100),
        data_environment="secure_enclave", irb_document_ref="irb://trace/1",
    )

    async with running(review), running(consent), running(grants):
        await _publish(infra.kafka_bootstrap_servers, "medgov.catalog.v1",
                       wrap(published, source="medgov/catalog", region="daegu"))
        await wait_until(lambda: review.pool.fetchval("SELECT 1 FROM datasets WHERE dataset_id = $1", dataset_id),
                         message="review learns the dataset")
        exporter.clear()
        hospital = trace.get_tracer("hospital")
        with hospital.start_as_current_span("hospital submits application") as root:
            carrier: dict[str, str] = {}
            inject(carrier)
            await _publish(infra.kafka_bootstrap_servers, f"medgov.inbound.{VENDOR}.v1",
                           wrap(command, source=f"medgov/hospital/{VENDOR}", region="daegu"), carrier)
            await wait_until(
                lambda: review.pool.fetchval("SELECT 1 FROM applications WHERE application_id = $1", application_id),
                message="application accepted")
            async with http_client(review) as client:
                for board, prefix in (("IRB", "dg-irb"), ("DRB", "dg-drb")):
                    for number in (1, 3, 5):
                        role = "irb_reviewer" if board == "IRB" else "drb_reviewer"
                        token = issue_token(jwt_secret, subject_id=f"{prefix}-{number}", roles=[role])
                        response = await client.post(
                            f"/applications/{application_id}/votes", json={"board": board, "vote": "approve"},
                            headers={"Authorization": f"Bearer {token}", **carrier},
                        )
                        assert response.status_code == 200, response.text
        trace_id = root.get_span_context().trace_id
        for service in (consent, grants):
            await wait_until(
                lambda service=service: service.pool.fetchval(
                    "SELECT 1 FROM inbox WHERE event_type = 'AccessGranted' LIMIT 1"),
                timeout_s=60, message="AccessGranted consumed")

    spans = [span for span in exporter.get_finished_spans() if span.context.trace_id == trace_id]
    names = {span.name for span in spans}
    consumers = {(span.attributes.get("messaging.consumer.group.name"), span.name.rsplit(" ", 1)[-1])
                 for span in spans if " process " in span.name}

    assert f"medgov.inbound.{VENDOR}.v1 process SubmitApplication" in names
    assert "medgov.review.v1 publish ApplicationSubmitted" in names
    assert "medgov.review.v1 publish AccessGranted" in names
    assert (groups["consent"], "AccessGranted") in consumers
    assert (groups["grants"], "AccessGranted") in consumers
    assert (groups["consent"], "ApplicationSubmitted") in consumers
    flow = [span for span in exporter.get_finished_spans()
            if span.attributes.get("messaging.consumer.group.name") in groups.values()
            and span.name.endswith(("SubmitApplication", "ApplicationApproved", "AccessGranted"))]
    assert flow
    assert {span.context.trace_id for span in flow} == {trace_id}
