"""Reproductions of the bugs the fuzzing found, each written as the behaviour it should have.

A test of a fixed bug is a plain regression test. A test of an open bug is a
strict xfail: once the bug is fixed the test passes, strict mode reports that
as a failure, and the marker (with the matching exclusion in
http_strategies.py) has to go.
"""

import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import ValidationError

from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import DatasetDescription, DatasetFigures, DatasetRegistered
from medgov_shared.contracts.events.inbound import RevokeConsent
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.registry import inbound_topic
from medgov_shared.testing.services import running, topic_tag, unique_name, wait_until

from medgov_consent.main import build_service as build_consent
from medgov_consent.settings import ConsentSettings

from .broker import create_topic, publish, sentinel
from .event_strategies import FuzzRecord
from .parsing import CONSUMER, consumer_record
from .services import all_roles_headers

pytestmark = pytest.mark.fuzz

RRN = "900101-1234567"
SYNTHEA_IMMUNIZATIONS = "synthea/bulk-export-10-patients/Immunization.000.ndjson"


def description(publisher: str, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "title": "Synthea immunization cohort",
        "description": "Immunizations of synthetic patients from a FHIR Bulk Data export.",
        "publisher": publisher,
        "themes": ["HEAL"],
        "keywords": ["immunization"],
        "access_rights": "restricted",
        "duo_codes": ["HMB"],
        "legal_basis": "pseudonymized_research",
        "contact_point": "data-office@example.org",
        "distribution_formats": ["application/fhir+ndjson"],
    }
    values.update(changes)
    return values


def assert_specific_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, f"{response.status_code} {response.text[:300]}"
    assert response.json().get("detail"), response.text


# -- the event consumer ---------------------------------------------------------------


@pytest.mark.integration
async def test_non_ascii_schema_version_keeps_consumer(infra, settings_factory) -> None:  # type: ignore[no-untyped-def]
    institution = f"t-{topic_tag()}"
    topic = inbound_topic(institution)
    bootstrap = infra.kafka_bootstrap_servers
    poison = sentinel(institution).replace(b":v1", ":v\u00b2".encode())
    await create_topic(bootstrap, topic)
    await publish(bootstrap, topic, [poison, sentinel(institution)])

    settings = settings_factory(ConsentSettings, kafka_group_id=unique_name("fuzz-consent"), create_topics=True)
    service = build_consent(settings, consumes=[topic], consume_inbound=False)
    async with running(service):

        async def settled() -> bool:
            processed = await service.pool.fetchval("SELECT count(*) > 0 FROM dead_letters WHERE kafka_offset = 1")
            return processed or not service.is_alive()

        await wait_until(settled, timeout_s=30, message="the record after the poison record, or the consumer's end")
        alive = service.is_alive()
        poison_letter = await service.pool.fetchval("SELECT reason FROM dead_letters WHERE kafka_offset = 0")

    # Once ValueError out of Envelope.schema_version ended the consumer task.
    assert alive, "the consumer task stopped on the poison record"
    assert poison_letter == "invalid_envelope"


@pytest.mark.parametrize("version", ["\u00b2", "9" * 5000])
def test_odd_schema_version_dead_lettered(version: str) -> None:
    envelope = orjson.loads(sentinel("knuh"))
    envelope["dataschema"] = f"urn:medgov:events:RevokeConsent:v{version}"
    record = FuzzRecord(inbound_topic("knuh"), orjson.dumps(envelope))

    # Once int() raised ValueError here (non-ASCII digits, or more than 4300 digits).
    _, payload, letter = CONSUMER._parse(consumer_record(record))

    assert payload is None
    assert letter is not None
    assert letter.reason == "invalid_envelope"


# -- the personal-data guard -------------------------------------------------------------


