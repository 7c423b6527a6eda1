"""The application aggregate: the whole review lifecycle, the SLA clock within it, grants, and bad commands."""

import copy
from datetime import UTC, date, datetime, timedelta

import pytest

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.envelope import Envelope, wrap
from medgov_shared.contracts.events.review import (
    AccessExpired,
    AccessGranted,
    AccessRevoked,
    ApplicationApproved,
    ApplicationRejected,
    ApplicationSubmitted,
    ReviewSlaBreached,
    ReviewSlaWarning,
    ReviewStarted,
    RevisionRequested,
)
from medgov_shared.contracts.registry import parse_payload
from medgov_shared.contracts.types import Board, Region, Vote

from medgov_review.domain.aggregate import Application, ReviewRules
from medgov_review.domain.application import ApplicationStatus
from medgov_review.domain.errors import (
    DecisionAlreadyMade,
    DuplicateVote,
    GrantNotActive,
    GrantNotFound,
    InvalidTransition,
    InvalidVote,
    MemberRecused,
    NotBoardMember,
    NotUnderReview,
    PersonalDataInText,
    ReviewError,
    UnknownDataset,
    WrongApplicant,
)
from medgov_review.domain.purpose import FindingKind
from medgov_review.domain.screening import ApplicationDraft
from medgov_review.domain.sla import KST, DayCount, SlaCalendar

from .conftest import CNUH_MR, DSMC_LAB, JNUH_XR, KNUH_CT, T0, Catalog, complete_draft

PREFIX = {Region.DAEGU: "dg", Region.DAEJEON: "dj", Region.GWANGJU: "gj"}


def types(events: list[EventPayload]) -> list[str]:
    return [item.event_type for item in events]


def submit(catalog: Catalog, rules: ReviewRules, draft: ApplicationDraft | None = None, now: datetime = T0):
    return Application.submit(
        "app-2026-0001", draft or complete_draft(), catalog=catalog, rules=rules, received_in=Region.DAEGU, now=now
    )


def board_votes(
    app: Application,
    rules: ReviewRules,
    region: Region,
    board: Board,
    vote: Vote,
    now: datetime,
    *,
    members: tuple[int, ...] = (3, 4, 5),
    conditions: tuple[str, ...] = (),
) -> list[EventPayload]:
    """Cast `vote` for each listed member of the board; return the events of all ballots."""
    events: list[EventPayload] = []
    for number in members:
        member = f"{PREFIX[region]}-{board.value.lower()}-{number}"
        comments = () if vote is Vote.APPROVE else (f"{member} reason",)
        events += app.record_vote(member, board, vote, comments=comments, conditions=conditions, rules=rules, now=now)
    return events


def approve_everything(app: Application, rules: ReviewRules, now: datetime) -> list[EventPayload]:
    events: list[EventPayload] = []
    for region in app.regions:
        for board in (Board.IRB, Board.DRB):
            events += board_votes(app, rules, region, board, Vote.APPROVE, now, conditions=(f"{board} condition",))
    return events


# -- submission and screening -----------------------------------------------------------


def test_complete_submission_starts_review(catalog: Catalog, rules: ReviewRules) -> None:
    app, events = submit(catalog, rules)

    assert types(events) == ["ApplicationSubmitted", "ReviewStarted"]
    submitted, started = events
    assert isinstance(submitted, ApplicationSubmitted) and isinstance(started, ReviewStarted)
    assert submitted.region is Region.DAEGU
    assert submitted.regions_involved == (Region.DAEGU,)
    assert started.due_at == datetime(2027, 1, 5, 9, tzinfo=KST)
    assert (started.window_days, started.calendar) == (20, "business")
    assert app.status is ApplicationStatus.UNDER_REVIEW
    assert len(app.panels) == 2


