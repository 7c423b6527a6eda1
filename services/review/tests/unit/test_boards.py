"""Boards: quorum and tallying, recusal, ballot checks, merged conditions, the joint outcome."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_shared.contracts.types import Board, Region, Vote

from medgov_review.domain.boards import (
    Ballot,
    BoardMember,
    BoardSeat,
    JointOutcome,
    Panel,
    joint_outcome,
    merge_texts,
    tally,
)
from medgov_review.domain.errors import DecisionAlreadyMade, DuplicateVote, InvalidVote, MemberRecused, NotBoardMember
from medgov_review.domain.governance import Governance

from .conftest import T0

A, R, V = Vote.APPROVE, Vote.REJECT, Vote.REVISE


def ballots(*votes: Vote) -> list[Ballot]:
    return [
        Ballot(f"m{index}", vote, ("reason",) if vote is not A else (), (), T0 + timedelta(hours=index))
        for index, vote in enumerate(votes)
    ]


@pytest.mark.parametrize(
    ("votes", "eligible", "quorum", "outcome", "used"),
    [
        ((A, A), 5, 3, None, 2),
        ((A, A, A), 5, 3, A, 3),
        ((A, R, A, A), 5, 3, A, 4),
        ((R, R, R), 5, 3, R, 3),
        ((V, V, V), 5, 3, V, 3),
        # Approval can no longer reach 3: reject outnumbers revise.
        ((R, R, V), 5, 3, R, 3),
        ((V, V, R), 5, 3, V, 3),
        # A tie between reject and revise sends the application back.
        ((R, V, A, A, R, V), 6, 3, V, 6),
        ((R, V, A, R, V), 5, 3, R, 4),
        # With four eligible after a recusal, two dissents settle it.
        ((R, V), 4, 3, V, 2),
        # The first outcome to reach quorum wins; later ballots change nothing.
        ((A, A, A, R, R, R), 7, 3, A, 3),
        ((R, R, R, A, A, A), 7, 3, R, 3),
        ((), 5, 3, None, 0),
    ],
)
def test_tally(votes: tuple[Vote, ...], eligible: int, quorum: int, outcome: Vote | None, used: int) -> None:
    assert tally(ballots(*votes), eligible, quorum) == (outcome, used)


@given(st.lists(st.sampled_from(Vote), max_size=9), st.integers(1, 9), st.integers(1, 9))
def test_tally_properties(votes: list[Vote], eligible: int, quorum: int) -> None:
    eligible = max(eligible, quorum, len(votes))
    cast = ballots(*votes)

    outcome, used = tally(cast, eligible, quorum)

    if outcome is A:
        assert sum(1 for item in cast[:used] if item.vote is A) >= quorum
    if outcome is not None:
        assert tally(cast[:used], eligible, quorum) == (outcome, used)
        assert tally(cast[: used - 1], eligible, quorum)[0] is None
    if len(votes) == eligible:
        assert outcome is not None


def seat(quorum: int = 3, institutions: tuple[str | None, ...] = ("knuh", "knuh", "dsmc", None, None)) -> BoardSeat:
    members = tuple(
        BoardMember(f"m{index}", f"위원 {index}", f"Member {index}", institution)
        for index, institution in enumerate(institutions)
    )
    return BoardSeat(Region.DAEGU, Board.IRB, quorum, members)


def vote(member: str, choice: Vote, *, comments: tuple[str, ...] = (), conditions: tuple[str, ...] = ()) -> Ballot:
    return Ballot(member, choice, comments, conditions, T0)


def test_members_of_applicant_institution_are_recused() -> None:
    panel = Panel.open(seat(), "knuh")

    assert panel.recused == {"m0", "m1"}
    assert panel.eligible == 3


def test_recused_vote_is_rejected_and_not_recorded() -> None:
    panel = Panel.open(seat(), "knuh")

    with pytest.raises(MemberRecused, match="m0"):
        panel.cast(vote("m0", A))

    assert panel.ballots == []


def test_unreachable_quorum_is_rejected() -> None:
    with pytest.raises(ValueError, match="cannot reach quorum"):
        Panel.open(seat(quorum=4), "knuh")


def test_stranger_vote_is_rejected() -> None:
    with pytest.raises(NotBoardMember, match="dg-irb-9"):
        Panel.open(seat(), "vendor-medvision").cast(vote("dg-irb-9", A))


def test_second_vote_of_member_is_rejected() -> None:
    panel = Panel.open(seat(), "vendor-medvision")
    panel.cast(vote("m0", A))

    with pytest.raises(DuplicateVote):
        panel.cast(vote("m0", R, comments=("changed my mind",)))

    assert len(panel.ballots) == 1


def test_vote_after_panel_decision_is_rejected() -> None:
    panel = Panel.open(seat(), "vendor-medvision")
    for member in ("m0", "m1", "m2"):
        panel.cast(vote(member, A))

    with pytest.raises(DecisionAlreadyMade):
        panel.cast(vote("m3", A))

    assert len(panel.ballots) == 3


def test_reject_without_reason_is_invalid() -> None:
    panel = Panel.open(seat(), "vendor-medvision")

    with pytest.raises(InvalidVote, match="reason"):
        panel.cast(vote("m0", R, comments=("  ",)))


def test_approval_merges_conditions_of_approving_members() -> None:
    panel = Panel.open(seat(), "vendor-medvision")
    panel.cast(vote("m0", A, conditions=("Federated training only", "No re-identification")))
    panel.cast(vote("m1", R, comments=("too broad",), conditions=("Ignored condition",)))
    panel.cast(vote("m2", A, conditions=("federated  training ONLY",)))

    decision = panel.cast(vote("m3", A, conditions=("Annual audit",)))

    assert decision is not None
    assert decision.outcome is A
    assert decision.conditions == ("Federated training only", "No re-identification", "Annual audit")
    assert decision.reasons == ()
    assert decision.counts == {A: 3, R: 1, V: 0}


def test_rejection_carries_reasons_of_rejecting_members() -> None:
    panel = Panel.open(seat(), "vendor-medvision")
    panel.cast(vote("m0", R, comments=("Purpose not covered by consent",)))
    panel.cast(vote("m1", A))
    panel.cast(vote("m2", R, comments=("Re-identification risk",)))

    decision = panel.cast(vote("m3", R, comments=("purpose not covered by consent",)))

    assert decision is not None
    assert decision.outcome is R
    assert decision.reasons == ("Purpose not covered by consent", "Re-identification risk")


def test_merge_texts_drops_blanks_and_repeats() -> None:
    assert merge_texts([["a  b", ""], [" A B ", "c"], ["  "]]) == ("a b", "c")


def decided(outcome: Vote | None) -> Panel:
    panel = Panel.open(seat(quorum=1), "vendor-medvision")
    if outcome is not None:
        panel.cast(vote("m0", outcome, comments=("reason",)))
    return panel


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ((A, A), JointOutcome.APPROVED),
        ((A, None), JointOutcome.PENDING),
        ((None, R), JointOutcome.REJECTED),
        ((A, V), JointOutcome.REVISION),
        ((R, V), JointOutcome.REJECTED),
        ((A, A, A, None), JointOutcome.PENDING),
        ((A, A, A, A), JointOutcome.APPROVED),
        ((), JointOutcome.PENDING),
    ],
)
def test_joint_outcome(outcomes: tuple[Vote | None, ...], expected: JointOutcome) -> None:
    assert joint_outcome([decided(item) for item in outcomes]) is expected


def test_packaged_roster_finds_member_seats(governance: Governance) -> None:
    seats = governance.roster.seats_of("dj-drb-3")

    assert [(item.region, item.board) for item in seats] == [(Region.DAEJEON, Board.DRB)]
    assert governance.roster.seats_of("nobody") == ()


def test_quorum_outside_member_count_is_rejected() -> None:
    with pytest.raises(ValueError, match="quorum 6 must be between 1 and its 5 members"):
        seat(quorum=6)


def test_resident_number_in_comment_is_rejected() -> None:
    panel = Panel.open(seat(), "vendor-medvision")

    with pytest.raises(InvalidVote, match="comments"):
        panel.cast(vote("m0", R, comments=("patient 900101-1234567 is in the cohort",)))

    assert panel.ballots == []
