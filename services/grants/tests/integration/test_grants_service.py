"""The grants service against the real Kafka broker and PostgreSQL server."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from medgov_shared.contracts.events.catalog import (
    ComplianceFlagCleared,
    ComplianceViolationFlagged,
    DatasetPublished,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.review import AccessGranted
from medgov_shared.contracts.institutions import get_institution
from medgov_shared.testing.services import http_client, running, wait_until

from medgov_grants import repository
from medgov_grants.domain.fund import Fund
from medgov_grants.domain.ledger import Account, Leg, Posting, PostingKind
from medgov_grants.main import build_fund_service, build_service
from medgov_grants.snapshots import dump_fund

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def bulk_export_records(sample_data: Path) -> int:
    folder = sample_data / "synthea" / "bulk-export-10-patients"
    return sum(
        len([line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()])
        for path in folder.glob("*.ndjson")
        if path.name != "log.ndjson"
    )


def published(dataset_id: str, records: int, *, institution_id: str = "knuh", at: datetime = T0) -> DatasetPublished:
    return DatasetPublished(
        dataset_id=dataset_id,
        version=1,
        institution_id=institution_id,
        region=get_institution(institution_id).region,
        title="Synthea bulk export",
        duo_codes=("HMB",),
        legal_basis="pseudonymized_research",
        completeness_score=85,
        record_count=records,
        subject_count=13,
        published_at=at,
    )


def granted(application_id: str, *, holder: str = "knuh", grantee: str = "vendor-medvision") -> AccessGranted:
    dataset_id = f"ds-{holder}-{application_id}"
    return AccessGranted(
        application_id=application_id,
        grant_id=f"grant-{application_id}",
        grantee_institution=grantee,
        dataset_id=dataset_id,
        dataset_ids=(dataset_id,),
        holder_institution=holder,
        data_environment="secure_enclave",
        purpose_codes=("HMB",),
        conditions=(),
        starts_at=T0,
        expires_at=T0 + timedelta(days=365),
        region=get_institution(holder).region,
    )


def flagged(flag_id: str, institution_id: str = "knuh") -> ComplianceViolationFlagged:
    return ComplianceViolationFlagged(
        dataset_id="ds-flagged",
        flag_id=flag_id,
        institution_id=institution_id,
        region=get_institution(institution_id).region,
        rule="direct_identifier_in_pseudonymized_dataset",
        severity="high",
        findings=(),
        flagged_at=T0,
    )


def cleared(flag_id: str, institution_id: str = "knuh") -> ComplianceFlagCleared:
    return ComplianceFlagCleared(
        dataset_id="ds-flagged", flag_id=flag_id, institution_id=institution_id, cleared_at=T0, note="Fixed"
    )


async def outbox_events(service, event_type: str) -> list[dict]:  # type: ignore[no-untyped-def]
    rows = await service.pool.fetch(
        "SELECT value FROM outbox WHERE event_type = $1 ORDER BY position", event_type
    )
    return [orjson.loads(row["value"]) for row in rows]


async def applied_count(service) -> int:  # type: ignore[no-untyped-def]
    return await service.pool.fetchval("SELECT count(*) FROM grant_inputs WHERE kind = 'event'")


async def balances(service) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with service.pool.acquire() as connection:
        return await repository.account_balances(connection)


async def wait_for_allocation(service) -> None:  # type: ignore[no-untyped-def]
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) FROM postings WHERE kind = 'allocation'"),
        message="the configured fund to be allocated",
    )


async def test_fund_allocated_and_published_at_start(grants_settings, input_topics, token) -> None:  # type: ignore[no-untyped-def]
    async with running(build_service(grants_settings(), consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        await wait_until(
            lambda: service.pool.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'FundAllocated' AND sent_at IS NOT NULL"),
            message="FundAllocated published by the relay",
        )
        async with http_client(service) as client:
            report = await client.get("/reports/pools", headers=token("fund_admin"))
            forbidden = await client.get("/reports/pools", headers=token("applicant", institution="vendor-medvision"))

    assert report.status_code == 200
    assert {row["pool"]: row["available_krw"] for row in report.json()} == {
        "cataloging": 4_800_000_000,
        "anonymization_tools": 3_600_000_000,
        "milestones": 3_600_000_000,
    }
    assert forbidden.status_code == 403


async def test_events_pay_subsidy_milestone_and_clawback(grants_settings, input_topics, token, sample_data) -> None:  # type: ignore[no-untyped-def]
    records = bulk_export_records(sample_data)
    dataset_id = f"ds-knuh-{uuid.uuid4().hex[:8]}"
    events = [
        published(dataset_id, records),
        *(granted(f"app-{n}") for n in range(10)),
        granted("app-0"),
        granted("app-self", grantee="knuh"),
    ]

    async with running(build_service(grants_settings(), consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        # The flag goes first and alone: events on different partitions have no order between them.
        await input_topics.publish([flagged("flag-1")])
        await wait_until(lambda: _applied_at_least(service, 1), message="the flag applied")
        await input_topics.publish(events)
        await wait_until(lambda: _applied_at_least(service, len(events) + 1), message=f"{len(events)} events applied")
        held = await service.pool.fetch("SELECT payout_id, status FROM pending_payouts ORDER BY payout_id")

        # One at a time for the same reason: a withdrawal applied before the
        # clearance would cancel the held subsidy instead of clawing it back.
        await input_topics.publish([cleared("flag-1")])
        await wait_until(lambda: _applied_at_least(service, len(events) + 2), message="clearance applied")
        await input_topics.publish([DatasetWithdrawn(
            dataset_id=dataset_id, institution_id="knuh", reason="Source system retired", withdrawn_at=T0 + timedelta(days=3)
        )])
        await wait_until(lambda: _applied_at_least(service, len(events) + 3), message="withdrawal applied")
        final = await balances(service)
        disbursed = await outbox_events(service, "GrantDisbursed")
        awards = await outbox_events(service, "SubsidyAwarded")
        async with http_client(service) as client:
            csv_report = await client.get("/reports/disbursements/institutions?format=csv", headers=token("council"))

    # The subsidy and the milestone wait while knuh is suspended, and are paid once the flag is cleared.
    assert [(row["payout_id"], row["status"]) for row in held] == [
        ("ms-knuh-10", "held_suspended"),
        (f"sub-{dataset_id}-1", "held_suspended"),
    ]
    assert sorted(event["data"]["disbursement_id"] for event in disbursed) == sorted(["ms-knuh-10", f"sub-{dataset_id}-1"])
    assert [event["data"]["amount_krw"] for event in awards] == [10_608_000, -10_608_000]
    assert Account.grantee("cataloging", "knuh").code not in final
    assert final[Account.grantee("milestones", "knuh").code] == 50_000_000
    assert final[Account.pool("cataloging").code] == 4_800_000_000
    assert csv_report.status_code == 200
    assert csv_report.text.splitlines()[0] == "institution_id,region,pool,disbursed_krw,clawed_back_krw,net_krw"
    assert "knuh,daegu,cataloging,10608000,10608000,0" in csv_report.text
    assert "knuh,daegu,milestones,50000000,0,50000000" in csv_report.text


async def _applied_at_least(service, count: int) -> bool:  # type: ignore[no-untyped-def]
    return await applied_count(service) >= count


async def test_unknown_institution_dead_lettered_without_money(grants_settings, input_topics, infra) -> None:  # type: ignore[no-untyped-def]
    bad = granted("app-bad", holder="knuh").model_copy(update={"holder_institution": "nowhere"})

    async with running(build_service(grants_settings(), consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        await input_topics.publish([bad, granted("app-good")])
        await wait_until(lambda: _applied_at_least(service, 1), message="the valid event applied")
        await wait_until(lambda: service.pool.fetchval("SELECT count(*) FROM dead_letters"), message="dead letter recorded")
        letters = await service.pool.fetch("SELECT reason, error FROM dead_letters")
        postings = await service.pool.fetchval("SELECT count(*) FROM postings")

    assert [row["reason"] for row in letters] == ["rejected"]
    assert "institution 'nowhere' is not registered" in letters[0]["error"]
    assert postings == 1


async def test_tool_grant_over_http(grants_settings, input_topics, token, policy_file) -> None:  # type: ignore[no-untyped-def]
    # The tools pool gets 30% of 1,000,000,000 KRW, which is 300,000,000 KRW.
    settings = grants_settings(policy_file=policy_file(1_000_000_000))
    vendor = token("applicant", institution="vendor-medvision", subject_id="dev-1")
    admin = token("fund_admin", subject_id="admin-1")
    application_id = f"tga-{uuid.uuid4().hex[:8]}"
    application = {"application_id": application_id, "vendor_id": "vendor-medvision", "title": "DICOM de-identifier", "requested_krw": 300_000_000}
    award = {"amount_krw": 300_000_000, "tranches": [{"deliverable": "Beta", "amount_krw": 100_000_000}, {"deliverable": "Audit", "amount_krw": 200_000_000}]}

    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        async with http_client(service) as client:
            submitted = await client.post("/tool-grants/applications", json=application, headers=vendor)
            fractional = await client.post("/tool-grants/applications", json={**application, "application_id": "tga-x", "requested_krw": 1.5}, headers=vendor)
            negative = await client.post("/tool-grants/applications", json={**application, "application_id": "tga-y", "requested_krw": -1}, headers=vendor)
            beyond_bigint = await client.post("/tool-grants/applications", json={**application, "application_id": "tga-z", "requested_krw": 2**63}, headers=vendor)
            huge_fund = await client.post("/fund/allocations", json={"fund_id": "f-huge", "total_krw": 10**23}, headers=admin)
            unknown = await client.post("/tool-grants/applications", json={**application, "vendor_id": "vendor-nobody"}, headers=token("applicant", institution="vendor-nobody"))
            by_vendor = await client.post(f"/tool-grants/applications/{application_id}/award", json=award, headers=vendor)
            too_large = await client.post(f"/tool-grants/applications/{application_id}/award", json={"amount_krw": 300_000_001, "tranches": [{"deliverable": "All", "amount_krw": 300_000_001}]}, headers=admin)
            awarded = await client.post(f"/tool-grants/applications/{application_id}/award", json=award, headers=admin)
            award_id = awarded.json()["award_id"]
            paid = await client.post(f"/tool-grants/awards/{award_id}/tranches/1/delivery", headers=admin)
            again = await client.post(f"/tool-grants/awards/{award_id}/tranches/1/delivery", headers=admin)
            shown = await client.get(f"/tool-grants/applications/{application_id}", headers=vendor)
            hidden = await client.get(f"/tool-grants/applications/{application_id}", headers=token("applicant", institution="vendor-lunapath"))
        disbursed = await outbox_events(service, "GrantDisbursed")
        tools_pool = (await balances(service))[Account.pool("anonymization_tools").code]

    assert submitted.status_code == 201
    assert (fractional.status_code, fractional.json()["detail"]["code"]) == (422, "invalid_amount")
    assert "fractional amount 1.5" in fractional.json()["detail"]["message"]
    assert (negative.status_code, negative.json()["detail"]["code"]) == (422, "invalid_amount")
    for response in (beyond_bigint, huge_fund):
        assert (response.status_code, response.json()["detail"]["code"]) == (422, "invalid_amount")
        assert "at most 1,000,000,000,000,000 KRW" in response.json()["detail"]["message"]
    assert (unknown.status_code, unknown.json()["detail"]["code"]) == (422, "unknown_institution")
    assert by_vendor.status_code == 403
    assert (too_large.status_code, too_large.json()["detail"]["code"]) == (409, "award_exceeds_pool")
    assert awarded.status_code == 201
    assert paid.json() == {"payout_id": f"tool-{application_id}-t1", "amount_krw": 100_000_000, "status": "paid"}
    assert (again.status_code, again.json()["detail"]["code"]) == (409, "invalid_state")
    assert shown.json()["award"]["tranches"][0]["confirmed_at"] is not None
    assert hidden.status_code == 404
    assert [event["data"]["reason"] for event in disbursed] == ["tool_tranche"]
    assert tools_pool == 200_000_000


async def test_refusals_carry_codes(grants_settings, input_topics, token, policy_file) -> None:  # type: ignore[no-untyped-def]
    settings = grants_settings(policy_file=policy_file(1_000_000_000))
    vendor = token("applicant", institution="vendor-medvision", subject_id="dev-1")
    admin = token("fund_admin", subject_id="admin-1")
    fund_id = f"f-{uuid.uuid4().hex[:8]}"
    application = {"application_id": "tga-nul", "vendor_id": "vendor-medvision", "title": "a\u0000b", "requested_krw": 1_000}

    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        async with http_client(service) as client:
            first = await client.post("/fund/allocations", json={"fund_id": fund_id, "total_krw": 1_000_000}, headers=admin)
            same_total = await client.post("/fund/allocations", json={"fund_id": fund_id, "total_krw": 1_000_000}, headers=admin)
            other_total = await client.post("/fund/allocations", json={"fund_id": fund_id, "total_krw": 2_000_000}, headers=admin)
            missing = await client.get("/tool-grants/applications/tga-none", headers=admin)
            nul_title = await client.post("/tool-grants/applications", json=application, headers=vendor)

    assert first.status_code == 201
    for repeated in (same_total, other_total):
        assert repeated.status_code == 409
        assert repeated.json()["detail"]["code"] == "already_allocated"
        assert f"fund '{fund_id}' is already allocated" in repeated.json()["detail"]["message"]
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "not_found"
    assert nul_title.status_code == 422
    assert "NUL character" in nul_title.text


async def test_concurrent_payouts_never_overdraw(grants_settings, input_topics, token, policy_file) -> None:  # type: ignore[no-untyped-def]
    # The tools pool gets 30% of 1,000,000,000 KRW, enough for three 100,000,000 KRW tranches.
    settings = grants_settings(policy_file=policy_file(1_000_000_000))
    admin = token("fund_admin")
    vendor = token("applicant", institution="vendor-medvision")

    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        async with http_client(service) as client:
            for number in range(3):
                application = {"application_id": f"tga-{number}", "vendor_id": "vendor-medvision", "title": "Tool", "requested_krw": 100_000_000}
                await client.post("/tool-grants/applications", json=application, headers=vendor)
            awards = await asyncio.gather(*(
                client.post(f"/tool-grants/applications/tga-{number}/award", json={"amount_krw": 100_000_000, "tranches": [{"deliverable": "Tool", "amount_krw": 100_000_000}]}, headers=admin)
                for number in range(3)
            ))
            extra = {"application_id": "tga-extra", "vendor_id": "vendor-medvision", "title": "Tool", "requested_krw": 1}
            await client.post("/tool-grants/applications", json=extra, headers=vendor)
            refused = await client.post("/tool-grants/applications/tga-extra/award", json={"amount_krw": 1, "tranches": [{"deliverable": "Tool", "amount_krw": 1}]}, headers=admin)
            confirmations = await asyncio.gather(*(
                client.post(f"/tool-grants/awards/tool-tga-{number}/tranches/1/delivery", headers=admin) for number in range(3)
            ))
        final = await balances(service)
        async with service.pool.acquire() as connection:
            derived = await repository.derived_balances(connection)
            overdraft = await _try_overdraft(connection)

    assert [response.status_code for response in awards] == [201, 201, 201]
    assert (refused.status_code, refused.json()["detail"]["code"]) == (409, "award_exceeds_pool")
    assert [response.json()["status"] for response in confirmations] == ["paid", "paid", "paid"]
    assert Account.pool("anonymization_tools").code not in final
    assert final[Account.grantee("anonymization_tools", "vendor-medvision").code] == 300_000_000
    assert derived == final
    assert isinstance(overdraft, asyncpg.CheckViolationError)


async def _try_overdraft(connection: asyncpg.Connection) -> BaseException | None:
    """Insert a disbursement from the empty tools pool behind the domain's back; the database must refuse it."""
    posting = Posting(
        "overdraft",
        PostingKind.DISBURSEMENT,
        (Leg.debit(Account.grantee("anonymization_tools", "vendor-lunapath"), 1), Leg.credit(Account.pool("anonymization_tools"), 1)),
        "overdraft",
        T0,
    )
    try:
        async with connection.transaction():
            seq = await repository.append_journal(connection, repository.JournalEntry("command", "test", {}, T0))
            await repository.insert_postings(connection, [posting], input_seq=seq)
    except asyncpg.CheckViolationError as error:
        return error
    return None