def test_incomplete_submission_requests_every_missing_item(catalog: Catalog, rules: ReviewRules) -> None:
    app, events = submit(catalog, rules, complete_draft(title=None, irb_document_ref=" ", dataset_ids=()))

    assert types(events) == ["RevisionRequested"]
    request = events[0]
    assert isinstance(request, RevisionRequested)
    assert request.requested_by == "screening"
    assert request.missing_items == ("title", "dataset_ids", "irb_document_ref")
    assert request.comments[0].startswith("title: ")
    assert app.status is ApplicationStatus.AWAITING_REVISION
    assert app.clock is None


def test_clock_starts_at_complete_resubmission(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(title=None))
    resubmitted_at = T0 + timedelta(days=10)

    events = app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=resubmitted_at)

    assert types(events) == ["ApplicationSubmitted", "ReviewStarted"]
    assert app.clock is not None and app.clock.started_at == resubmitted_at
    assert app.review_round == 1


def test_invalid_submission_raises_before_anything_exists(catalog: Catalog, rules: ReviewRules) -> None:
    with pytest.raises(UnknownDataset):
        submit(catalog, rules, complete_draft(dataset_ids=("ds-missing",)))


def test_purpose_conflicts_are_shown_before_votes(catalog: Catalog, rules: ReviewRules) -> None:
    draft = complete_draft(dataset_ids=(KNUH_CT.dataset_id, JNUH_XR.dataset_id), purpose_codes=("GRU",))

    app, _ = submit(catalog, rules, draft)

    assert app.purpose_report is not None
    conflicts = [(item.dataset_id, item.term) for item in app.purpose_report.conflicts]
    assert conflicts == [(KNUH_CT.dataset_id, "GRU"), (JNUH_XR.dataset_id, "GRU"), (JNUH_XR.dataset_id, "NCU")]


# -- joint review ---------------------------------------------------------------------


def test_approval_needs_both_boards(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    voted_at = T0 + timedelta(days=3)

    irb_events = board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.APPROVE, voted_at, conditions=("No re-identification",))
    drb_events = board_votes(
        app, rules, Region.DAEGU, Board.DRB, Vote.APPROVE, voted_at, conditions=("Federated training only", "no re-identification")
    )

    assert types(irb_events) == ["IrbDecisionRecorded"]
    assert types(drb_events) == ["DrbDecisionRecorded", "ApplicationApproved", "AccessGranted"]
    approved = drb_events[1]
    assert isinstance(approved, ApplicationApproved)
    assert approved.conditions == ("No re-identification", "Federated training only")
    assert approved.decision_ids == (irb_events[0].decision_id, drb_events[0].decision_id)  # type: ignore[attr-defined]
    assert approved.days_used == pytest.approx(1.0)
    assert app.status is ApplicationStatus.APPROVED


def test_grant_carries_conditions_period_and_holder(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(dataset_ids=(KNUH_CT.dataset_id, DSMC_LAB.dataset_id)))

    grants = [item for item in approve_everything(app, rules, T0 + timedelta(days=3)) if isinstance(item, AccessGranted)]

    assert [item.dataset_id for item in grants] == [KNUH_CT.dataset_id, DSMC_LAB.dataset_id]
    knuh = grants[0]
    assert knuh.holder_institution == "knuh"
    assert knuh.grantee_institution == "vendor-medvision"
    assert knuh.dataset_ids == (KNUH_CT.dataset_id, DSMC_LAB.dataset_id)
    assert knuh.starts_at == datetime(2027, 1, 1, tzinfo=KST)
    assert knuh.expires_at == datetime(2028, 1, 1, tzinfo=KST)
    assert knuh.conditions[:2] == ("IRB condition", "DRB condition")
    assert any(item.startswith("DUO PUB:") for item in knuh.conditions)
    assert not any(item.startswith("DUO") for item in grants[1].conditions)
    assert len({item.grant_id for item in grants}) == 2


