"""Revocation fan-out planning and the re-check of grants against consents and dataset terms."""

from datetime import datetime, timedelta

from medgov_shared.contracts.events.consent import ConsentScope, ExclusionRequested
from medgov_shared.contracts.types import LegalBasis

from medgov_consent.commands.exclusions import _requested_event, requested_events
from medgov_consent.domain.fanout import GrantView, PlannedExclusion, exclusion_id, plan_exclusions, recheck_dataset, recheck_subject
from medgov_consent.domain.history import ConsentHistory, Revocation
from medgov_consent.domain.policy import DatasetTerms

from .conftest import OTHER_SUBJECT, SUBJECT, T0, Builders, days

DEADLINE = timedelta(hours=72)


def plan(
    history: ConsentHistory,
    grants: list[GrantView],
    *,
    datasets: dict[str, DatasetTerms] | None = None,
    member_of: tuple[str, ...] = ("ds-knuh-ct-0001",),
    requested: frozenset[str] = frozenset(),
    now: datetime = T0 + days(10),
) -> list[PlannedExclusion]:
    return plan_exclusions(
        history,
        subject_dataset_ids=member_of,
        datasets=datasets or {},
        grants=grants,
        requested=requested,
        now=now,
        acknowledge_within=DEADLINE,
    )


def test_revocation_reaches_active_grant(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    grant = make.grant(granted_at=T0 + days(1))

    planned = plan(history, [grant])

    assert len(planned) == 1
    exclusion = planned[0]
    assert exclusion.exclusion_id == exclusion_id("grant-0001", "ds-knuh-ct-0001", SUBJECT)
    assert exclusion.subject == SUBJECT
    assert exclusion.consent_id == "cns-0001"
    assert exclusion.grantee_id == "vendor-medvision"
    assert exclusion.holder_id == "knuh"
    assert exclusion.requested_at == T0 + days(10)
    assert exclusion.acknowledge_by == T0 + days(10) + DEADLINE


def test_one_exclusion_per_grant_dataset(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    grants = [
        make.grant("grant-0001", dataset_id="ds-knuh-ct-0001", granted_at=T0 + days(1)),
        make.grant("grant-0001", dataset_id="ds-cnuh-mr-0001", holder_id="cnuh", granted_at=T0 + days(1)),
        make.grant("grant-0002", dataset_id="ds-knuh-ct-0001", grantee_id="vendor-lunapath", granted_at=T0 + days(2)),
        make.grant("grant-0003", dataset_id="ds-jnuh-xr-0001", holder_id="jnuh", granted_at=T0 + days(2)),
    ]

    planned = plan(history, grants, member_of=("ds-knuh-ct-0001", "ds-cnuh-mr-0001"))

    assert [(item.grant_id, item.dataset_id) for item in planned] == [
        ("grant-0001", "ds-cnuh-mr-0001"),
        ("grant-0001", "ds-knuh-ct-0001"),
        ("grant-0002", "ds-knuh-ct-0001"),
    ]
    assert len({item.exclusion_id for item in planned}) == 3


def test_grant_ended_before_revocation(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    ended = make.grant(granted_at=T0 + days(1), ended_at=T0 + days(4))
    expired = make.grant("grant-0002", granted_at=T0 + days(1), expires_in=days(3))

    assert plan(history, [ended, expired]) == []


def test_grant_ended_after_revocation_still_reached(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    grant = make.grant(granted_at=T0 + days(1), ended_at=T0 + days(6))

    assert [item.grant_id for item in plan(history, [grant])] == ["grant-0001"]


def test_future_revocation_waits(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(20))
    grant = make.grant(granted_at=T0 + days(1))

    assert plan(history, [grant], now=T0 + days(10)) == []
    assert len(plan(history, [grant], now=T0 + days(20))) == 1


def test_planning_twice_plans_nothing_new(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    grant = make.grant(granted_at=T0 + days(1))
    first = plan(history, [grant])

    second = plan(history, [grant], requested=frozenset(item.exclusion_id for item in first))

    assert second == []


def test_revoked_dataset_scope(make: Builders) -> None:
    scope = ConsentScope(kind="datasets", dataset_ids=("ds-cnuh-mr-0001",))
    history = make.revoked(make.consented(at=T0), at=T0 + days(5), scope=scope)
    grants = [
        make.grant("grant-0001", dataset_id="ds-knuh-ct-0001", granted_at=T0 + days(1)),
        make.grant("grant-0002", dataset_id="ds-cnuh-mr-0001", holder_id="cnuh", granted_at=T0 + days(1)),
    ]

    planned = plan(history, grants, member_of=("ds-knuh-ct-0001", "ds-cnuh-mr-0001"))

    assert [item.grant_id for item in planned] == ["grant-0002"]


def test_revoked_purpose_scope(make: Builders) -> None:
    scope = ConsentScope(kind="purposes", purpose_codes=("POA",))
    history = make.revoked(make.consented(at=T0), at=T0 + days(5), scope=scope)
    grants = [
        make.grant("grant-0001", purposes=("HMB",), granted_at=T0 + days(1)),
        make.grant("grant-0002", purposes=("GRU",), granted_at=T0 + days(1)),
    ]

    assert [item.grant_id for item in plan(history, grants)] == ["grant-0002"]


def test_revocation_reaches_later_grant(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    later = make.grant(granted_at=T0 + days(8))

    assert [item.grant_id for item in plan(history, [later])] == ["grant-0001"]


def test_grant_stamped_ahead_of_our_clock_reached(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    ahead = make.grant(granted_at=T0 + days(12))  # the review service's clock runs ahead of ours

    assert [item.grant_id for item in plan(history, [ahead], now=T0 + days(10))] == ["grant-0001"]


def test_reconsent_admits_future_grants_only(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    history = make.consented(history, "cns-0002", at=T0 + days(7))
    before_revocation = make.grant("grant-0001", granted_at=T0 + days(1))
    between = make.grant("grant-0002", granted_at=T0 + days(6))
    after_reconsent = make.grant("grant-0003", granted_at=T0 + days(8))

    planned = plan(history, [before_revocation, between, after_reconsent])

    assert [item.grant_id for item in planned] == ["grant-0001", "grant-0002"]


def test_consent_deny_is_listed_not_excluded(make: Builders) -> None:
    narrowed = make.dashboard_policy(kind="purposes", purpose_codes=("POA",))
    history = make.consented(at=T0)
    history, _ = history.record_consent("cns-0001", institution_id="knuh", channel="dashboard", policy=narrowed, granted_at=T0 + days(5))
    grant = make.grant(granted_at=T0 + days(1))
    datasets = {"ds-knuh-ct-0001": make.dataset(legal_basis=LegalBasis.CONSENT)}

    planned = plan(history, [grant], datasets=datasets)
    listed = recheck_subject(
        history, subject_dataset_ids=("ds-knuh-ct-0001",), datasets=datasets, grants=[grant], requested=frozenset(), now=T0 + days(10)
    )

    assert planned == []
    assert len(listed) == 1
    assert listed[0].grant_id == "grant-0001"
    assert listed[0].subject == SUBJECT
    assert "legal basis 'consent'" in listed[0].reason


def test_recheck_skips_requested_exclusions(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(5))
    grant = make.grant(granted_at=T0 + days(1))
    requested = frozenset({exclusion_id("grant-0001", "ds-knuh-ct-0001", SUBJECT)})

    listed = recheck_subject(
        history, subject_dataset_ids=("ds-knuh-ct-0001",), datasets={}, grants=[grant], requested=requested, now=T0 + days(10)
    )

    assert listed == []


def test_recheck_dataset_legal_basis_change(make: Builders) -> None:
    consented = make.consented(at=T0)
    silent = ConsentHistory(OTHER_SUBJECT)
    grant = make.grant(granted_at=T0 + days(1))
    now_needs_consent = make.dataset(legal_basis=LegalBasis.CONSENT)

    listed = recheck_dataset(
        now_needs_consent, members={SUBJECT: consented, OTHER_SUBJECT: silent}, grants=[grant], requested=frozenset(), now=T0 + days(2)
    )

    assert [(item.grant_id, item.subject) for item in listed] == [("grant-0001", OTHER_SUBJECT)]
    assert "no consent or revocation on record" in listed[0].reason


def test_recheck_dataset_terms_change(make: Builders) -> None:
    grant = make.grant(purposes=("HMB",), granted_at=T0 + days(1))
    ancestry_only = make.dataset(duo_codes=("POA",))

    listed = recheck_dataset(ancestry_only, members={}, grants=[grant], requested=frozenset(), now=T0 + days(2))

    assert len(listed) == 1
    assert listed[0].subject is None
    assert "not within the terms POA" in listed[0].reason


def test_recheck_dataset_non_commercial_terms(make: Builders) -> None:
    vendor = make.grant("grant-0001", purposes=("HMB",), granted_at=T0 + days(1))
    foundation = make.grant("grant-0002", grantee_id="dgmif", purposes=("HMB",), granted_at=T0 + days(1))
    non_commercial = make.dataset(duo_codes=("HMB", "NCU"))

    listed = recheck_dataset(non_commercial, members={}, grants=[vendor, foundation], requested=frozenset(), now=T0 + days(2))

    assert [item.grant_id for item in listed] == ["grant-0001"]


def test_recheck_dataset_withdrawn(make: Builders) -> None:
    grant = make.grant(granted_at=T0 + days(1))

    listed = recheck_dataset(make.dataset(withdrawn=True), members={}, grants=[grant], requested=frozenset(), now=T0 + days(2))

    assert [item.reason for item in listed] == ["dataset ds-knuh-ct-0001 was withdrawn"]


def test_recheck_ignores_inactive_grants(make: Builders) -> None:
    expired = make.grant(granted_at=T0, expires_in=days(1))

    listed = recheck_dataset(make.dataset(withdrawn=True), members={}, grants=[expired], requested=frozenset(), now=T0 + days(2))

    assert listed == []


def test_standalone_opt_out_reaches_grants(make: Builders) -> None:
    opt_out = Revocation("optout-0001", "knuh", "dashboard", T0 + days(5), standalone=True)
    history, _ = ConsentHistory(SUBJECT).record_revocation(opt_out)
    grant = make.grant(granted_at=T0 + days(1))

    planned = plan(history, [grant])

    assert [(item.grant_id, item.consent_id) for item in planned] == [("grant-0001", "optout-0001")]


def test_requested_event_copies_match_validated(make: Builders) -> None:
    history = make.consented(at=T0)
    history = make.consented(history, "cns-0002", at=T0 + days(1), institution_id="cnuh")
    history = make.revoked(history, "cns-0001", at=T0 + days(5))
    history = make.revoked(history, "cns-0002", at=T0 + days(6))
    grants = [
        make.grant("grant-0001", granted_at=T0 + days(2)),
        make.grant("grant-0002", dataset_id="ds-cnuh-mr-0001", holder_id="cnuh", grantee_id="vendor-lunapath", granted_at=T0 + days(3)),
        make.grant("grant-0003", purposes=("GRU",), granted_at=T0 + days(7)),
    ]
    planned = plan(history, grants, member_of=("ds-knuh-ct-0001", "ds-cnuh-mr-0001"))

    events = requested_events(planned)

    assert len({(event.grant_id, event.holder_institution, event.grantee_institution) for event in events}) == 3
    assert {event.consent_id for event in events} == {"cns-0001", "cns-0002"}
    assert events == [_requested_event(exclusion) for exclusion in planned]
    assert events == [ExclusionRequested.model_validate(event.model_dump()) for event in events]
