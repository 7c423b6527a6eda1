"""The review service end to end on the real Kafka broker and PostgreSQL server."""

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from medgov_shared.clock import ManualClock
from medgov_shared.contracts.events.catalog import DatasetWithdrawn
from medgov_shared.contracts.events.inbound import SubmitApplication
from medgov_shared.contracts.types import DataEnvironment, Region
from medgov_shared.service import Service
from medgov_shared.testing.services import ServiceProcess, free_port, http_client, running, unique_name, wait_until

from medgov_review.domain.sla import KST
from medgov_review.main import build_service
from medgov_review.settings import ReviewSettings

from .conftest import (
    REVIEW_TOPIC,
    T0,
    TestTopics,
    application_body,
    end_offsets,
    published,
    read_envelopes,
    unique_id,
)

pytestmark = pytest.mark.integration

APPLICANT = "vendor-medvision"


def start(settings: ReviewSettings, topics: TestTopics, clock: ManualClock) -> Service:
    return build_service(settings, clock, consumes=topics.names, consume_inbound=False)


async def publish_datasets(topics: TestTopics, service: Service, *datasets: Any) -> list[str]:
    await topics.publish(topics.catalog, list(datasets), source="medgov/catalog")
    ids = [item.dataset_id for item in datasets]
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) = $2 FROM datasets WHERE dataset_id = ANY ($1::text[])", ids, len(ids)),
        message=f"datasets {ids} in the catalog projection",
    )
    return ids


async def vote_as_board(  # type: ignore[no-untyped-def]
    client: httpx.AsyncClient,
    auth,
    application_id: str,
    prefix: str,
    board: str,
    vote: str = "approve",
    members: tuple[int, ...] = (3, 4, 5),
    **extra: Any,
) -> list[dict[str, Any]]:
    """Cast the same vote for each listed member of a board over HTTP; fail on any status other than 200."""
    role = "irb_reviewer" if board == "IRB" else "drb_reviewer"
    results = []
    for number in members:
        member = f"{prefix}-{board.lower()}-{number}"
        body = {"board": board, "vote": vote, **extra}
        if vote != "approve":
            body.setdefault("comments", [f"{member} reason"])
        response = await client.post(f"/applications/{application_id}/votes", json=body, headers=auth(role, subject_id=member))
        assert response.status_code == 200, response.text
        results.append(response.json())
    return results


async def outbox_types(service: Service, application_id: str) -> list[str]:
    rows = await service.pool.fetch("SELECT event_type FROM outbox WHERE key = $1 ORDER BY position", application_id)
    return [row["event_type"] for row in rows]