def test_rejection_by_either_board_decides(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)

    events = board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.REJECT, T0 + timedelta(days=2))

    assert types(events) == ["DrbDecisionRecorded", "ApplicationRejected"]
    rejected = events[1]
    assert isinstance(rejected, ApplicationRejected)
    assert rejected.reasons == ("dg-drb-3 reason", "dg-drb-4 reason", "dg-drb-5 reason")
    assert rejected.decision_ids == (events[0].decision_id,)  # type: ignore[attr-defined]
    assert app.status is ApplicationStatus.REJECTED


def test_vote_after_decision_changes_nothing(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.REJECT, T0 + timedelta(days=2))
    before = copy.deepcopy(app)

    with pytest.raises(DecisionAlreadyMade, match="already rejected"):
        board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.APPROVE, T0 + timedelta(days=3), members=(3,))

    assert app == before


def test_revision_stops_clock_and_resubmission_opens_new_round(catalog: Catalog, rules: ReviewRules) -> None:
    app, started = submit(catalog, rules)
    original_due = started[1].due_at  # type: ignore[attr-defined]
    board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.APPROVE, T0 + timedelta(days=1))
    # Monday 7 December 09:00 KST the IRB requests revision; the applicant resubmits on Wednesday 09:00.
    revised_at = datetime(2026, 12, 7, 9, tzinfo=KST)

    events = board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.REVISE, revised_at)
    idle = app.check_clock(revised_at + timedelta(days=60), rules)
    resubmitted = app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=datetime(2026, 12, 9, 9, tzinfo=KST))

    assert types(events) == ["IrbDecisionRecorded", "RevisionRequested"]
    assert events[1].requested_by == "IRB"  # type: ignore[attr-defined]
    assert events[1].comments == ("dg-irb-3 reason", "dg-irb-4 reason", "dg-irb-5 reason")  # type: ignore[attr-defined]
    assert idle == []
    assert types(resubmitted) == ["ApplicationSubmitted", "ReviewStarted"]
    assert resubmitted[1].due_at == datetime(2027, 1, 7, 9, tzinfo=KST)  # type: ignore[attr-defined]
    assert original_due == datetime(2027, 1, 5, 9, tzinfo=KST)
    assert app.review_round == 2
    assert all(panel.decision is None and not panel.ballots for panel in app.panels)


def test_every_board_votes_again_after_revision(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.APPROVE, T0 + timedelta(days=1))
    board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.REVISE, T0 + timedelta(days=2))
    app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=T0 + timedelta(days=3))

    irb = board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.APPROVE, T0 + timedelta(days=4))
    drb = board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.APPROVE, T0 + timedelta(days=4))

    assert types(irb) == ["IrbDecisionRecorded"]
    assert types(drb)[:2] == ["DrbDecisionRecorded", "ApplicationApproved"]
    assert irb[0].decision_id != drb[0].decision_id  # type: ignore[attr-defined]


def test_vote_while_awaiting_revision_is_rejected(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.REVISE, T0 + timedelta(days=1))

    with pytest.raises(NotUnderReview, match="waits for the applicant"):
        board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.APPROVE, T0 + timedelta(days=2), members=(1,))


def test_member_of_applicant_institution_is_recused(catalog: Catalog, rules: ReviewRules) -> None:
    # A researcher of knuh applies for dsmc's data: the knuh members of both Daegu boards are recused.
    app, _ = submit(catalog, rules, complete_draft(applicant_institution="knuh", dataset_ids=(DSMC_LAB.dataset_id,)))
    before = copy.deepcopy(app)

    with pytest.raises(MemberRecused):
        app.record_vote("dg-irb-1", Board.IRB, Vote.APPROVE, rules=rules, now=T0 + timedelta(hours=1))
    with pytest.raises(MemberRecused):
        app.record_vote("dg-drb-2", Board.DRB, Vote.APPROVE, rules=rules, now=T0 + timedelta(hours=1))

    assert app == before


