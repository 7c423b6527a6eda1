from datetime import UTC, datetime

from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.registry import parse_payload

from medgov_grants.domain.fund import Fund
from medgov_grants.domain.tool_grants import TrancheTerms
from medgov_grants.fund_service import replay_entry
from medgov_grants.outgoing import outgoing_events
from medgov_grants.repository import JournalEntry

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def test_each_fact_maps_to_its_contract_event(fund, build) -> None:  # type: ignore[no-untyped-def]
    outcomes = fund.apply(build.published("ds-1"), at=T0)
    for number in range(10):
        outcomes += fund.apply(build.access_granted(f"app-{number}", holder="cnuh"), at=T0)

    events = outgoing_events(outcomes, directory=fund.directory, region="daegu")

    assert [event.payload.event_type for event in events] == ["SubsidyAwarded", "GrantDisbursed", "MilestoneReached", "GrantDisbursed"]
    assert events[3].payload.region == "daejeon"
    assert events[3].payload.reference_id == "ms-cnuh-10"
    for event in events:
        envelope = wrap(event.payload, source="medgov/grants", region="daegu", event_id=event.event_id, time=event.time)
        assert parse_payload(envelope) == event.payload


def test_event_ids_repeat_for_same_fact(policy, build) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for _ in range(2):
        fund = Fund(policy)
        outcomes = fund.allocate(at=T0) + fund.apply(build.published("ds-1"), at=T0)
        ids.append([event.event_id for event in outgoing_events(outcomes, directory=fund.directory, region="daegu")])

    other_region = outgoing_events(outcomes, directory=fund.directory, region="gwangju")

    assert ids[0] == ids[1]
    assert len(set(ids[0])) == 3
    assert [event.event_id for event in other_region] != ids[0]


def test_pool_shortage_maps_to_pool_exhausted(policy, build) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(policy)
    outcomes = fund.apply(build.published("ds-1"), at=T0)

    _, exhausted = outgoing_events(outcomes, directory=fund.directory, region="daegu")

    assert exhausted.payload.event_type == "PoolExhausted"
    assert (exhausted.payload.requested_krw, exhausted.payload.available_krw) == (10_608_000, 0)


def test_journal_replay_repeats_commands(policy, admin, vendor_applicant) -> None:  # type: ignore[no-untyped-def]
    actor = {"subject": admin.subject, "roles": ["fund_admin"], "institution_id": None}
    applicant = {"subject": vendor_applicant.subject, "roles": ["applicant"], "institution_id": "vendor-medvision"}
    journal = [
        JournalEntry("command", "allocate", {"args": {"split": policy.fund.model_dump(mode="json")}, "actor": actor}, T0),
        JournalEntry("command", "submit_tool_application", {"args": {"application_id": "tga-1", "vendor_id": "vendor-medvision", "title": "Tool", "requested_krw": 10}, "actor": applicant}, T0),
        JournalEntry("command", "award_tool_grant", {"args": {"application_id": "tga-1", "amount_krw": 10, "tranches": [{"deliverable": "A", "amount_krw": 10}]}, "actor": actor}, T0),
        JournalEntry("command", "confirm_tranche_delivery", {"args": {"award_id": "tool-tga-1", "tranche_number": 1}, "actor": actor}, T0),
    ]
    live = Fund(policy)
    live.allocate(at=T0)
    live.submit_tool_application(application_id="tga-1", vendor_id="vendor-medvision", title="Tool", requested_krw=10, actor=vendor_applicant, at=T0)
    live.award_tool_grant(application_id="tga-1", amount_krw=10, tranches=[TrancheTerms("A", 10)], actor=admin, at=T0)
    live.confirm_tranche_delivery(award_id="tool-tga-1", tranche_number=1, actor=admin, at=T0)

    rebuilt = Fund(policy)
    for entry in journal:
        replay_entry(rebuilt, entry)

    assert rebuilt.ledger.postings == live.ledger.postings
    assert rebuilt.awards["tool-tga-1"].unconfirmed_krw == 0