async def test_lifecycle_submission_to_expiry(topics: TestTopics, review_settings, auth) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    application_id = unique_id("app")
    async with running(start(review_settings(), topics, clock)) as service, http_client(service) as client:
        start_offsets = await end_offsets(topics.bootstrap, REVIEW_TOPIC)
        knuh, cnuh = await publish_datasets(
            topics,
            service,
            published(unique_id("ds-knuh"), "knuh", Region.DAEGU, "HMB", "IRB", "PUB"),
            published(unique_id("ds-cnuh"), "cnuh", Region.DAEJEON, "GRU"),
        )
        applicant = auth("applicant", institution=APPLICANT)

        incomplete = application_body(application_id, [knuh, cnuh], title=None)
        first = await client.post("/applications", json=incomplete, headers=applicant)
        replay = await client.post("/applications", json=incomplete, headers=applicant)
        clock.set(T0 + timedelta(hours=2))
        complete = await client.post("/applications", json=application_body(application_id, [knuh, cnuh]), headers=applicant)

        assert first.status_code == 201
        assert first.json()["status"] == "awaiting_revision"
        assert first.json()["missing_items"] == ["title"]
        assert replay.status_code == 200
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json() == first.json()
        assert complete.status_code == 201, complete.text
        assert complete.json()["status"] == "under_review"
        assert complete.json()["regions_involved"] == ["daegu", "daejeon"]
        assert complete.json()["due_at"] == datetime(2027, 1, 5, 11, tzinfo=KST).isoformat()

        queue = await client.get("/applications", params={"region": "daejeon"}, headers=auth("drb_reviewer", subject_id="dj-drb-1"))
        detail = await client.get(f"/applications/{application_id}", headers=applicant)
        assert [item["application_id"] for item in queue.json()["applications"]] == [application_id]
        assert queue.json()["applications"][0]["days_left"] == 20.0
        assert {(item["dataset_id"], item["term"], item["kind"]) for item in detail.json()["purpose_findings"]} == {
            (knuh, "IRB", "obligation"),
            (knuh, "PUB", "obligation"),
        }

        clock.set(T0 + timedelta(days=3))
        for prefix in ("dg", "dj"):
            await vote_as_board(client, auth, application_id, prefix, "IRB", conditions=["No re-identification"])
            last = await vote_as_board(client, auth, application_id, prefix, "DRB", conditions=["Federated training only"])

        assert last[-1]["status"] == "approved"
        assert last[-1]["events"] == ["DrbDecisionRecorded", "ApplicationApproved", "AccessGranted", "AccessGranted"]

        grants = (await client.get(f"/applications/{application_id}", headers=applicant)).json()["grants"]
        daejeon_grant = next(item["grant_id"] for item in grants if item["region"] == "daejeon")
        revoked = await client.post(
            f"/grants/{daejeon_grant}/revocation",
            json={"reason": "Breach of conditions"},
            headers=auth("drb_reviewer", subject_id="dj-drb-1"),
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["events"] == ["AccessRevoked"]

        clock.set(datetime(2028, 1, 1, 0, 0, 1, tzinfo=KST))
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) FROM outbox WHERE key = $1 AND event_type = 'AccessExpired'", application_id),
            message="expiry of the remaining grant",
        )

        expected = [
            "RevisionRequested",
            "ApplicationSubmitted",
            "ReviewStarted",
            "IrbDecisionRecorded",
            "DrbDecisionRecorded",
            "IrbDecisionRecorded",
            "DrbDecisionRecorded",
            "ApplicationApproved",
            "AccessGranted",
            "AccessGranted",
            "AccessRevoked",
            "AccessExpired",
        ]
        on_bus = await read_envelopes(topics.bootstrap, REVIEW_TOPIC, start_offsets, application_id, len(expected))
        history = (await client.get(f"/applications/{application_id}/events", headers=applicant)).json()["events"]
        figures = (await client.get("/statistics", headers=auth("council"))).json()
        in_outbox = await outbox_types(service, application_id)

    assert in_outbox == expected
    assert [item.type for item in on_bus] == expected
    assert [item["type"] for item in history] == expected
    assert len({item.correlationid for item in on_bus}) == 1
    assert {item.region for item in on_bus} == {Region.DAEGU}
    assert figures["decided"] == 1
    # Friday 11:00 to 24:00 KST and Monday 00:00 to 09:00 KST.
    assert figures["mean_days_to_decision"] == pytest.approx(13 / 24 + 9 / 24, abs=0.001)
    assert figures["applications_by_status"] == {"approved": 1}


