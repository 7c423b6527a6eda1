"""A subject's consent history: order, revocation, re-consent, parking and duplicates."""

from dataclasses import replace
from datetime import datetime
from itertools import permutations

from hypothesis import given, settings
from hypothesis import strategies as st

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.types import LegalBasis

from medgov_consent.domain.history import ChangeKind, ConsentHistory, Revocation
from medgov_consent.domain.policy import Decision, Provision, ConsentPolicy

from .conftest import SUBJECT, T0, Builders, days


def test_grant_revoke_grant_in_order(make: Builders) -> None:
    history = make.consented(at=T0)
    history = make.revoked(history, at=T0 + days(1))
    history = make.consented(history, "cns-0002", at=T0 + days(2))

    before = history.decide(make.request(at=T0 + days(0.5)))
    revoked = history.decide(make.request(at=T0 + days(1.5)))
    again = history.decide(make.request(at=T0 + days(3)))

    assert before.decision is Decision.PERMIT
    assert revoked.decision is Decision.DENY
    assert revoked.by_revocation is True
    assert revoked.consent_id == "cns-0001"
    assert again.decision is Decision.PERMIT
    assert again.consent_id == "cns-0002"


def test_revocation_without_scope_ends_consent(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(1))

    record = history.consent("cns-0001")

    assert record is not None
    assert record.withdrawn_at == T0 + days(1)
    assert history.revocations[0].denied == ConsentScope(kind="all_research")


def test_partial_revocation_keeps_rest(make: Builders) -> None:
    scope = ConsentScope(kind="datasets", dataset_ids=("ds-knuh-ct-0001",))
    history = make.revoked(make.consented(at=T0), at=T0 + days(1), scope=scope)

    revoked_dataset = history.decide(make.request(at=T0 + days(2)))
    other_dataset = history.decide(make.request(dataset=make.dataset("ds-knuh-mr-0002"), at=T0 + days(2)))

    assert revoked_dataset.decision is Decision.DENY
    assert other_dataset.decision is Decision.PERMIT
    assert history.consent("cns-0001").withdrawn_at is None  # type: ignore[union-attr]


def test_revocation_of_narrow_consent_denies_its_scope(make: Builders) -> None:
    hmb_only = make.dashboard_policy(kind="purposes", purpose_codes=("HMB",))
    history = make.revoked(make.consented(policy=hmb_only, at=T0), at=T0 + days(1))

    hmb = history.decide(make.request(purposes=("HMB",), at=T0 + days(2)))
    ancestry = history.decide(make.request(purposes=("POA",), at=T0 + days(2)))

    assert hmb.decision is Decision.DENY
    assert ancestry.decision is None


def test_revoking_opt_out_lifts_it(make: Builders) -> None:
    opt_out = ConsentPolicy(Provision(Decision.DENY), "fhir")
    history = make.consented(policy=opt_out, at=T0)

    before = history.decide(make.request(at=T0 + days(1)))
    history = make.revoked(history, at=T0 + days(2))
    after = history.decide(make.request(at=T0 + days(3)))

    assert before.decision is Decision.DENY
    assert history.revocations[0].denied is None
    assert after.decision is None


def test_revocation_before_consent_is_parked(make: Builders) -> None:
    history, parked = ConsentHistory(SUBJECT).record_revocation(make.revocation(at=T0 + days(1)))

    history, change = history.record_consent(
        "cns-0001", institution_id="knuh", channel="fhir", policy=make.dashboard_policy(kind="all_research"), granted_at=T0
    )

    assert parked.kind is ChangeKind.PARKED
    assert change.kind is ChangeKind.RECORDED
    assert [item.consent_id for item in change.applied] == ["cns-0001"]
    assert history.parked == ()
    assert history.decide(make.request(at=T0 + days(2))).decision is Decision.DENY


def test_parked_revocation_stays_until_its_consent(make: Builders) -> None:
    history, _ = ConsentHistory(SUBJECT).record_revocation(make.revocation("cns-0009"))

    history = make.consented(history, "cns-0001")

    assert len(history.parked) == 1
    assert history.revocations == ()