# Once accepted: guards._walk did not descend into pydantic models, so a payload built in Python
# passed the guard with an RRN in a nested DatasetDescription.
def test_guard_checks_nested_models() -> None:
    figures = DatasetFigures(
        resource_counts={}, subject_count=0, record_count=0, condition_codes=(), observation_codes=(),
        modalities=(), body_parts=(), study_count=0, series_count=0, instance_count=0, character_sets=(),
    )

    with pytest.raises(ValidationError, match="resident registration number"):
        DatasetRegistered(
            dataset_id="ds-knuh-rrn",
            version=1,
            institution_id="knuh",
            region="daegu",
            description=DatasetDescription(**description("knuh", title=f"환자 {RRN}")),
            figures=figures,
            completeness_score=0,
            registered_at=datetime.now(UTC),
        )


# Once accepted: the consumer ran the personal-data guard on `data` only.
@pytest.mark.parametrize("placement", ["subject", "extension"])
def test_rrn_in_envelope_attributes_rejected(placement: str) -> None:
    command = RevokeConsent(
        institution_id="knuh",
        subject=pseudonymize("p-1", region="daegu", key=b"k" * 32),
        consent_id="cns-1",
        effective_at=datetime.now(UTC),
    )
    envelope = orjson.loads(wrap(command, source="medgov/hospital/knuh", region="daegu").to_json())
    if placement == "subject":
        envelope["subject"] = RRN
    else:
        envelope["patientnote"] = f"RRN {RRN}"
    record = FuzzRecord(inbound_topic("knuh"), orjson.dumps(envelope))

    _, payload, letter = CONSUMER._parse(consumer_record(record))

    assert payload is None
    assert letter is not None
    assert "resident registration number" in letter.error
    assert RRN not in letter.error


# -- HTTP ---------------------------------------------------------------------------------

NUL_IN_PATH = [
    ("review", "GET", "/applications/%00"),
    ("review", "GET", "/applications/%00/events"),
    ("review", "POST", "/applications/%00/votes"),
    ("review", "POST", "/grants/%00/revocation"),
    ("catalog", "GET", "/datasets/%00"),
    ("catalog", "GET", "/datasets/%00/versions/1/report"),
    ("catalog", "POST", "/datasets/%00/withdrawal"),
    ("catalog", "POST", "/compliance-flags/%00/clearance"),
    ("consent", "POST", "/v1/exclusions/%00/acknowledgement"),
]
BODIES = {
    "/applications/%00/votes": {"board": "IRB", "vote": "approve"},
    "/grants/%00/revocation": {"reason": "breach"},
    "/datasets/%00/withdrawal": {"reason": "retired"},
    "/compliance-flags/%00/clearance": {"note": "fixed"},
}


