"""The application state machine and the time spent in each state."""

from datetime import timedelta

import pytest

from medgov_review.domain.application import ALLOWED_TRANSITIONS, ApplicationStatus, StatusTimeline
from medgov_review.domain.errors import InvalidTransition

from .conftest import T0

S = ApplicationStatus


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ((S.UNDER_REVIEW, S.APPROVED), True),
        ((S.AWAITING_REVISION, S.AWAITING_REVISION, S.UNDER_REVIEW, S.AWAITING_REVISION, S.UNDER_REVIEW, S.REJECTED), True),
        ((S.APPROVED,), False),
        ((S.AWAITING_REVISION, S.APPROVED), False),
        ((S.UNDER_REVIEW, S.UNDER_REVIEW), False),
        ((S.UNDER_REVIEW, S.REJECTED, S.UNDER_REVIEW), False),
        ((S.UNDER_REVIEW, S.APPROVED, S.AWAITING_REVISION), False),
    ],
)
def test_transitions(path: tuple[ApplicationStatus, ...], allowed: bool) -> None:
    timeline = StatusTimeline()

    def walk() -> None:
        for index, status in enumerate(path):
            timeline.enter(status, T0 + timedelta(hours=index))

    if allowed:
        walk()
        assert timeline.current is path[-1]
    else:
        with pytest.raises(InvalidTransition):
            walk()


def test_terminal_states_allow_nothing() -> None:
    assert ALLOWED_TRANSITIONS[S.APPROVED] == ALLOWED_TRANSITIONS[S.REJECTED] == frozenset()


def test_failed_transition_leaves_timeline_unchanged() -> None:
    timeline = StatusTimeline()
    timeline.enter(S.UNDER_REVIEW, T0)

    with pytest.raises(InvalidTransition, match="from under_review to under_review"):
        timeline.enter(S.UNDER_REVIEW, T0 + timedelta(hours=1))

    assert len(timeline.changes) == 1


def test_change_before_previous_is_rejected() -> None:
    timeline = StatusTimeline()
    timeline.enter(S.UNDER_REVIEW, T0)

    with pytest.raises(ValueError, match="precedes"):
        timeline.enter(S.APPROVED, T0 - timedelta(seconds=1))


def test_time_in_states_sums_repeated_visits() -> None:
    timeline = StatusTimeline()
    timeline.enter(S.AWAITING_REVISION, T0)
    timeline.enter(S.UNDER_REVIEW, T0 + timedelta(days=2))
    timeline.enter(S.AWAITING_REVISION, T0 + timedelta(days=5))
    timeline.enter(S.UNDER_REVIEW, T0 + timedelta(days=6))

    totals = timeline.time_in_states(T0 + timedelta(days=10))

    assert totals == {S.AWAITING_REVISION: timedelta(days=3), S.UNDER_REVIEW: timedelta(days=7)}


def test_time_in_terminal_state_is_not_counted() -> None:
    timeline = StatusTimeline()
    timeline.enter(S.UNDER_REVIEW, T0)
    timeline.enter(S.APPROVED, T0 + timedelta(days=4))

    assert timeline.time_in_states(T0 + timedelta(days=40)) == {S.UNDER_REVIEW: timedelta(days=4)}