@pytest.mark.parametrize(
    ("member", "board"),
    [
        ("gj-irb-3", Board.IRB),  # IRB member of a region not involved
        ("dg-drb-3", Board.IRB),  # DRB member voting as IRB
        ("someone-else", Board.DRB),
    ],
)
def test_non_member_vote_is_rejected(catalog: Catalog, rules: ReviewRules, member: str, board: Board) -> None:
    app, _ = submit(catalog, rules)
    before = copy.deepcopy(app)

    with pytest.raises(NotBoardMember, match=member):
        app.record_vote(member, board, Vote.APPROVE, rules=rules, now=T0 + timedelta(hours=1))

    assert app == before


def test_duplicate_vote_is_rejected(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    app.record_vote("dg-irb-3", Board.IRB, Vote.APPROVE, rules=rules, now=T0 + timedelta(hours=1))

    with pytest.raises(DuplicateVote):
        app.record_vote("dg-irb-3", Board.IRB, Vote.APPROVE, rules=rules, now=T0 + timedelta(hours=2))


# -- federation -----------------------------------------------------------------------


def test_datasets_of_other_regions_add_their_boards(catalog: Catalog, rules: ReviewRules) -> None:
    draft = complete_draft(dataset_ids=(KNUH_CT.dataset_id, JNUH_XR.dataset_id, CNUH_MR.dataset_id))

    app, events = submit(catalog, rules, draft)

    assert events[0].regions_involved == (Region.DAEGU, Region.DAEJEON, Region.GWANGJU)  # type: ignore[attr-defined]
    assert [(panel.seat.region, panel.seat.board) for panel in app.panels] == [
        (region, board) for region in (Region.DAEGU, Region.DAEJEON, Region.GWANGJU) for board in (Board.IRB, Board.DRB)
    ]


def test_home_region_follows_applicant_institution(catalog: Catalog, rules: ReviewRules) -> None:
    app, events = submit(catalog, rules, complete_draft(applicant_institution="vendor-gwangai"))

    assert app.home_region is Region.GWANGJU
    assert events[0].regions_involved == (Region.GWANGJU, Region.DAEGU)  # type: ignore[attr-defined]


def test_approval_needs_every_region(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(dataset_ids=(KNUH_CT.dataset_id, CNUH_MR.dataset_id)))
    voted_at = T0 + timedelta(days=2)

    home = board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.APPROVE, voted_at)
    home += board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.APPROVE, voted_at)
    remote = board_votes(app, rules, Region.DAEJEON, Board.IRB, Vote.APPROVE, voted_at)
    last = board_votes(app, rules, Region.DAEJEON, Board.DRB, Vote.APPROVE, voted_at)

    assert "ApplicationApproved" not in types(home + remote)
    assert types(last) == ["DrbDecisionRecorded", "ApplicationApproved", "AccessGranted", "AccessGranted"]
    assert last[0].region is Region.DAEJEON  # type: ignore[attr-defined]
    assert [item.region for item in last if isinstance(item, AccessGranted)] == [Region.DAEGU, Region.DAEJEON]


def test_remote_region_rejection_rejects(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(dataset_ids=(KNUH_CT.dataset_id, CNUH_MR.dataset_id)))
    board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.APPROVE, T0 + timedelta(days=1))

    events = board_votes(app, rules, Region.DAEJEON, Board.DRB, Vote.REJECT, T0 + timedelta(days=2))

    assert types(events) == ["DrbDecisionRecorded", "ApplicationRejected"]
    assert events[0].region is Region.DAEJEON  # type: ignore[attr-defined]


# -- the SLA clock --------------------------------------------------------------------