def test_parked_revocation_of_other_hospital_not_applied(make: Builders) -> None:
    """A hospital's revocation parked before the consent arrives withdraws it only if that hospital records it."""
    foreign = replace(make.revocation(at=T0 + days(1), institution_id="dcmc"), channel="fhir")
    own = replace(make.revocation(at=T0 + days(2)), channel="fhir")
    history, _ = ConsentHistory(SUBJECT).record_revocation(foreign)
    history, _ = history.record_revocation(own)

    history, change = history.record_consent(
        "cns-0001", institution_id="knuh", channel="fhir", policy=make.dashboard_policy(kind="all_research"), granted_at=T0
    )

    assert [item.revocation for item in change.applied] == [own]
    assert change.not_applied == (foreign,)
    assert history.parked == (foreign,)
    assert history.decide(make.request(at=T0 + days(1.5))).decision is Decision.PERMIT
    assert history.decide(make.request(at=T0 + days(3))).decision is Decision.DENY


def test_revocation_never_precedes_its_consent(make: Builders) -> None:
    history, _ = ConsentHistory(SUBJECT).record_revocation(make.revocation(at=T0 - days(5)))
    history = make.consented(history, at=T0)

    assert history.revocations[0].effective_at == T0
    assert history.decide(make.request(at=T0 + days(1))).decision is Decision.DENY


def test_duplicate_consent_changes_nothing(make: Builders) -> None:
    history = make.consented(at=T0)

    again, change = history.record_consent(
        "cns-0001", institution_id="knuh", channel="dashboard", policy=make.dashboard_policy(kind="all_research"), granted_at=T0
    )

    assert change.kind is ChangeKind.DUPLICATE
    assert again is history


def test_duplicate_revocation_changes_nothing(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(1))

    again, change = history.record_revocation(make.revocation(at=T0 + days(1)))

    assert change.kind is ChangeKind.DUPLICATE
    assert again is history


def test_revocation_of_withdrawn_consent_keeps_newer_consent(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(1))
    history = make.consented(history, "cns-0002", at=T0 + days(2))

    again, change = history.record_revocation(make.revocation(at=T0 + days(3)))

    assert change.kind is ChangeKind.ALREADY_WITHDRAWN
    assert again is history
    assert again.decide(make.request(at=T0 + days(4))).decision is Decision.PERMIT


def test_revocation_order_keeps_newer_consent(make: Builders) -> None:
    later_first = make.revoked(make.consented(at=T0), at=T0 + days(3))
    later_first = make.revoked(later_first, at=T0 + days(1))
    later_first = make.consented(later_first, "cns-0002", at=T0 + days(2))

    assert len(later_first.revocations) == 2
    assert later_first.consent("cns-0001").withdrawn_at == T0 + days(1)
    assert later_first.decide(make.request(at=T0 + days(4))).decision is Decision.PERMIT


def test_earlier_revocation_of_withdrawn_consent_moves_withdrawal(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(3))

    earlier, change = history.record_revocation(make.revocation(at=T0 + days(1)))

    assert change.kind is ChangeKind.APPLIED
    assert earlier.consent("cns-0001").withdrawn_at == T0 + days(1)
    assert earlier.decide(make.request(at=T0 + days(2))).decision is Decision.DENY


def test_revocation_after_new_version_applies(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(1))
    history = make.consented(history, at=T0 + days(2))

    again, change = history.record_revocation(make.revocation(at=T0 + days(3)))

    assert change.kind is ChangeKind.APPLIED
    assert again.decide(make.request(at=T0 + days(2.5))).decision is Decision.PERMIT
    assert again.decide(make.request(at=T0 + days(4))).decision is Decision.DENY


def test_duplicate_parked_revocation(make: Builders) -> None:
    history, _ = ConsentHistory(SUBJECT).record_revocation(make.revocation())

    again, change = history.record_revocation(make.revocation())

    assert change.kind is ChangeKind.DUPLICATE
    assert len(again.parked) == 1