async def test_bad_input_gets_specific_errors(topics: TestTopics, review_settings, auth) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    async with running(start(review_settings(), topics, clock)) as service, http_client(service) as client:
        (dsmc,) = await publish_datasets(topics, service, published(unique_id("ds-dsmc"), "dsmc", Region.DAEGU, "GRU"))
        # A knuh researcher applies, so the knuh members of the Daegu boards are recused.
        applicant = auth("applicant", institution="knuh")
        application_id = unique_id("app")
        body = application_body(application_id, [dsmc])
        created = await client.post("/applications", json=body, headers=applicant)
        assert created.status_code == 201, created.text
        before = await snapshot(service, application_id)

        async def submit(changes: dict[str, Any], headers: dict[str, str] | None = applicant) -> httpx.Response:
            return await client.post("/applications", json={**body, **changes}, headers=headers)

        async def vote(member: str, role: str, **ballot: Any) -> httpx.Response:
            path = f"/applications/{application_id}/votes"
            return await client.post(path, json={"board": "IRB", "vote": "approve", **ballot}, headers=auth(role, subject_id=member))

        fresh = {"application_id": unique_id("app"), "idempotency_key": unique_id("key")}
        malformed = {**applicant, "Content-Type": "application/json"}
        resident_number = "see patient 900101-1234567"
        cases = [
            (await submit({}, headers={}), 401, None),
            (await submit({}, headers=auth("irb_reviewer")), 403, None),
            (await client.post("/applications", content=b'{"application_id": ', headers=malformed), 422, None),
            (await submit({**fresh, "dataset_ids": ["ds-nowhere"]}), 422, "unknown_dataset"),
            (await submit({**fresh, "requested_start": "2027-06-01", "requested_end": "2027-05-31"}), 422, "invalid_period"),
            (await submit({**fresh, "purpose_text": resident_number}), 422, "personal_data_in_text"),
            (await submit({"title": "Another title"}), 409, "idempotency_key_reused"),
            (await vote("gj-irb-3", "irb_reviewer"), 403, "not_board_member"),
            (await vote("dg-irb-1", "irb_reviewer"), 403, "member_recused"),
            (await vote("dg-drb-3", "irb_reviewer", board="DRB"), 403, None),
            (await vote("dg-irb-3", "irb_reviewer", vote="reject"), 422, "invalid_vote"),
            (await vote("dg-irb-3", "irb_reviewer", vote="revise", comments=[resident_number]), 422, "invalid_vote"),
            (
                await client.post(
                    "/applications/app-missing/votes",
                    json={"board": "IRB", "vote": "approve"},
                    headers=auth("irb_reviewer", subject_id="dg-irb-3"),
                ),
                404,
                "application_not_found",
            ),
        ]
        for response, status_code, code in cases:
            assert response.status_code == status_code, response.text
            if code is not None:
                assert response.json()["detail"]["code"] == code, response.text
        assert await snapshot(service, application_id) == before

        # With the knuh member recused, four remain: two rejections make approval impossible.
        rejected = await vote_as_board(client, auth, application_id, "dg", "DRB", vote="reject", members=(3, 4))
        late = await vote("dg-drb-5", "drb_reviewer", board="DRB")
        assert rejected[-1]["status"] == "rejected"
        assert late.status_code == 409
        assert late.json()["detail"]["code"] == "decision_already_made"
        assert await outbox_types(service, application_id) == [
            "ApplicationSubmitted",
            "ReviewStarted",
            "DrbDecisionRecorded",
            "ApplicationRejected",
        ]


async def test_revision_stops_clock_until_resubmission(topics: TestTopics, review_settings, auth) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    application_id = unique_id("app")
    async with running(start(review_settings(), topics, clock)) as service, http_client(service) as client:
        (knuh,) = await publish_datasets(topics, service, published(unique_id("ds-knuh"), "knuh", Region.DAEGU, "HMB"))
        applicant = auth("applicant", institution=APPLICANT)
        await client.post("/applications", json=application_body(application_id, [knuh]), headers=applicant)

        # Monday 7 December 09:00 KST: one business day used, then the IRB requests revision.
        clock.set(datetime(2026, 12, 7, 9, tzinfo=KST))
        revised = await vote_as_board(client, auth, application_id, "dg", "IRB", vote="revise")
        clock.set(datetime(2027, 3, 1, 9, tzinfo=KST))
        await wait_ticks(service)
        waiting = (await client.get(f"/applications/{application_id}", headers=applicant)).json()
        # Resubmitted on Wednesday 3 March 2027 09:00 KST, after 1 March (a holiday) and 2 March.
        clock.set(datetime(2027, 3, 3, 9, tzinfo=KST))
        resubmitted = await client.post("/applications", json=application_body(application_id, [knuh]), headers=applicant)
        alerts = await service.pool.fetchval("SELECT count(*) FROM sla_alerts")

    assert revised[-1]["events"] == ["IrbDecisionRecorded", "RevisionRequested"]
    assert waiting["status"] == "awaiting_revision"
    assert waiting["clock_running"] is False
    assert waiting["days_used"] == 1.0
    assert alerts == 0
    assert resubmitted.json()["status"] == "under_review"
    # 19 business days left from Wednesday 3 March 2027 09:00 KST.
    assert resubmitted.json()["due_at"] == datetime(2027, 3, 30, 9, tzinfo=KST).isoformat()