def test_warnings_and_breach_fire_once_each(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    fired: list[EventPayload] = []

    for day in range(0, 45):
        for hour in (0, 6, 12, 18):
            fired += app.check_clock(T0 + timedelta(days=day, hours=hour), rules)

    assert types(fired) == ["ReviewSlaWarning"] * 3 + ["ReviewSlaBreached"]
    assert [item.threshold_percent for item in fired[:3]] == [50, 75, 90]  # type: ignore[attr-defined]
    breach = fired[3]
    assert isinstance(breach, ReviewSlaBreached)
    assert breach.due_at == datetime(2027, 1, 5, 9, tzinfo=KST)
    assert breach.region is Region.DAEGU
    assert breach.council_chair_region is Region.DAEJEON  # the 2027 term
    assert breach.breached_at == datetime(2027, 1, 5, 9, tzinfo=KST)


def test_warning_reports_days_used_and_left(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)

    warning = app.check_clock(datetime(2026, 12, 29, 12, tzinfo=KST), rules)

    assert types(warning) == ["ReviewSlaWarning", "ReviewSlaWarning"]
    assert isinstance(warning[1], ReviewSlaWarning)
    assert warning[1].threshold_percent == 75
    assert warning[1].days_used == pytest.approx(16.125)
    assert warning[1].days_left == pytest.approx(3.875)


def test_warning_due_before_vote_is_emitted_first(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    late = datetime(2026, 12, 21, 10, tzinfo=KST)  # just past 50 percent

    events = board_votes(app, rules, Region.DAEGU, Board.DRB, Vote.REJECT, late)

    assert types(events) == ["ReviewSlaWarning", "DrbDecisionRecorded", "ApplicationRejected"]


def test_no_alert_after_decision(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    approve_everything(app, rules, T0 + timedelta(days=1))

    assert app.check_clock(T0 + timedelta(days=90), rules) == []


def test_calendar_day_rules_shorten_the_window(catalog: Catalog, governance) -> None:  # type: ignore[no-untyped-def]
    calendar_rules = ReviewRules(governance=governance, calendar=SlaCalendar(DayCount.CALENDAR), window_days=20)

    _, events = submit(catalog, calendar_rules)

    assert events[1].due_at == datetime(2026, 12, 24, 9, tzinfo=KST)  # type: ignore[attr-defined]
    assert events[1].calendar == "calendar"  # type: ignore[attr-defined]


def test_sla_status_for_queue(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)

    status = app.sla_status(datetime(2026, 12, 8, 9, tzinfo=KST), rules)

    assert status is not None
    assert status.running
    assert status.days_used == pytest.approx(2.0)
    assert status.days_left == pytest.approx(18.0)
    assert status.due_at == datetime(2027, 1, 5, 9, tzinfo=KST)


# -- grants ---------------------------------------------------------------------------


def approved_application(catalog: Catalog, rules: ReviewRules) -> Application:
    app, _ = submit(catalog, rules, complete_draft(dataset_ids=(KNUH_CT.dataset_id, CNUH_MR.dataset_id)))
    approve_everything(app, rules, T0 + timedelta(days=2))
    return app


def test_grants_expire_once_at_expiry(catalog: Catalog, rules: ReviewRules) -> None:
    app = approved_application(catalog, rules)
    expiry = datetime(2028, 1, 1, tzinfo=KST)

    before = app.expire_grants(expiry - timedelta(seconds=1))
    at_expiry = app.expire_grants(expiry)
    after = app.expire_grants(expiry + timedelta(days=1))

    assert before == []
    assert after == []
    assert types(at_expiry) == ["AccessExpired", "AccessExpired"]
    assert all(isinstance(item, AccessExpired) and item.expired_at == expiry for item in at_expiry)


def test_drb_of_grant_region_revokes(catalog: Catalog, rules: ReviewRules) -> None:
    app = approved_application(catalog, rules)
    grant_id = next(grant.grant_id for grant in app.grants.values() if grant.region is Region.DAEJEON)
    revoked_at = datetime(2027, 3, 1, tzinfo=UTC)

    events = app.revoke_grant(grant_id, "dj-drb-1", "Breach of conditions", rules=rules, now=revoked_at)

    assert len(events) == 1 and isinstance(events[0], AccessRevoked)
    assert (events[0].grant_id, events[0].reason, events[0].revoked_at) == (grant_id, "Breach of conditions", revoked_at)
    assert app.expire_grants(datetime(2028, 6, 1, tzinfo=UTC)) == [
        AccessExpired(application_id=app.application_id, grant_id=other, expired_at=datetime(2028, 1, 1, tzinfo=KST))
        for other in app.grants
        if other != grant_id
    ]


@pytest.mark.parametrize(
    ("member", "reason", "error"),
    [
        ("dg-drb-1", "Breach", NotBoardMember),  # DRB of another region
        ("dj-irb-1", "Breach", NotBoardMember),  # IRB member
        ("dj-drb-1", "   ", InvalidVote),
    ],
)
def test_invalid_revocation_changes_nothing(
    catalog: Catalog, rules: ReviewRules, member: str, reason: str, error: type[ReviewError]
) -> None:
    app = approved_application(catalog, rules)
    grant_id = next(grant.grant_id for grant in app.grants.values() if grant.region is Region.DAEJEON)
    before = copy.deepcopy(app)

    with pytest.raises(error):
        app.revoke_grant(grant_id, member, reason, rules=rules, now=datetime(2027, 3, 1, tzinfo=UTC))

    assert app == before


def test_revoking_twice_or_unknown_grant_is_rejected(catalog: Catalog, rules: ReviewRules) -> None:
    app = approved_application(catalog, rules)
    grant_id = next(grant.grant_id for grant in app.grants.values() if grant.region is Region.DAEGU)
    app.revoke_grant(grant_id, "dg-drb-1", "Breach", rules=rules, now=datetime(2027, 3, 1, tzinfo=UTC))

    with pytest.raises(GrantNotActive, match="already revoked"):
        app.revoke_grant(grant_id, "dg-drb-1", "Again", rules=rules, now=datetime(2027, 3, 2, tzinfo=UTC))
    with pytest.raises(GrantNotFound):
        app.revoke_grant("grant-unknown", "dg-drb-1", "Breach", rules=rules, now=datetime(2027, 3, 2, tzinfo=UTC))


def test_approval_after_requested_end_issues_expired_grant(catalog: Catalog, rules: ReviewRules) -> None:
    draft = complete_draft(requested_start=date(2026, 12, 4), requested_end=date(2026, 12, 10))
    app, _ = submit(catalog, rules, draft)

    events = approve_everything(app, rules, datetime(2026, 12, 14, 9, tzinfo=KST))

    granted = next(item for item in events if isinstance(item, AccessGranted))
    assert granted.starts_at == granted.expires_at == datetime(2026, 12, 11, tzinfo=KST)
    assert types(events)[-2:] == ["AccessGranted", "AccessExpired"]


# -- commands in the wrong state ------------------------------------------------------


def test_resubmission_during_review_is_rejected(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)

    with pytest.raises(InvalidTransition, match="only an application awaiting revision"):
        app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=T0 + timedelta(days=1))


def test_resubmission_by_other_institution_is_rejected(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(title=None))
    before = copy.deepcopy(app)

    with pytest.raises(WrongApplicant, match="belongs to vendor-medvision"):
        app.resubmit(complete_draft(applicant_institution="vendor-gwangai"), catalog=catalog, rules=rules, now=T0)

    assert app == before


def test_time_in_states_over_lifecycle(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(title=None))
    app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=T0 + timedelta(days=2))
    approve_everything(app, rules, T0 + timedelta(days=7))

    totals = app.timeline.time_in_states(T0 + timedelta(days=30))

    assert totals == {
        ApplicationStatus.AWAITING_REVISION: timedelta(days=2),
        ApplicationStatus.UNDER_REVIEW: timedelta(days=5),
    }


# -- contract compatibility -----------------------------------------------------------


def test_every_event_fits_the_published_contract(catalog: Catalog, rules: ReviewRules) -> None:
    app, events = submit(catalog, rules, complete_draft(title=None))
    events += app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=T0 + timedelta(days=1))
    events += app.check_clock(T0 + timedelta(days=40), rules)
    events += approve_everything(app, rules, T0 + timedelta(days=41))
    grant_id = next(iter(app.grants))
    events += app.revoke_grant(grant_id, "dg-drb-1", "Breach", rules=rules, now=T0 + timedelta(days=50))

    for event in events:
        envelope = Envelope.from_json(wrap(event, source="medgov/review", region=app.home_region, time=T0).to_json())

        assert parse_payload(envelope) == event
        assert envelope.subject == app.application_id

    assert set(types(events)) >= {
        "RevisionRequested",
        "ApplicationSubmitted",
        "ReviewStarted",
        "ReviewSlaWarning",
        "ReviewSlaBreached",
        "IrbDecisionRecorded",
        "DrbDecisionRecorded",
        "ApplicationApproved",
        "AccessGranted",
        "AccessRevoked",
    }