def test_stale_version_is_ignored(make: Builders) -> None:
    narrow = make.dashboard_policy(kind="purposes", purpose_codes=("HMB",))
    history = make.consented(policy=narrow, at=T0 + days(1))

    again, change = history.record_consent(
        "cns-0001", institution_id="knuh", channel="dashboard", policy=make.dashboard_policy(kind="all_research"), granted_at=T0
    )

    assert change.kind is ChangeKind.STALE
    assert again is history


def test_new_version_after_withdrawal_readmits(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(1))

    history, change = history.record_consent(
        "cns-0001", institution_id="knuh", channel="dashboard", policy=make.dashboard_policy(kind="all_research"), granted_at=T0 + days(2)
    )

    assert change.kind is ChangeKind.UPDATED
    assert change.record.withdrawn_at is None
    assert history.decide(make.request(at=T0 + days(1.5))).decision is Decision.DENY
    assert history.decide(make.request(at=T0 + days(3))).decision is Decision.PERMIT


def _second_version(history: ConsentHistory, make: Builders, *, at: datetime) -> ConsentHistory:
    history, _ = history.record_consent(
        "cns-0001", institution_id="knuh", channel="dashboard", policy=make.dashboard_policy(kind="all_research"), granted_at=at
    )
    return history


def test_early_revocation_spares_new_version(make: Builders) -> None:
    revocation_first = _second_version(make.revoked(make.consented(at=T0), at=T0 + days(1)), make, at=T0 + days(2))
    version_first = make.revoked(_second_version(make.consented(at=T0), make, at=T0 + days(2)), at=T0 + days(1))
    resent = make.revoked(revocation_first, at=T0 + days(1.5))

    for history in (revocation_first, version_first, resent):
        assert history.consent("cns-0001").withdrawn_at is None
        assert history.decide(make.request(at=T0 + days(1.2))).decision is Decision.DENY
        assert history.decide(make.request(at=T0 + days(3))).decision is Decision.PERMIT


def test_correction_before_withdrawal_stays_withdrawn(make: Builders) -> None:
    history = make.revoked(make.consented(at=T0), at=T0 + days(2))

    history, change = history.record_consent(
        "cns-0001",
        institution_id="knuh",
        channel="dashboard",
        policy=make.dashboard_policy(kind="purposes", purpose_codes=("HMB",)),
        granted_at=T0 + days(1),
    )

    assert change.kind is ChangeKind.UPDATED
    assert change.record.withdrawn_at == T0 + days(2)


def test_no_directive_follows_legal_basis(make: Builders) -> None:
    decision = ConsentHistory(SUBJECT).decide(make.request())

    assert decision.decision is None
    assert decision.admits(LegalBasis.PSEUDONYMIZED_RESEARCH) is True
    assert decision.admits(LegalBasis.ANONYMOUS) is True
    assert decision.admits(LegalBasis.CONSENT) is False


def test_consents_of_other_hospitals_do_not_interfere(make: Builders) -> None:
    knuh_only = make.dashboard_policy(kind="institutions", institution_ids=("knuh",))
    opt_out_cnuh = ConsentPolicy(Provision(Decision.DENY, holder_ids=frozenset({"cnuh"})), "fhir")
    history = make.consented(policy=knuh_only, at=T0)
    history = make.consented(history, "cns-cnuh", policy=opt_out_cnuh, at=T0 + days(1), institution_id="cnuh")

    at_knuh = history.decide(make.request(at=T0 + days(2)))
    at_cnuh = history.decide(make.request(dataset=make.dataset("ds-cnuh", holder_id="cnuh"), at=T0 + days(2)))

    assert at_knuh.decision is Decision.PERMIT
    assert at_cnuh.decision is Decision.DENY


# Arrival order: the same directives delivered in any order end in the same decisions.