async def test_withdrawn_dataset_is_not_granted(topics: TestTopics, review_settings, auth) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    application_id = unique_id("app")
    async with running(start(review_settings(), topics, clock)) as service, http_client(service) as client:
        knuh, dsmc = await publish_datasets(
            topics,
            service,
            published(unique_id("ds-knuh"), "knuh", Region.DAEGU, "HMB"),
            published(unique_id("ds-dsmc"), "dsmc", Region.DAEGU, "GRU"),
        )
        applicant = auth("applicant", institution=APPLICANT)
        await client.post("/applications", json=application_body(application_id, [knuh, dsmc]), headers=applicant)

        withdrawal = DatasetWithdrawn(dataset_id=dsmc, institution_id="dsmc", reason="Source system retired", withdrawn_at=T0)
        await topics.publish(topics.catalog, [withdrawal], source="medgov/catalog")

        async def noted() -> bool:
            detail = (await client.get(f"/applications/{application_id}", headers=applicant)).json()
            return detail["withdrawn_datasets"] == [dsmc]

        await wait_until(noted, message=f"withdrawal of {dsmc} noted in the application")
        await vote_as_board(client, auth, application_id, "dg", "IRB")
        decided = await vote_as_board(client, auth, application_id, "dg", "DRB")

    assert decided[-1]["events"] == ["DrbDecisionRecorded", "ApplicationApproved", "AccessGranted"]


async def snapshot(service: Service, application_id: str) -> tuple[Any, ...]:
    """Everything a failed command must leave unchanged."""
    document = await service.pool.fetchval("SELECT document FROM applications WHERE application_id = $1", application_id)
    counts = await service.pool.fetchrow(
        "SELECT (SELECT count(*) FROM outbox) AS outbox, (SELECT count(*) FROM applications) AS applications, "
        "(SELECT count(*) FROM submissions) AS submissions, (SELECT count(*) FROM application_events) AS events"
    )
    return document, tuple(counts)