def test_obligations_reach_the_grant_but_conflicts_do_not(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(dataset_ids=(JNUH_XR.dataset_id,)))
    assert app.purpose_report is not None

    kinds = {item.kind for item in app.purpose_report.findings}
    events = approve_everything(app, rules, T0 + timedelta(days=1))
    grant = next(item for item in events if isinstance(item, AccessGranted))

    assert kinds == {FindingKind.CONFLICT}
    assert not any(item.startswith("DUO") for item in grant.conditions)


def test_resident_number_in_revocation_reason_is_rejected(catalog: Catalog, rules: ReviewRules) -> None:
    app = approved_application(catalog, rules)
    grant_id = next(iter(app.grants))
    before = copy.deepcopy(app)

    with pytest.raises(PersonalDataInText):
        app.revoke_grant(grant_id, "dg-drb-1", "seen 900101-1234567", rules=rules, now=T0 + timedelta(days=9))

    assert app == before


def test_next_clock_check_follows_alerts(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    first = app.next_clock_check_at(rules)
    app.check_clock(datetime(2026, 12, 21, 9, tzinfo=KST), rules)

    assert first == datetime(2026, 12, 18, 9, tzinfo=KST)
    assert app.next_clock_check_at(rules) == datetime(2026, 12, 28, 9, tzinfo=KST)


def test_decided_application_needs_no_clock_check(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    approve_everything(app, rules, T0 + timedelta(days=3))

    assert app.next_clock_check_at(rules) is None
    assert app.days_used_at_decision(rules) == pytest.approx(1.0)


def test_withdrawn_dataset_gets_no_grant(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules, complete_draft(dataset_ids=(KNUH_CT.dataset_id, DSMC_LAB.dataset_id)))

    noted = app.withdraw_dataset(DSMC_LAB.dataset_id)
    unrelated = app.withdraw_dataset(CNUH_MR.dataset_id)
    events = approve_everything(app, rules, T0 + timedelta(days=1))

    assert noted is True
    assert unrelated is False
    assert [item.dataset_id for item in events if isinstance(item, AccessGranted)] == [KNUH_CT.dataset_id]


def test_withdrawal_after_decision_changes_nothing(catalog: Catalog, rules: ReviewRules) -> None:
    app = approved_application(catalog, rules)
    before = copy.deepcopy(app)

    assert app.withdraw_dataset(KNUH_CT.dataset_id) is False
    assert app == before


def test_earlier_rounds_keep_their_ballots(catalog: Catalog, rules: ReviewRules) -> None:
    app, _ = submit(catalog, rules)
    board_votes(app, rules, Region.DAEGU, Board.IRB, Vote.REVISE, T0 + timedelta(days=1))
    app.resubmit(complete_draft(), catalog=catalog, rules=rules, now=T0 + timedelta(days=2))

    (first_round,) = app.earlier_panels

    assert [len(panel.ballots) for panel in first_round] == [3, 0]
    assert first_round[0].decision is not None
    assert first_round[0].decision.outcome is Vote.REVISE
