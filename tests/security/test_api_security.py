"""Bearer tokens and roles on every HTTP route of the four services.

The first group enumerates the routes from each app's OpenAPI document and
sends requests without a valid token. Those requests never reach a handler,
so the apps are built without being started. A route without its auth
dependency would reach its handler, which fails on the missing database pool
and returns 500, so the test reports it.

The second group runs the services on the real PostgreSQL server and Kafka
broker and checks the ownership rules behind the roles: patients, board
members, hospitals and the fund administrator.
"""

import contextlib
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from fastapi import FastAPI

from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import DatasetPublished
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.types import LegalBasis, Region
from medgov_shared.service import Service
from medgov_shared.testing.fixtures import database_url_for, new_database_name
from medgov_shared.testing.services import http_client, running, topic_tag, unique_name, wait_until
from medgov_shared.web.auth import ROLES, issue_token

from medgov_catalog.main import build_service as build_catalog
from medgov_catalog.settings import CatalogSettings
from medgov_consent.main import build_service as build_consent
from medgov_consent.settings import ConsentSettings
from medgov_grants.main import build_service as build_grants
from medgov_grants.settings import GrantsSettings
from medgov_review.main import build_service as build_review
from medgov_review.settings import ReviewSettings

SERVICE_NAMES = ("review", "catalog", "consent", "grants")

# Routes that respond without a token, with the reason. Every other route must return 401.
PUBLIC_ROUTES = {
    ("consent", "GET", "/v1/public/opt-out-rates"): "public aggregate opt-out figures, small cells suppressed",
    ("consent", "GET", "/dashboard"): "static page; it calls GET /v1/me with the patient's token",
    ("consent", "GET", "/transparency"): "static page of the public figures",
    ("consent", "GET", "/static/consent/{name}"): "static script and style files of those pages",
}
# Operational and documentation routes the runtime adds to every service.
RUNTIME_ROUTES = {"/healthz", "/readyz", "/metrics", "/asyncapi.yaml", "/docs", "/docs/oauth2-redirect", "/redoc",
                  "/openapi.json"}

# A value of the right type for each path parameter, so the route matches.
PATH_VALUES = {"path": "upload/file.ndjson", "tranche_number": "1", "version": "1"}

SUBJECT_KEY = b"api-security-tests-pseudonym-key!!"
SECRET_OF_ANOTHER_ISSUER = "another-issuer-secret-" + "q" * 24


def offline_apps() -> dict[str, FastAPI]:
    """Build each service's app without starting it (no database, no broker)."""
    common = {
        "region": "daegu",
        "database_url": "postgresql://security@127.0.0.1:1/postgres",
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "jwt_secret": "offline-secret-" + "k" * 24,
    }
    staging = Path(tempfile.gettempdir())
    services = {
        "review": build_review(ReviewSettings(**common), consumes=["unused"], consume_inbound=False),
        "catalog": build_catalog(CatalogSettings(**common, staging_root=staging), consumes=["unused"], consume_inbound=False),
        "consent": build_consent(ConsentSettings(**common), consumes=["unused"], consume_inbound=False),
        "grants": build_grants(GrantsSettings(**common), consumes=["unused"]),
    }
    return {name: service.app() for name, service in services.items()}


APPS = offline_apps()
OFFLINE_SECRET = "offline-secret-" + "k" * 24


def schema_routes() -> list[tuple[str, str, str, dict[str, Any]]]:
    """Return (service, METHOD, path template, operation) for every operation in the OpenAPI documents."""
    routes = []
    for name, app in APPS.items():
        for path, item in app.openapi()["paths"].items():
            for method, operation in item.items():
                routes.append((name, method.upper(), path, operation))
    return routes


SCHEMA_ROUTES = schema_routes()
PROTECTED = [(name, method, path) for name, method, path, _ in SCHEMA_ROUTES if (name, method, path) not in PUBLIC_ROUTES]


