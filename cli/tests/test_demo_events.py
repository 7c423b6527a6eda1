"""The demo counts only its own events on the shared topics."""

import uuid
from types import SimpleNamespace

from medgov_cli.demo.events import EventTail


def event(event_type: str, key: str, *, caused_by=None, event_id=None, **data):
    return SimpleNamespace(id=event_id or uuid.uuid4(), type=event_type, subject=key, data=data,
                           causationid=caused_by.id if caused_by is not None else None)


def tail_with(events) -> EventTail:
    tail = EventTail(options={}, start={})
    tail.events.extend(events)
    tail.scope.entity_ids |= {"ds-knuh-immunization", "app-demo-01"}
    tail.scope.subjects.add("ps-ours")
    return tail


def test_foreign_events_not_counted():
    ours = event("DatasetPublished", "ds-knuh-immunization", dataset_id="ds-knuh-immunization")
    foreign = event("DatasetPublished", "ds-fuzz-1", dataset_id="ds-fuzz-1")
    foreign_consent = event("ConsentGranted", "ps-theirs", subject="ps-theirs")
    tail = tail_with([foreign, ours, foreign_consent])

    assert tail.owned() == [ours]
    assert tail.counts() == {"DatasetPublished": 1}


def test_effects_of_own_events_counted_in_any_order():
    granted = event("AccessGranted", "grant-1", application_id="app-demo-01", grant_id="grant-1")
    milestone = event("MilestoneReached", "knuh", caused_by=granted, institution_id="knuh")
    payout = event("GrantDisbursed", "knuh", caused_by=milestone, reference_id="ms-knuh-10")
    # The effects arrive first: they travel on the grants topic, the cause on the review topic.
    tail = tail_with([payout, milestone, granted])

    assert tail.counts() == {"AccessGranted": 1, "GrantDisbursed": 1, "MilestoneReached": 1}


def test_command_ids_seed_causation():
    command_id = uuid.uuid4()
    granted = event("ConsentGranted", "ps-hl7", subject="ps-hl7")
    granted.causationid = command_id
    tail = tail_with([granted])
    assert tail.owned() == []

    tail.scope.command_ids.add(command_id)

    assert tail.owned() == [granted]


def test_same_id_from_two_instances_counted_once():
    shared_id = uuid.uuid4()
    theirs = event("FundAllocated", "medgov-fund-2026", event_id=shared_id, fund_id="medgov-fund-2026")
    ours = event("FundAllocated", "medgov-fund-2026", event_id=shared_id, fund_id="medgov-fund-2026")
    tail = tail_with([theirs, ours])

    tail.own(ours)

    assert tail.owned() == [ours]
    assert tail.counts() == {"FundAllocated": 1}