async def test_inbound_submission_idempotent_and_dead_lettered(topics: TestTopics, review_settings) -> None:  # type: ignore[no-untyped-def]
    clock = ManualClock(T0)
    async with running(start(review_settings(), topics, clock)) as service:
        (knuh,) = await publish_datasets(topics, service, published(unique_id("ds-knuh"), "knuh", Region.DAEGU, "HMB"))
        application_id = unique_id("app")
        command = SubmitApplication(
            institution_id=topics.hospital,
            application_id=application_id,
            idempotency_key="sub-1",
            applicant_institution=APPLICANT,
            principal_investigator="Dr. Kim",
            title="Chest CT nodule detection",
            purpose_text="Train a nodule detector",
            purpose_codes=("HMB",),
            dataset_ids=(knuh,),
            requested_start=datetime(2027, 1, 1).date(),
            requested_end=datetime(2027, 12, 31).date(),
            data_environment=DataEnvironment.FEDERATED_LEARNING,
            irb_document_ref="irb://knuh/2026-113",
        )
        bad = command.model_copy(update={"application_id": unique_id("app"), "dataset_ids": ("ds-nowhere",)})
        source = f"medgov/hospital/{topics.hospital}"

        sent = await topics.publish(topics.inbound, [command], source=source)
        # The same command sent again as a new message (a new event id) must change nothing.
        await topics.publish(topics.inbound, [command, bad], source=source)
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) FROM dead_letters"), message="dead letter of the bad command"
        )
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) = 2 FROM inbox WHERE topic = $1", topics.inbound),
            message="both copies of the good command in the inbox",
        )

        letter = await service.pool.fetchrow("SELECT reason, error FROM dead_letters")
        flow = await service.pool.fetch("SELECT DISTINCT value FROM outbox WHERE key = $1", application_id)
        types = await outbox_types(service, application_id)
        stored = await service.pool.fetchval("SELECT count(*) FROM applications")

    assert types == ["ApplicationSubmitted", "ReviewStarted"]
    assert stored == 1
    assert letter["reason"] == "rejected"
    assert letter["error"].startswith("unknown_dataset: ")
    assert all(f'"correlationid":"{sent[0].correlationid}"' in row["value"].decode() for row in flow)


async def test_clock_survives_restarts_without_repeats(topics: TestTopics, review_settings, auth) -> None:  # type: ignore[no-untyped-def]
    settings = review_settings()
    application_id = unique_id("app")
    first_clock = ManualClock(T0)
    async with running(start(settings, topics, first_clock)) as service, http_client(service) as client:
        (knuh,) = await publish_datasets(topics, service, published(unique_id("ds-knuh"), "knuh", Region.DAEGU, "HMB"))
        created = await client.post(
            "/applications", json=application_body(application_id, [knuh]), headers=auth("applicant", institution=APPLICANT)
        )
        assert created.status_code == 201, created.text
        # Just past 50 percent: 10 business days after Friday 09:00 KST is Friday 18 December 09:00.
        first_clock.set(datetime(2026, 12, 18, 9, 30, tzinfo=KST))
        await wait_for_alerts(service, application_id, [50])

    # Restarted after the service was down across the 75 percent mark.
    second_clock = ManualClock(datetime(2026, 12, 29, 12, tzinfo=KST))
    async with running(start(settings, topics, second_clock)) as service:
        await wait_for_alerts(service, application_id, [50, 75])
        second_clock.set(datetime(2027, 1, 5, 9, 0, 1, tzinfo=KST))
        await wait_for_alerts(service, application_id, [50, 75, 90, 100])

    # Restarted again at the same instant: every alert already fired.
    async with running(start(settings, topics, ManualClock(datetime(2027, 1, 5, 10, tzinfo=KST)))) as service:
        await wait_ticks(service)
        types = await outbox_types(service, application_id)
        alerts = [
            orjson.loads(row["value"])["data"]
            for row in await service.pool.fetch(
                "SELECT value FROM outbox WHERE key = $1 AND event_type LIKE 'ReviewSla%' ORDER BY position",
                application_id,
            )
        ]

    assert types == ["ApplicationSubmitted", "ReviewStarted"] + ["ReviewSlaWarning"] * 3 + ["ReviewSlaBreached"]
    assert [item.get("threshold_percent") for item in alerts] == [50, 75, 90, None]
    breach = alerts[-1]
    assert breach["council_chair_region"] == "daejeon"
    assert breach["region"] == "daegu"
    assert breach["due_at"] == "2027-01-05T00:00:00Z"


async def wait_for_alerts(service: Service, application_id: str, percents: list[int]) -> None:
    async def fired() -> bool:
        rows = await service.pool.fetch(
            "SELECT threshold_percent FROM sla_alerts WHERE application_id = $1 ORDER BY threshold_percent", application_id
        )
        return [row["threshold_percent"] for row in rows] == percents

    await wait_until(fired, timeout_s=15, message=f"SLA alerts {percents} of {application_id}")


