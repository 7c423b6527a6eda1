"""Property-based tests of the aggregate over random sequences of votes, clock checks and resubmissions."""

import copy
from collections.abc import Callable
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.review import (
    AccessGranted,
    ApplicationApproved,
    ApplicationRejected,
    DrbDecisionRecorded,
    IrbDecisionRecorded,
    ReviewSlaBreached,
    ReviewSlaWarning,
    ReviewStarted,
)
from medgov_shared.contracts.types import Board, Region, Vote

from medgov_review.domain.aggregate import Application, ReviewRules
from medgov_review.domain.errors import ReviewError
from medgov_review.domain.governance import packaged_governance

from .conftest import CNUH_MR, DSMC_LAB, KNUH_CT, T0, complete_draft

RULES = ReviewRules(governance=packaged_governance())
CATALOG = {item.dataset_id: item for item in (KNUH_CT, DSMC_LAB, CNUH_MR)}
# Members of the regions involved, plus one of a region never involved and a stranger.
MEMBERS = [
    (f"{prefix}-{board.value.lower()}-{number}", board)
    for prefix in ("dg", "dj")
    for board in (Board.IRB, Board.DRB)
    for number in range(1, 6)
] + [("gj-irb-3", Board.IRB), ("stranger", Board.IRB)]
# Approvals are weighted so that a fair share of runs reaches an approval.
VOTES = [Vote.APPROVE] * 5 + [Vote.REJECT, Vote.REVISE]

votes = st.tuples(st.just("vote"), st.sampled_from(MEMBERS), st.sampled_from(VOTES))
# Three approvals from members never recused for the applicants below settle a board quickly.
board_approvals = st.tuples(
    st.just("board_approves"), st.sampled_from(["dg", "dj"]), st.sampled_from([Board.IRB, Board.DRB])
)
ticks = st.tuples(st.just("tick"))
resubmissions = st.tuples(st.just("resubmit"), st.booleans())
actions = st.lists(st.tuples(st.integers(0, 30), st.one_of(votes, votes, votes, board_approvals, ticks, resubmissions)), min_size=30, max_size=80)


def commands(application: Application, action: tuple, now) -> list[Callable[[], list[EventPayload]]]:  # type: ignore[no-untyped-def,type-arg]
    """Turn one generated action into the atomic commands it stands for."""

    def vote(member: str, board: Board, choice: Vote) -> Callable[[], list[EventPayload]]:
        comments = () if choice is Vote.APPROVE else ("reason",)
        return lambda: application.record_vote(member, board, choice, comments=comments, rules=RULES, now=now)

    match action:
        case ("vote", (member, board), choice):
            return [vote(member, board, choice)]
        case ("board_approves", prefix, board):
            return [vote(f"{prefix}-{board.value.lower()}-{number}", board, Vote.APPROVE) for number in (3, 4, 5)]
        case ("tick",):
            return [lambda: application.check_clock(now, RULES) + application.expire_grants(now)]
        case ("resubmit", complete):
            draft = complete_draft(dataset_ids=application.draft.dataset_ids) if complete else complete_draft(title=None)
            return [lambda: application.resubmit(draft, catalog=CATALOG, rules=RULES, now=now)]
    raise AssertionError(f"unknown action {action}")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([(KNUH_CT.dataset_id,), (KNUH_CT.dataset_id, CNUH_MR.dataset_id)]),
    st.sampled_from(["vendor-medvision", "knuh", "cnuh"]),
    actions,
)
def test_lifecycle_invariants(dataset_ids: tuple[str, ...], applicant: str, steps: list) -> None:  # type: ignore[type-arg]
    draft = complete_draft(dataset_ids=dataset_ids, applicant_institution=applicant)
    application, events = Application.submit(
        "app-prop", draft, catalog=CATALOG, rules=RULES, received_in=Region.DAEGU, now=T0
    )
    now = T0
    for hours, action in steps:
        now += timedelta(hours=hours)
        for command in commands(application, action, now):
            before = copy.deepcopy(application)
            try:
                events += command()
            except ReviewError:
                assert application == before, f"{action} failed but changed the application"

    event(f"final status {application.status}")
    event(f"breached {any(isinstance(item, ReviewSlaBreached) for item in events)}")
    assert_alerts_fire_once_and_before_decision(events)
    assert_decisions_follow_the_rules(events, application)


def assert_alerts_fire_once_and_before_decision(events: list[EventPayload]) -> None:
    alerts = [
        item.threshold_percent if isinstance(item, ReviewSlaWarning) else 100
        for item in events
        if isinstance(item, (ReviewSlaWarning, ReviewSlaBreached))
    ]
    assert alerts == sorted(set(alerts))
    final = [index for index, item in enumerate(events) if isinstance(item, (ApplicationApproved, ApplicationRejected))]
    assert len(final) <= 1
    if final:
        assert not any(isinstance(item, (ReviewSlaWarning, ReviewSlaBreached)) for item in events[final[0] :])


def assert_decisions_follow_the_rules(events: list[EventPayload], application: Application) -> None:
    # The initial draft is complete, so at least one round started.
    last_round = max(index for index, item in enumerate(events) if isinstance(item, ReviewStarted))
    round_decisions = [item for item in events[last_round:] if isinstance(item, (IrbDecisionRecorded, DrbDecisionRecorded))]
    approved = [item for item in events if isinstance(item, ApplicationApproved)]
    if approved:
        assert len(round_decisions) == len(application.panels)
        assert all(item.decision is Vote.APPROVE for item in round_decisions)
        assert set(approved[0].decision_ids) == {item.decision_id for item in round_decisions}
        grants = [item for item in events if isinstance(item, AccessGranted)]
        assert [item.dataset_id for item in grants] == list(application.draft.dataset_ids)
    rejected = [item for item in events if isinstance(item, ApplicationRejected)]
    if rejected:
        assert round_decisions[-1].decision is Vote.REJECT
        assert rejected[0].decision_ids == (round_decisions[-1].decision_id,)
    for item in round_decisions:
        votes_for_outcome = {Vote.APPROVE: item.votes_approve, Vote.REJECT: item.votes_reject, Vote.REVISE: item.votes_revise}
        if item.decision is Vote.APPROVE:
            assert votes_for_outcome[Vote.APPROVE] >= item.quorum
