"""Acknowledgement of an exclusion by grantee and holder, and the overdue flag."""

import pytest

from medgov_consent.domain.errors import NotAParty
from medgov_consent.domain.exclusion import Exclusion, Party
from medgov_consent.domain.fanout import plan_exclusions

from .conftest import T0, Builders, days, hours


@pytest.fixture
def exclusion(make: Builders) -> Exclusion:
    history = make.revoked(make.consented(at=T0), at=T0 + days(1))
    (planned,) = plan_exclusions(
        history,
        subject_dataset_ids=("ds-knuh-ct-0001",),
        datasets={},
        grants=[make.grant(granted_at=T0)],
        requested=frozenset(),
        now=T0 + days(1),
        acknowledge_within=hours(72),
    )
    return Exclusion.requested(planned)


def test_exclusion_starts_unacknowledged(exclusion: Exclusion) -> None:
    assert exclusion.complete is False
    assert exclusion.missing_parties() == (Party.GRANTEE, Party.HOLDER)
    assert exclusion.acknowledge_by == T0 + days(1) + hours(72)


def test_party_by_role_and_institution(exclusion: Exclusion) -> None:
    assert exclusion.party_of("applicant", "vendor-medvision") is Party.GRANTEE
    assert exclusion.party_of("hospital", "knuh") is Party.HOLDER


@pytest.mark.parametrize(
    ("role", "institution"),
    [("hospital", "vendor-medvision"), ("applicant", "knuh"), ("hospital", "cnuh"), ("applicant", "vendor-lunapath"), ("patient", "knuh")],
)
def test_party_rejects_others(exclusion: Exclusion, role: str, institution: str) -> None:
    with pytest.raises(NotAParty) as caught:
        exclusion.party_of(role, institution)

    assert exclusion.exclusion_id in caught.value.message


def test_both_acknowledgements_complete(exclusion: Exclusion) -> None:
    after_grantee, changed_once = exclusion.acknowledge(Party.GRANTEE, T0 + days(2))
    after_both, changed_twice = after_grantee.acknowledge(Party.HOLDER, T0 + days(3))

    assert changed_once is True
    assert after_grantee.complete is False
    assert after_grantee.missing_parties() == (Party.HOLDER,)
    assert changed_twice is True
    assert after_both.complete is True
    assert after_both.grantee_acknowledged_at == T0 + days(2)
    assert after_both.holder_acknowledged_at == T0 + days(3)


def test_repeated_acknowledgement_changes_nothing(exclusion: Exclusion) -> None:
    first, _ = exclusion.acknowledge(Party.HOLDER, T0 + days(2))

    second, changed = first.acknowledge(Party.HOLDER, T0 + days(3))

    assert changed is False
    assert second is first
    assert second.holder_acknowledged_at == T0 + days(2)


def test_overdue_once_after_deadline(exclusion: Exclusion) -> None:
    half_done, _ = exclusion.acknowledge(Party.HOLDER, T0 + days(2))
    deadline = exclusion.acknowledge_by

    assert half_done.is_overdue(deadline - hours(1)) is False
    assert half_done.is_overdue(deadline) is True
    flagged = half_done.mark_overdue(deadline)
    assert flagged.is_overdue(deadline + days(1)) is False
    assert flagged.missing_parties() == (Party.GRANTEE,)


def test_complete_exclusion_never_overdue(exclusion: Exclusion) -> None:
    done, _ = exclusion.acknowledge(Party.HOLDER, T0 + days(2))
    done, _ = done.acknowledge(Party.GRANTEE, T0 + days(2))

    assert done.is_overdue(exclusion.acknowledge_by + days(30)) is False


def test_late_acknowledgement_keeps_flag(exclusion: Exclusion) -> None:
    flagged = exclusion.mark_overdue(exclusion.acknowledge_by)

    late, changed = flagged.acknowledge(Party.GRANTEE, exclusion.acknowledge_by + days(1))

    assert changed is True
    assert late.overdue_at == exclusion.acknowledge_by