async def wait_ticks(service: Service, ticks: int = 5) -> None:
    """Let the clock job run a few times (it runs every 0.1 s in these tests)."""
    await asyncio.sleep(ticks * service.settings.clock_tick_interval_s + 0.3)  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_sigkill_mid_window_keeps_alerts_once(  # type: ignore[no-untyped-def]
    topics: TestTopics, review_settings, auth, jwt_secret: str, tmp_path: Path
) -> None:
    settings = review_settings()
    port = free_port()
    application_id = unique_id("app")
    dataset = published(unique_id("ds-knuh"), "knuh", Region.DAEGU, "HMB")

    def process(origin: datetime) -> ServiceProcess:
        # A new consumer group per process, so a restart need not wait for the
        # killed member's session to time out. The inbox drops the re-read events.
        env = {
            "MEDGOV_REVIEW_REGION": "daegu",
            "MEDGOV_REVIEW_DATABASE_URL": settings.database_url,
            "MEDGOV_REVIEW_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "MEDGOV_REVIEW_JWT_SECRET": jwt_secret,
            "MEDGOV_REVIEW_KAFKA_GROUP_ID": unique_name("review"),
            "MEDGOV_REVIEW_HTTP_PORT": str(port),
            "MEDGOV_REVIEW_CLOCK_ORIGIN": origin.isoformat(),
            "MEDGOV_REVIEW_CLOCK_TICK_INTERVAL_S": "0.1",
            "MEDGOV_REVIEW_LOG_FORMAT": "console",
            "REVIEW_TEST_TOPICS": ",".join(topics.names),
            "PYTHONPATH": str(Path(__file__).resolve().parent),
        }
        return ServiceProcess("review_process", env, port=port, log_path=tmp_path / "review.log")

    first = process(T0)
    first.start()
    try:
        await first.wait_ready()
        await topics.publish(topics.catalog, [dataset], source="medgov/catalog")
        connection = await asyncpg.connect(settings.database_url)
        try:
            await wait_until(lambda: connection.fetchval("SELECT count(*) FROM datasets"), message="dataset projected")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                created = await client.post(
                    "/applications",
                    json=application_body(application_id, [dataset.dataset_id]),
                    headers=auth("applicant", institution=APPLICANT),
                )
            assert created.status_code == 201, created.text
        finally:
            await connection.close()
    finally:
        first.kill()

    # Restarted just past 50 percent and killed as soon as that warning is committed.
    second = process(datetime(2026, 12, 18, 9, 0, 30, tzinfo=KST))
    second.start()
    connection = await asyncpg.connect(settings.database_url)
    try:
        await wait_until(lambda: alerts_of(connection, application_id), timeout_s=60, message="50 percent warning")
        assert second.kill() == -9

        for origin in (datetime(2026, 12, 29, 12, tzinfo=KST), datetime(2026, 12, 29, 12, tzinfo=KST)):
            restarted = process(origin)
            restarted.start()
            try:
                await restarted.wait_ready()
                await wait_until(
                    lambda: connection.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"),
                    message="outbox relayed after restart",
                )
                await asyncio.sleep(0.5)  # several clock ticks
                assert await alerts_of(connection, application_id) == [50, 75]
            finally:
                restarted.kill()

        warnings = await connection.fetch(
            "SELECT event_id FROM outbox WHERE key = $1 AND event_type = 'ReviewSlaWarning'", application_id
        )
    finally:
        await connection.close()

    assert len(warnings) == 2


async def alerts_of(connection: asyncpg.Connection, application_id: str) -> list[int]:
    rows = await connection.fetch(
        "SELECT threshold_percent FROM sla_alerts WHERE application_id = $1 ORDER BY threshold_percent", application_id
    )
    return [row["threshold_percent"] for row in rows]