async def test_postings_are_append_only(grants_settings, input_topics) -> None:  # type: ignore[no-untyped-def]
    async with running(build_service(grants_settings(), consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await service.pool.execute("UPDATE posting_legs SET amount_krw = amount_krw + 1")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await service.pool.execute("DELETE FROM postings")


async def test_replay_from_topics_gives_same_balances(grants_settings, input_topics, sample_data) -> None:  # type: ignore[no-untyped-def]
    records = bulk_export_records(sample_data)
    events = [
        published(f"ds-knuh-{n}", records + n, at=T0 + timedelta(hours=n)) for n in range(4)
    ] + [
        published(f"ds-cnuh-{n}", records * 2 + n, institution_id="cnuh") for n in range(3)
    ] + [
        flagged("flag-r", "jnuh"),
        *(granted(f"app-r{n}", holder=("knuh", "cnuh", "jnuh")[n % 3]) for n in range(33)),
        granted("app-r1", holder="cnuh"),
        granted("app-self", holder="cnuh", grantee="cnuh"),
        DatasetWithdrawn(dataset_id="ds-knuh-2", institution_id="knuh", reason="Retired", withdrawn_at=T0 + timedelta(days=1)),
        DatasetWithdrawn(dataset_id="ds-cnuh-0", institution_id="cnuh", reason="Retired", withdrawn_at=T0 + timedelta(days=200)),
        cleared("flag-r", "jnuh"),
    ]
    await input_topics.publish(events)
    snapshots = []

    for _ in range(2):
        async with running(build_service(grants_settings(), consumes=input_topics.names)) as service:
            await wait_for_allocation(service)
            await wait_until(lambda: _applied_at_least(service, len(events)), timeout_s=60, message="every event applied")
            async with service.pool.acquire() as connection:
                snapshots.append((await repository.account_balances(connection), await repository.derived_balances(connection)))

    (live, live_derived), (replayed, replayed_derived) = snapshots
    assert live == replayed
    assert live == live_derived
    assert replayed == replayed_derived
    assert live[Account.grantee("milestones", "knuh").code] == 50_000_000
    assert live[Account.grantee("milestones", "jnuh").code] == 50_000_000


async def test_restart_rebuilds_state_from_journal(grants_settings, input_topics, token) -> None:  # type: ignore[no-untyped-def]
    settings = grants_settings()
    admin = token("fund_admin")
    vendor = token("applicant", institution="vendor-lunapath")
    application = {"application_id": "tga-restart", "vendor_id": "vendor-lunapath", "title": "Tool", "requested_krw": 50_000_000}
    award = {"amount_krw": 50_000_000, "tranches": [{"deliverable": "A", "amount_krw": 20_000_000}, {"deliverable": "B", "amount_krw": 30_000_000}]}

    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        async with http_client(service) as client:
            await client.post("/tool-grants/applications", json=application, headers=vendor)
            await client.post("/tool-grants/applications/tga-restart/award", json=award, headers=admin)
            await client.post("/tool-grants/awards/tool-tga-restart/tranches/1/delivery", headers=admin)

    async with running(build_service(settings, consumes=input_topics.names)) as restarted:
        async with http_client(restarted) as client:
            repeated = await client.post("/tool-grants/awards/tool-tga-restart/tranches/1/delivery", headers=admin)
            second = await client.post("/tool-grants/awards/tool-tga-restart/tranches/2/delivery", headers=admin)
        final = await balances(restarted)
        allocations = await restarted.pool.fetchval("SELECT count(*) FROM postings WHERE kind = 'allocation'")

    assert repeated.status_code == 409
    assert second.json()["status"] == "paid"
    assert final[Account.grantee("anonymization_tools", "vendor-lunapath").code] == 50_000_000
    assert allocations == 1


async def test_restart_rebuilds_fund_before_any_input(grants_settings, input_topics, token) -> None:  # type: ignore[no-untyped-def]
    settings = grants_settings()
    vendor = token("applicant", institution="vendor-lunapath")
    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await submit_first_application(service, vendor)

    restarted_funds = build_fund_service(settings)
    async with running(build_service(settings, consumes=input_topics.names, fund_service=restarted_funds)):
        # Nothing is sent or asked: the load-fund job rebuilds the fund by itself.
        await wait_until(lambda: restarted_funds.last_rebuild is not None, timeout_s=20, message="fund rebuilt at start")

    assert restarted_funds.last_rebuild is not None
    assert restarted_funds.last_rebuild.replayed_entries == 2


async def submit_first_application(service, vendor) -> None:  # type: ignore[no-untyped-def]
    """Wait for the fund's allocation, then submit tool application 1."""
    await wait_for_allocation(service)
    async with http_client(service) as client:
        submitted = await client.post("/tool-grants/applications", json=tool_application(1), headers=vendor)
    assert submitted.status_code == 201, submitted.text


def tool_application(number: int) -> dict[str, object]:
    return {"application_id": f"tga-snap-{number}", "vendor_id": "vendor-lunapath", "title": f"Tool {number}",
            "requested_krw": 10_000_000}


async def test_restart_replays_only_after_snapshot(grants_settings, input_topics, token) -> None:  # type: ignore[no-untyped-def]
    settings = grants_settings(snapshot_every_inputs=3)
    vendor = token("applicant", institution="vendor-lunapath")
    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await wait_for_allocation(service)
        async with http_client(service) as client:
            for number in range(1, 8):
                submitted = await client.post("/tool-grants/applications", json=tool_application(number), headers=vendor)
                assert submitted.status_code in (200, 201), submitted.text
        journal_length = await service.pool.fetchval("SELECT count(*) FROM grant_inputs")
        snapshot_seq = await service.pool.fetchval("SELECT input_seq FROM fund_snapshot")
        live_balances = await balances(service)

    restarted_funds = build_fund_service(settings)
    async with running(build_service(settings, consumes=input_topics.names, fund_service=restarted_funds)) as restarted:
        async with http_client(restarted) as client:
            first = await client.get("/tool-grants/applications/tga-snap-1", headers=vendor)
            last = await client.get("/tool-grants/applications/tga-snap-7", headers=vendor)
        restarted_balances = await balances(restarted)

    assert journal_length == 8
    assert snapshot_seq is not None and snapshot_seq >= journal_length - 3
    assert restarted_funds.last_rebuild is not None
    assert restarted_funds.last_rebuild.snapshot_seq == snapshot_seq
    assert restarted_funds.last_rebuild.replayed_entries < 3
    assert first.json()["title"] == "Tool 1"
    assert last.json()["title"] == "Tool 7"
    assert restarted_balances == live_balances


async def test_snapshot_disagreeing_with_ledger_ignored(grants_settings, input_topics, token) -> None:  # type: ignore[no-untyped-def]
    settings = grants_settings(snapshot_every_inputs=1)
    vendor = token("applicant", institution="vendor-lunapath")
    async with running(build_service(settings, consumes=input_topics.names)) as service:
        await submit_first_application(service, vendor)
        # An empty fund claimed as of the last entry: it lacks the allocation's posting.
        empty = dump_fund(Fund(build_fund_service(settings).configured_policy))
        await service.pool.execute(
            "UPDATE fund_snapshot SET input_seq = (SELECT max(seq) FROM grant_inputs), state = $1", empty
        )

    restarted_funds = build_fund_service(settings)
    async with running(build_service(settings, consumes=input_topics.names, fund_service=restarted_funds)) as restarted:
        async with http_client(restarted) as client:
            application = await client.get("/tool-grants/applications/tga-snap-1", headers=vendor)

    assert restarted_funds.last_rebuild is not None
    assert restarted_funds.last_rebuild.snapshot_seq == 0
    assert restarted_funds.last_rebuild.replayed_entries == 2
    assert application.status_code == 200, application.text