SCOPES = [
    None,
    ConsentScope(kind="datasets", dataset_ids=("ds-knuh-ct-0001",)),
    ConsentScope(kind="purposes", purpose_codes=("POA",)),
]
PROBES = [(day, purposes) for day in (0.5, 1.5, 2.5, 3.5, 10) for purposes in (("HMB",), ("POA",))]


def _decisions(history: ConsentHistory, make: Builders) -> list[Decision | None]:
    return [history.decide(make.request(purposes=purposes, at=T0 + days(day))).decision for day, purposes in PROBES]


def _deliver(events: list[tuple[str, object]], make: Builders) -> ConsentHistory:
    history = ConsentHistory(SUBJECT)
    for kind, payload in events:
        if kind == "consent":
            consent_id, day = payload  # type: ignore[misc]
            history = make.consented(history, consent_id, at=T0 + days(day))
        else:
            history, _ = history.record_revocation(payload)  # type: ignore[arg-type]
    return history


@st.composite
def directive_sets(draw: st.DrawFn, make: Builders = Builders()) -> list[tuple[str, object]]:
    revocation_days = draw(st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3, unique=True))
    events: list[tuple[str, object]] = [("consent", ("cns-0001", 0))]
    for day in revocation_days:
        scope = draw(st.sampled_from(SCOPES))
        events.append(("revocation", make.revocation(at=T0 + days(day), scope=scope)))
    if draw(st.booleans()):
        events.append(("consent", ("cns-0002", draw(st.sampled_from([1.2, 2.2, 3.2])))))
    return events


@settings(max_examples=60, deadline=None)
@given(directive_sets())
def test_arrival_order_does_not_matter(events: list[tuple[str, object]]) -> None:
    make = Builders()
    expected = _decisions(_deliver(events, make), make)

    for order in permutations(events):
        assert _decisions(_deliver(list(order), make), make) == expected


@settings(max_examples=60, deadline=None)
@given(directive_sets(), st.data())
def test_redelivery_changes_nothing(events: list[tuple[str, object]], data: st.DataObject) -> None:
    make = Builders()
    once = _deliver(events, make)
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=4))

    twice = _deliver(events + repeats, make)

    assert twice == once


@settings(max_examples=60, deadline=None)
@given(
    revocation_days=st.lists(st.sampled_from([1, 2, 3, 4]), min_size=1, max_size=4, unique=True),
    newer_day=st.sampled_from([1.5, 2.5, 3.5]),
    order=st.randoms(use_true_random=False),
)
def test_full_revocations_of_older_consent_keep_newer_one(revocation_days: list[int], newer_day: float, order) -> None:
    make = Builders()
    events: list[tuple[str, object]] = [("consent", ("cns-0002", newer_day))]
    events += [("revocation", make.revocation(at=T0 + days(day))) for day in revocation_days]
    order.shuffle(events)

    history = _deliver([("consent", ("cns-0001", 0)), *events], make)

    # The first revocation ends the older consent, and only it denies. Given after it, the newer consent
    # stays in force; given before it, the revocation is the patient's latest word.
    expected = Decision.PERMIT if min(revocation_days) < newer_day else Decision.DENY
    assert history.decide(make.request(at=T0 + days(10))).decision is expected


def test_standalone_opt_out_applies_at_once(make: Builders) -> None:
    opt_out = Revocation("optout-0001", "knuh", "dashboard", T0, standalone=True)

    history, change = ConsentHistory(SUBJECT).record_revocation(opt_out)

    assert change.kind is ChangeKind.APPLIED
    assert history.parked == ()
    assert history.revocations[0].denied == ConsentScope()
    assert history.decide(make.request(at=T0 + days(1))).decision is Decision.DENY
    assert history.decide(make.request(at=T0 - days(1))).decision is None


def test_consent_after_opt_out_readmits(make: Builders) -> None:
    history, _ = ConsentHistory(SUBJECT).record_revocation(Revocation("optout-0001", "knuh", "dashboard", T0, standalone=True))

    history = make.consented(history, at=T0 + days(1))

    assert history.decide(make.request(at=T0 + days(2))).decision is Decision.PERMIT
