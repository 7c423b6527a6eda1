"""Boards, their members and quorum; recusal; vote tallying; the joint decision across boards and regions.

Every region involved in an application sends its IRB and its DRB, and each
(region, board) pair reviews as one panel. A panel decides as soon as one of
these holds, checked after every ballot in the order cast:

1. one outcome has `quorum` votes: that outcome wins;
2. approval can no longer reach quorum, because too few eligible members
   have not voted. The panel then rejects if reject votes outnumber revise
   votes, and requests revision otherwise. A tie favours revision, which lets
   the applicant fix the application instead of starting over.

The application is approved when every panel approves, rejected as soon as one
panel rejects, and sent back for revision as soon as one panel requests it.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from medgov_shared.contracts.types import Board, Region, Vote

from medgov_review.domain.errors import (
    DecisionAlreadyMade,
    DuplicateVote,
    InvalidVote,
    MemberRecused,
    NotBoardMember,
    PersonalDataInText,
    reject_personal_data_in,
)


@dataclass(frozen=True)
class BoardMember:
    member_id: str
    name_ko: str
    name_en: str
    # None for an independent member who belongs to no registered institution.
    institution_id: str | None


@dataclass(frozen=True)
class BoardSeat:
    """One region's IRB or DRB: its members and the votes a decision needs."""

    region: Region
    board: Board
    quorum: int
    members: tuple[BoardMember, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.quorum <= len(self.members):
            raise ValueError(
                f"{self.region} {self.board} quorum {self.quorum} must be between 1 and its "
                f"{len(self.members)} members"
            )

    def member(self, member_id: str) -> BoardMember | None:
        return next((item for item in self.members if item.member_id == member_id), None)

    def recused_for(self, applicant_institution: str) -> frozenset[str]:
        """Return the ids of members affiliated with the applicant's institution."""
        return frozenset(
            item.member_id for item in self.members if item.institution_id == applicant_institution
        )


@dataclass(frozen=True)
class BoardRoster:
    """Every board seat in every region, loaded from boards.yaml."""

    seats: tuple[BoardSeat, ...]

    def seat(self, region: Region, board: Board) -> BoardSeat:
        for item in self.seats:
            if item.region == region and item.board == board:
                return item
        raise LookupError(f"no {board} is configured for region {region}")

    def seats_of(self, member_id: str) -> tuple[BoardSeat, ...]:
        return tuple(item for item in self.seats if item.member(member_id) is not None)


def merge_texts(groups: Iterable[Iterable[str]]) -> tuple[str, ...]:
    """Merge conditions or reasons in order, dropping blanks and repeats that differ only in case or spacing."""
    merged: dict[str, str] = {}
    for group in groups:
        for text in group:
            tidy = " ".join(text.split())
            if tidy and tidy.casefold() not in merged:
                merged[tidy.casefold()] = tidy
    return tuple(merged.values())


@dataclass(frozen=True)
class Ballot:
    member_id: str
    vote: Vote
    comments: tuple[str, ...]
    conditions: tuple[str, ...]
    cast_at: datetime


def tally(ballots: Sequence[Ballot], eligible: int, quorum: int) -> tuple[Vote | None, int]:
    """Return the panel outcome and how many ballots it took, or (None, len(ballots)) while undecided."""
    counts: Counter[Vote] = Counter()
    for cast, ballot in enumerate(ballots, start=1):
        counts[ballot.vote] += 1
        outcome = _outcome(counts, eligible - cast, quorum)
        if outcome is not None:
            return outcome, cast
    return None, len(ballots)


def _outcome(counts: Counter[Vote], outstanding: int, quorum: int) -> Vote | None:
    for vote in (Vote.APPROVE, Vote.REJECT, Vote.REVISE):
        if counts[vote] >= quorum:
            return vote
    if counts[Vote.APPROVE] + outstanding >= quorum:
        return None
    return Vote.REJECT if counts[Vote.REJECT] > counts[Vote.REVISE] else Vote.REVISE


@dataclass(frozen=True)
class PanelDecision:
    region: Region
    board: Board
    outcome: Vote
    counts: dict[Vote, int]
    quorum: int
    conditions: tuple[str, ...]
    reasons: tuple[str, ...]
    decided_at: datetime


@dataclass
class Panel:
    """One board of one region reviewing one round of an application."""

    seat: BoardSeat
    recused: frozenset[str]
    ballots: list[Ballot] = field(default_factory=list)
    decision: PanelDecision | None = None

    @classmethod
    def open(cls, seat: BoardSeat, applicant_institution: str) -> "Panel":
        recused = seat.recused_for(applicant_institution)
        if len(seat.members) - len(recused) < seat.quorum:
            raise ValueError(
                f"{seat.region} {seat.board} cannot reach quorum {seat.quorum} after recusing the "
                f"members of {applicant_institution}; fix boards.yaml"
            )
        return cls(seat=seat, recused=recused)

    @property
    def eligible(self) -> int:
        return len(self.seat.members) - len(self.recused)

    def cast(self, ballot: Ballot) -> PanelDecision | None:
        """Record a ballot and return the panel's decision if this ballot settles it.

        Raises NotBoardMember, MemberRecused, DecisionAlreadyMade, DuplicateVote
        or InvalidVote; a rejected ballot leaves the panel unchanged.
        """
        self.check(ballot)
        self.ballots.append(ballot)
        outcome, _ = tally(self.ballots, self.eligible, self.seat.quorum)
        if outcome is not None:
            self.decision = self._decide(outcome, ballot.cast_at)
        return self.decision

    def check(self, ballot: Ballot) -> None:
        """Raise the error `cast` would raise for this ballot, without recording it."""
        where = f"{self.seat.region} {self.seat.board}"
        if self.seat.member(ballot.member_id) is None:
            raise NotBoardMember(f"{ballot.member_id} is not a member of the {where}", member_id=ballot.member_id)
        if ballot.member_id in self.recused:
            raise MemberRecused(
                f"{ballot.member_id} is recused from this application because they are affiliated "
                "with the applicant's institution",
                member_id=ballot.member_id,
            )
        if self.decision is not None:
            raise DecisionAlreadyMade(
                f"the {where} already decided '{self.decision.outcome}'; no further votes are taken",
                member_id=ballot.member_id,
            )
        if any(item.member_id == ballot.member_id for item in self.ballots):
            raise DuplicateVote(f"{ballot.member_id} already voted in this round", member_id=ballot.member_id)
        if ballot.vote is not Vote.APPROVE and not merge_texts([ballot.comments]):
            raise InvalidVote(f"a '{ballot.vote}' vote needs at least one comment giving the reason")
        try:
            reject_personal_data_in({"comments": ballot.comments, "conditions": ballot.conditions})
        except PersonalDataInText as error:
            raise InvalidVote(error.message) from None

    def _decide(self, outcome: Vote, decided_at: datetime) -> PanelDecision:
        counts = Counter(item.vote for item in self.ballots)
        backing = [item for item in self.ballots if item.vote is outcome]
        return PanelDecision(
            region=self.seat.region,
            board=self.seat.board,
            outcome=outcome,
            counts={vote: counts[vote] for vote in Vote},
            quorum=self.seat.quorum,
            conditions=merge_texts(item.conditions for item in backing) if outcome is Vote.APPROVE else (),
            reasons=merge_texts(item.comments for item in backing) if outcome is not Vote.APPROVE else (),
            decided_at=decided_at,
        )


class JointOutcome(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVISION = "revision"


def joint_outcome(panels: Iterable[Panel]) -> JointOutcome:
    """Combine the panels of every region: any reject rejects, any revise sends back, all approve approves."""
    decisions = [item.decision for item in panels]
    outcomes = {item.outcome for item in decisions if item is not None}
    if Vote.REJECT in outcomes:
        return JointOutcome.REJECTED
    if Vote.REVISE in outcomes:
        return JointOutcome.REVISION
    if decisions and all(item is not None for item in decisions):
        return JointOutcome.APPROVED
    return JointOutcome.PENDING