# Once 500: PostgreSQL text cannot hold NUL, and asyncpg's CharacterNotInRepertoireError escaped.
@pytest.mark.integration
@pytest.mark.parametrize(("service_name", "method", "url"), NUL_IN_PATH, ids=[f"{s}:{m} {u}" for s, m, u in NUL_IN_PATH])
async def test_nul_in_path_parameter_rejected(service_name, method, url, service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients(service_name)

    response = await client.request(method, url, json=BODIES.get(url), headers=all_roles_headers(jwt_secret))

    assert_specific_client_error(response)


@pytest.mark.integration
async def test_nul_in_search_text_rejected(service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients("catalog")

    response = await client.get("/datasets", params={"q": "\x00"}, headers=all_roles_headers(jwt_secret))

    assert_specific_client_error(response)


# Once 500: POST /applications stored the application as jsonb, which rejects \u0000
# (UntranslatableCharacterError).
@pytest.mark.integration
@pytest.mark.parametrize(
    "field",
    ["title", "idempotency_key", "principal_investigator", "purpose_text", "irb_document_ref"],
)
async def test_nul_in_submission_text_rejected(field, service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients("review")
    body = {"application_id": unique_name("app-nul").replace("_", "-"), "idempotency_key": "key-1", field: "a\x00b"}

    response = await client.post("/applications", json=body, headers=all_roles_headers(jwt_secret))

    assert_specific_client_error(response)


# Once 500: FastAPI's default RequestValidationError handler echoed the body and decoded it as strict UTF-8.
@pytest.mark.integration
@pytest.mark.parametrize(
    ("service_name", "url"),
    [("review", "/applications"), ("catalog", "/datasets"), ("consent", "/v1/hospital/revocations"),
     ("grants", "/fund/allocations")],
)
async def test_body_not_utf8_rejected(service_name, url, service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients(service_name)
    headers = {**all_roles_headers(jwt_secret), "Content-Type": "text/plain"}

    response = await client.post(url, content=b"\x80", headers=headers)

    assert_specific_client_error(response)


async def register_sample_dataset(client: httpx.AsyncClient, headers: dict[str, str], sample_data: Path,
                                  **changes: object) -> tuple[str, httpx.Response]:
    """Upload one Synthea NDJSON file to the caller's staging area and register it as a new dataset."""
    name = f"{uuid.uuid4().hex[:8]}.ndjson"
    uploaded = await client.put(f"/staging/{name}", content=(sample_data / SYNTHEA_IMMUNIZATIONS).read_bytes(),
                                headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = unique_name("ds-fuzz").replace("_", "-")
    body = {"dataset_id": dataset_id, "description": description("knuh", **changes), "files": [name]}
    return dataset_id, await client.post("/datasets", json=body, headers=headers)


# Once 500: the ValidationError of DatasetWithdrawn (the RRN guard) escaped api.withdraw.
@pytest.mark.integration
async def test_rrn_in_withdrawal_reason_rejected(service_clients, jwt_secret, sample_data) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients("catalog")
    headers = all_roles_headers(jwt_secret)
    dataset_id, registered = await register_sample_dataset(client, headers, sample_data)
    assert registered.status_code == 201, registered.text

    response = await client.post(f"/datasets/{dataset_id}/withdrawal", json={"reason": f"patient {RRN}"},
                                 headers=headers)

    assert_specific_client_error(response)


# Once 500: the ValidationError of DatasetPublished (the RRN guard) escaped register_dataset.
@pytest.mark.integration
async def test_rrn_in_dataset_title_rejected(service_clients, jwt_secret, sample_data) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients("catalog")

    _, response = await register_sample_dataset(client, all_roles_headers(jwt_secret), sample_data, title=f"환자 {RRN}")

    assert_specific_client_error(response)


# Once 400: the upload walked up from the missing institution folder to the staging root, which lies
# outside the area, and returned 'leads outside the staging area'.
@pytest.mark.integration
async def test_first_upload_creates_staging_area(service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients("catalog")
    headers = all_roles_headers(jwt_secret, institution="dsmc")

    response = await client.put("/staging/first.ndjson", content=b'{"resourceType": "Patient"}\n', headers=headers)

    assert response.status_code == 201, response.text


# Once 500: an id that the HTTP schema accepts may look like an RRN (13 digits starting with a
# plausible date), and the event built from it failed the personal-data guard.
@pytest.mark.integration
@pytest.mark.parametrize(
    ("service_name", "url", "body"),
    [
        ("review", "/applications", {"application_id": "900101-1234567", "idempotency_key": "key-1"}),
        ("grants", "/fund/allocations", {"fund_id": "9001011234567", "total_krw": 1000}),
    ],
)
async def test_rrn_shaped_id_rejected(service_name, url, body, service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients(service_name)

    response = await client.post(url, json=body, headers=all_roles_headers(jwt_secret, institution="vendor-medvision"))

    assert_specific_client_error(response)


# Once 500: FastAPI's default RequestValidationError handler echoed the rejected body, and json.dumps of an
# array nested about 970 levels deep raised RecursionError.
@pytest.mark.integration
async def test_deeply_nested_body_rejected(service_clients, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    client = await service_clients("review")
    headers = {**all_roles_headers(jwt_secret, institution="vendor-medvision"), "Content-Type": "application/json"}

    # The failing depths depend on the stack depth at the handler, so a range around the limit is tried.
    statuses = {}
    for depth in range(900, 1001, 2):
        response = await client.post("/applications", content=b"[" * depth + b"]" * depth, headers=headers)
        statuses[depth] = response.status_code

    assert all(400 <= status < 500 for status in statuses.values()), statuses