def concrete(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + "x-1" + path[end + 1 :]
    return path


def all_paths(routes: list[Any], prefix: str = "") -> list[tuple[str, bool]]:
    """Return (path, in schema) for every route of an app, including those of included routers.

    FastAPI 0.165 keeps an included router as one entry with `original_router`
    and `include_context`; older versions copy the routes into the app.
    """
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found += all_paths(included.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "path"):
            found.append((prefix + route.path, getattr(route, "include_in_schema", True)))
    return found


async def call(name: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=APPS[name], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        body = b"{}" if method in ("POST", "PUT") else None
        return await client.request(method, concrete(path), content=body, headers={**headers, "Content-Type": "application/json"})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**changes: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    values: dict[str, Any] = {"sub": "caller-1", "roles": sorted(ROLES), "institution": "knuh", "iat": now, "exp": now + 600}
    values.update(changes)
    return {key: value for key, value in values.items() if value is not None}


def bad_tokens() -> dict[str, str]:
    """Return one token for each reason of rejection, made at call time, because tokens made at import expired before a slow suite used them."""
    return {
        "signed with another key": jwt.encode(claims(), SECRET_OF_ANOTHER_ISSUER, algorithm="HS256"),
        "expired": jwt.encode(claims(exp=int(datetime.now(UTC).timestamp()) - 60), OFFLINE_SECRET, algorithm="HS256"),
        "unsigned (alg none)": jwt.encode(claims(), None, algorithm="none"),
        "without exp": jwt.encode(claims(exp=None), OFFLINE_SECRET, algorithm="HS256"),
        "unknown role": jwt.encode(claims(roles=["superuser"]), OFFLINE_SECRET, algorithm="HS256"),
        "empty sub": jwt.encode(claims(sub=""), OFFLINE_SECRET, algorithm="HS256"),
        "blank sub": jwt.encode(claims(sub="  "), OFFLINE_SECRET, algorithm="HS256"),
        "not a JWT": "not-a-token",
    }


# -- every route needs a valid token -----------------------------------------------------------------


def test_routes_found_in_openapi() -> None:
    per_service = {name: sum(1 for route in SCHEMA_ROUTES if route[0] == name) for name in SERVICE_NAMES}

    assert all(count >= 5 for count in per_service.values()), per_service


def test_protected_operations_declare_bearer_security() -> None:
    undeclared = [
        f"{name} {method} {path}"
        for name, method, path, operation in SCHEMA_ROUTES
        if (name, method, path) not in PUBLIC_ROUTES and not operation.get("security")
    ]

    assert undeclared == []


def test_routes_outside_openapi_are_the_known_public_ones() -> None:
    public_paths = {path for (name, _, path) in PUBLIC_ROUTES}
    hidden = {
        (name, path)
        for name, app in APPS.items()
        for path, in_schema in all_paths(app.routes)
        if not in_schema and path not in RUNTIME_ROUTES
    }

    assert {path for _, path in hidden} <= public_paths, hidden
    assert {"/dashboard", "/transparency"} <= {path for _, path in hidden}


@pytest.mark.parametrize(("name", "method", "path"), PROTECTED, ids=[f"{n}:{m} {p}" for n, m, p in PROTECTED])
async def test_route_without_token_is_401(name: str, method: str, path: str) -> None:
    response = await call(name, method, path, {})

    assert response.status_code == 401, response.text
    assert response.json()["detail"] == "missing bearer token"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(("name", "method", "path"), PROTECTED, ids=[f"{n}:{m} {p}" for n, m, p in PROTECTED])
async def test_route_with_bad_tokens_is_401(name: str, method: str, path: str) -> None:
    outcomes = {label: await call(name, method, path, bearer(token)) for label, token in bad_tokens().items()}

    for label, response in outcomes.items():
        assert response.status_code == 401, f"{label}: {response.status_code} {response.text[:200]}"
    assert outcomes["expired"].json()["detail"] == "bearer token expired; sign in again"
    assert "Signature verification failed" in outcomes["signed with another key"].json()["detail"]
    assert "exp" in outcomes["without exp"].json()["detail"]
    assert "superuser" in outcomes["unknown role"].json()["detail"]
    assert outcomes["blank sub"].json()["detail"] == "invalid bearer token: 'sub' must name the caller"


@pytest.mark.parametrize(("name", "method", "path"), PROTECTED[:1] + PROTECTED[-1:])
async def test_basic_scheme_is_not_a_bearer_token(name: str, method: str, path: str) -> None:
    response = await call(name, method, path, {"Authorization": "Basic a25laDpzZWNyZXQ="})

    assert response.status_code == 401
    assert response.json()["detail"] == "missing bearer token"


async def test_malformed_body_without_token_is_401() -> None:
    transport = httpx.ASGITransport(app=APPS["review"], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        response = await client.post("/applications", content=b"{not json", headers={"Content-Type": "application/json"})

    assert response.status_code == 401


async def test_public_routes_answer_without_token() -> None:
    for name, method, path in PUBLIC_ROUTES:
        if path == "/v1/public/opt-out-rates":
            continue  # reads the database; covered by the running consent service below
        response = await call(name, method, path.replace("{name}", "style.css"), {})

        assert response.status_code == 200, (path, response.status_code)


# -- ownership rules on the running services ------------------------------------------------------------


class Stack:
    """The four services started once for this module, with the private topics they read."""

    def __init__(self, infra: Any, jwt_secret: str, staging_root: Path) -> None:
        self.infra = infra
        self.secret = jwt_secret
        self.staging_root = staging_root
        self.catalog_topic = f"medgov.test-security-{topic_tag()}.catalog.v1"
        self.services: dict[str, Service] = {}
        self.clients: dict[str, httpx.AsyncClient] = {}

    def settings(self, name: str) -> dict[str, Any]:
        return {
            "region": "daegu",
            "database_url": database_url_for(self.infra, new_database_name(f"security_{name}")),
            "kafka_bootstrap_servers": self.infra.kafka_bootstrap_servers,
            "jwt_secret": self.secret,
            "kafka_group_id": unique_name(f"security-{name}"),
            "log_format": "console",
            "relay_poll_interval_s": 0.5,
            "clock_tick_interval_s": 0.5,
        }

    def build(self, name: str) -> Service:
        topics = [self.catalog_topic]
        if name == "review":
            return build_review(ReviewSettings(**self.settings(name)), consumes=topics, consume_inbound=False)
        if name == "catalog":
            settings = CatalogSettings(**self.settings(name), staging_root=self.staging_root)
            return build_catalog(settings, consumes=topics, consume_inbound=False)
        if name == "consent":
            return build_consent(ConsentSettings(**self.settings(name)), consumes=topics, consume_inbound=False)
        return build_grants(GrantsSettings(**self.settings(name)), consumes=topics)

    def headers(self, *roles: str, subject_id: str = "user-1", institution: str | None = None,
                patient_subject: str | None = None) -> dict[str, str]:
        token = issue_token(self.secret, subject_id=subject_id, roles=roles, institution=institution,
                            patient_subject=patient_subject)
        return bearer(token)


@pytest.fixture(scope="module")
async def stack(infra, jwt_secret, tmp_path_factory) -> AsyncIterator[Stack]:  # type: ignore[no-untyped-def]
    staging = tmp_path_factory.mktemp("security-staging")
    for hospital in ("knuh", "dsmc"):
        (staging / hospital).mkdir()
    started = Stack(infra, jwt_secret, staging)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(started.catalog_topic, 1, 1), NewTopic(f"{started.catalog_topic}.dlq", 1, 1)])
    finally:
        await admin.close()

    async with contextlib.AsyncExitStack() as exits:
        for name in SERVICE_NAMES:
            service = started.build(name)
            await exits.enter_async_context(running(service))
            started.services[name] = service
            started.clients[name] = await exits.enter_async_context(http_client(service))
        yield started


@pytest.mark.integration
async def test_public_opt_out_rates_without_token(stack: Stack) -> None:
    response = await stack.clients["consent"].get("/v1/public/opt-out-rates")

    assert response.status_code == 200
    assert response.json()["minimum_cell"] >= 1


# Patients ---------------------------------------------------------------------------------------


def patient_subject(seed: str) -> str:
    return pseudonymize(f"{seed}-{uuid.uuid4().hex}", region="daegu", key=SUBJECT_KEY)


async def record_hospital_consent(stack: Stack, sample_data: Path, subject: str, consent_id: str) -> None:
    consent = json.loads((sample_data / "fhir/hl7-r4-examples/consent/Consent-consent-example-basic.json").read_text())
    response = await stack.clients["consent"].post(
        "/v1/hospital/consents",
        json={"subject": subject, "consent_id": consent_id, "fhir_consent": consent},
        headers=stack.headers("hospital", institution="knuh"),
    )
    assert response.status_code == 201, response.text


@pytest.mark.integration
async def test_patient_cannot_read_or_change_another_patients_records(stack: Stack, sample_data: Path) -> None:
    alice, bob = patient_subject("alice"), patient_subject("bob")
    alice_consent, bob_consent = unique_name("cns-alice"), unique_name("cns-bob")
    await record_hospital_consent(stack, sample_data, alice, alice_consent)
    await record_hospital_consent(stack, sample_data, bob, bob_consent)
    client = stack.clients["consent"]
    as_alice = stack.headers("patient", subject_id="alice", patient_subject=alice)
    as_bob = stack.headers("patient", subject_id="bob", patient_subject=bob)

    own = await client.get("/v1/me", headers=as_alice)
    with_query = await client.get("/v1/me", params={"subject": bob}, headers=as_alice)
    revoke_other = await client.post("/v1/me/revocations", json={"consent_id": bob_consent}, headers=as_alice)
    consent_for_other = await client.post(
        "/v1/me/consents", json={"scope": {"kind": "all_research"}, "institution_id": "knuh", "subject": bob},
        headers=as_alice,
    )
    revoke_all_own = await client.post("/v1/me/revocations", json={}, headers=as_alice)
    bob_after = await client.get("/v1/me", headers=as_bob)
    oversight = [await client.get(path, headers=as_alice) for path in ("/v1/exclusions", "/v1/mismatches")]
    hospital_route = await client.post(
        "/v1/hospital/revocations", json={"subject": bob, "consent_id": bob_consent}, headers=as_alice
    )

    assert own.status_code == 200
    assert [item["consent_id"] for item in own.json()["consents"]] == [alice_consent]
    assert bob not in own.text
    assert bob_consent not in own.text
    assert with_query.json()["subject"] == alice
    assert bob_consent not in with_query.text
    assert revoke_other.status_code == 404
    assert revoke_other.json()["detail"]["code"] == "unknown_consent"
    assert consent_for_other.status_code == 422
    assert consent_for_other.json()["detail"][0]["loc"] == ["body", "subject"]
    assert revoke_all_own.status_code == 200
    assert [item["consent_id"] for item in revoke_all_own.json()["revocations"]] == [alice_consent]
    assert [(item["consent_id"], item["withdrawn_at"]) for item in bob_after.json()["consents"]] == [(bob_consent, None)]
    assert bob_after.json()["revocations"] == []
    assert [response.status_code for response in oversight] == [403, 403]
    assert hospital_route.status_code == 403


@pytest.mark.integration
async def test_patient_token_without_pseudonym_is_403(stack: Stack) -> None:
    response = await stack.clients["consent"].get("/v1/me", headers=stack.headers("patient", subject_id="p-9"))

    assert response.status_code == 403
    assert response.json()["detail"]["code"] == "no_subject"


# Board members ----------------------------------------------------------------------------------


async def publish_dataset(stack: Stack, dataset_id: str) -> None:
    payload = DatasetPublished(
        dataset_id=dataset_id, version=1, institution_id="knuh", region=Region.DAEGU, title=f"{dataset_id} cohort",
        duo_codes=("HMB",), legal_basis=LegalBasis.PSEUDONYMIZED_RESEARCH, completeness_score=90, record_count=10,
        subject_count=3, published_at=datetime.now(UTC),
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.infra.kafka_bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        envelope = wrap(payload, source="medgov/catalog", region="daegu")
        await producer.send_and_wait(stack.catalog_topic, value=envelope.to_json(), key=dataset_id.encode())
    finally:
        await producer.stop()
    review = stack.services["review"]
    await wait_until(lambda: review.pool.fetchval("SELECT count(*) = 1 FROM datasets WHERE dataset_id = $1", dataset_id),
                     message=f"dataset {dataset_id} in the review service's catalog projection")


async def application_under_review(stack: Stack) -> str:
    dataset_id = unique_name("ds-sec").replace("_", "-")
    await publish_dataset(stack, dataset_id)
    application_id = unique_name("app-sec").replace("_", "-")
    body = {
        "application_id": application_id,
        "idempotency_key": unique_name("key"),
        "principal_investigator": "Dr. Kim",
        "title": "Chest CT nodule detection",
        "purpose_text": "Train a nodule detector on chest CT",
        "purpose_codes": ["HMB"],
        "dataset_ids": [dataset_id],
        "requested_start": date(2027, 1, 1).isoformat(),
        "requested_end": date(2027, 12, 31).isoformat(),
        "data_environment": "secure_enclave",
        "irb_document_ref": "irb://knuh/2026-113",
    }
    submitted = await stack.clients["review"].post(
        "/applications", json=body, headers=stack.headers("applicant", institution="vendor-medvision")
    )
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["status"] == "under_review"
    return application_id


@pytest.mark.integration
async def test_vote_outside_own_board_is_403(stack: Stack) -> None:
    application_id = await application_under_review(stack)
    client = stack.clients["review"]
    url = f"/applications/{application_id}/votes"
    vote = {"board": "IRB", "vote": "approve"}

    other_region = await client.post(url, json=vote, headers=stack.headers("irb_reviewer", subject_id="dj-irb-3"))
    other_board = await client.post(url, json=vote, headers=stack.headers("irb_reviewer", subject_id="dg-drb-5"))
    unknown_member = await client.post(url, json=vote, headers=stack.headers("irb_reviewer", subject_id="nobody"))
    wrong_role = await client.post(
        url, json={"board": "DRB", "vote": "approve"}, headers=stack.headers("irb_reviewer", subject_id="dg-drb-5")
    )
    applicant = await client.post(url, json=vote, headers=stack.headers("applicant", subject_id="dg-irb-5"))
    detail = await client.get(f"/applications/{application_id}", headers=stack.headers("council"))

    for response in (other_region, other_board, unknown_member):
        assert response.status_code == 403, response.text
        assert response.json()["detail"]["code"] == "not_board_member"
    assert "dj-irb-3" in other_region.json()["detail"]["message"]
    assert wrong_role.status_code == 403
    assert wrong_role.json()["detail"] == "voting for the DRB needs the role drb_reviewer"
    assert applicant.status_code == 403
    assert [panel["votes_cast"] for panel in detail.json()["boards"]] == [0, 0]


@pytest.mark.integration
async def test_member_of_the_board_can_vote(stack: Stack) -> None:
    application_id = await application_under_review(stack)

    response = await stack.clients["review"].post(
        f"/applications/{application_id}/votes", json={"board": "IRB", "vote": "approve"},
        headers=stack.headers("irb_reviewer", subject_id="dg-irb-5"),
    )

    assert response.status_code == 200, response.text


# Hospitals ------------------------------------------------------------------------------------


def catalog_description(publisher: str) -> dict[str, Any]:
    return {
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


async def stage_sample(stack: Stack, sample_data: Path, hospital: str) -> str:
    name = f"{uuid.uuid4().hex[:8]}.ndjson"
    content = (sample_data / "synthea/bulk-export-10-patients/Immunization.000.ndjson").read_bytes()
    response = await stack.clients["catalog"].put(
        f"/staging/{name}", content=content, headers=stack.headers("hospital", institution=hospital)
    )
    assert response.status_code == 201, response.text
    return name


@pytest.mark.integration
async def test_hospital_cannot_act_for_another_hospital(stack: Stack, sample_data: Path) -> None:
    client = stack.clients["catalog"]
    knuh, dsmc = stack.headers("hospital", institution="knuh"), stack.headers("hospital", institution="dsmc")
    knuh_file = await stage_sample(stack, sample_data, "knuh")
    dataset_id = unique_name("ds-knuh").replace("_", "-")
    registered = await client.post(
        "/datasets", json={"dataset_id": dataset_id, "description": catalog_description("knuh"), "files": [knuh_file]},
        headers=knuh,
    )
    assert registered.status_code == 201, registered.text

    as_publisher = await client.post(
        "/datasets",
        json={"dataset_id": unique_name("ds-x").replace("_", "-"), "description": catalog_description("knuh"),
              "files": [knuh_file]},
        headers=dsmc,
    )
    foreign_files = await client.post(
        "/datasets",
        json={"dataset_id": unique_name("ds-y").replace("_", "-"), "description": catalog_description("dsmc"),
              "files": [knuh_file, f"../knuh/{knuh_file}"]},
        headers=dsmc,
    )
    new_version = await client.post(
        "/datasets", json={"dataset_id": dataset_id, "description": catalog_description("dsmc"), "files": [knuh_file]},
        headers=dsmc,
    )
    withdrawal = await client.post(f"/datasets/{dataset_id}/withdrawal", json={"reason": "not ours"}, headers=dsmc)
    upload_into_other_area = await client.put("/staging/../knuh/planted.ndjson", content=b"{}", headers=dsmc)
    upload_absolute = await client.put(f"/staging/{stack.staging_root}/knuh/planted2.ndjson", content=b"{}", headers=dsmc)
    no_institution = await client.put("/staging/orphan.ndjson", content=b"{}", headers=stack.headers("hospital"))
    after = await client.get(f"/datasets/{dataset_id}", headers=knuh)

    assert as_publisher.status_code == 422
    assert "a hospital publishes only its own datasets" in as_publisher.json()["detail"]
    assert foreign_files.status_code == 422
    assert "none of the dataset's files was accepted" in foreign_files.json()["detail"]
    assert new_version.status_code == 422
    assert "held by 'knuh'" in new_version.json()["detail"]
    assert withdrawal.status_code == 403
    assert "'dsmc' cannot withdraw it" in withdrawal.json()["detail"]
    assert upload_into_other_area.status_code in (400, 404)
    assert upload_absolute.status_code in (400, 404)
    assert not (stack.staging_root / "knuh" / "planted.ndjson").exists()
    assert not (stack.staging_root / "knuh" / "planted2.ndjson").exists()
    assert no_institution.status_code == 403
    assert [item["version"] for item in after.json()["versions"]] == [1]
    assert after.json()["withdrawn_at"] is None


@pytest.mark.integration
async def test_version_report_only_for_holder_and_oversight(stack: Stack, sample_data: Path) -> None:
    client = stack.clients["catalog"]
    knuh_file = await stage_sample(stack, sample_data, "knuh")
    dataset_id = unique_name("ds-rep").replace("_", "-")
    await client.post(
        "/datasets", json={"dataset_id": dataset_id, "description": catalog_description("knuh"), "files": [knuh_file]},
        headers=stack.headers("hospital", institution="knuh"),
    )
    url = f"/datasets/{dataset_id}/versions/1/report"

    holder = await client.get(url, headers=stack.headers("hospital", institution="knuh"))
    other_hospital = await client.get(url, headers=stack.headers("hospital", institution="dsmc"))
    vendor = await client.get(url, headers=stack.headers("applicant", institution="vendor-medvision"))
    drb = await client.get(url, headers=stack.headers("drb_reviewer"))

    assert holder.status_code == 200
    assert other_hospital.status_code == 403
    assert vendor.status_code == 403
    assert drb.status_code == 200


# The fund -------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_fund_award_needs_fund_admin(stack: Stack) -> None:
    client = stack.clients["grants"]
    application_id = unique_name("tg").replace("_", "-")
    submitted = await client.post(
        "/tool-grants/applications",
        json={"application_id": application_id, "vendor_id": "vendor-medvision", "title": "De-identification tool",
              "requested_krw": 50_000_000},
        headers=stack.headers("applicant", institution="vendor-medvision"),
    )
    assert submitted.status_code == 201, submitted.text
    award = {"amount_krw": 50_000_000, "tranches": [{"deliverable": "Release 1", "amount_krw": 50_000_000}]}

    rejected_awards = {
        role: await client.post(f"/tool-grants/applications/{application_id}/award", json=award,
                                headers=stack.headers(role, institution="vendor-medvision"))
        for role in sorted(ROLES - {"fund_admin"})
    }
    allocation = await client.post("/fund/allocations", json={"fund_id": "f-x", "total_krw": 10},
                                   headers=stack.headers("council"))
    rejection = await client.post(f"/tool-grants/applications/{application_id}/rejection", json={"reason": "no"},
                                  headers=stack.headers("applicant", institution="vendor-medvision"))
    on_behalf = await client.post(
        "/tool-grants/applications",
        json={"application_id": unique_name("tg").replace("_", "-"), "vendor_id": "vendor-lunapath", "title": "Tool",
              "requested_krw": 1_000_000},
        headers=stack.headers("applicant", institution="vendor-medvision"),
    )
    state = await client.get(f"/tool-grants/applications/{application_id}", headers=stack.headers("fund_admin"))

    for role, response in rejected_awards.items():
        assert response.status_code == 403, (role, response.text)
        assert response.json()["detail"] == "this action needs one of the roles ['fund_admin']"
    assert allocation.status_code == 403
    assert rejection.status_code == 403
    assert on_behalf.status_code == 403
    assert on_behalf.json()["detail"]["code"] == "not_authorized"
    assert state.json()["status"] == "submitted"
    assert state.json()["award"] is None
