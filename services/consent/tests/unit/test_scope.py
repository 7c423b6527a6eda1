"""Consent scopes: validation, dashboard policies, summaries and revocation reach."""

import pytest

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.institutions import all_institutions

from medgov_consent.domain.duo import PurposeCondition
from medgov_consent.domain.errors import ConsentRejected, RejectionReason
from medgov_consent.domain.evaluate import evaluate
from medgov_consent.domain.fhir_consent import read_fhir_consent_xml
from medgov_consent.domain.policy import ConsentPolicy, Decision, Provision
from medgov_consent.domain.scope import permitted_scope, policy_from_scope, scope_covers, validate_scope

from .conftest import Builders

KNOWN = frozenset(all_institutions())


@pytest.mark.parametrize(
    ("scope", "reason", "path"),
    [
        (ConsentScope(kind="purposes"), RejectionReason.NO_USABLE_SCOPE, "scope.purpose_codes"),
        (ConsentScope(kind="datasets"), RejectionReason.NO_USABLE_SCOPE, "scope.dataset_ids"),
        (ConsentScope(kind="institutions"), RejectionReason.NO_USABLE_SCOPE, "scope.institution_ids"),
        (ConsentScope(kind="institutions", institution_ids=("snuh",)), RejectionReason.UNKNOWN_INSTITUTION, "scope.institution_ids"),
    ],
)
def test_validate_scope_rejects(scope: ConsentScope, reason: RejectionReason, path: str) -> None:
    with pytest.raises(ConsentRejected) as caught:
        validate_scope(scope, institution_ids=KNOWN)

    assert caught.value.reason is reason
    assert caught.value.path == path


def test_revocation_scope_needs_a_purpose() -> None:
    scope = ConsentScope(kind="purposes", purpose_codes=("NCU",))

    validate_scope(scope, institution_ids=KNOWN)
    with pytest.raises(ConsentRejected) as caught:
        validate_scope(scope, institution_ids=KNOWN, revocation=True)

    assert caught.value.reason is RejectionReason.NO_USABLE_SCOPE


def test_dashboard_policy_restricts_together(make: Builders) -> None:
    policy = policy_from_scope(ConsentScope(kind="purposes", purpose_codes=("HMB", "NCU"), institution_ids=("knuh",)))

    assert policy.root.purposes == PurposeCondition(frozenset({"HMB"}), excludes_for_profit=True)
    assert policy.root.holder_ids == frozenset({"knuh"})
    assert evaluate(policy, make.request(recipient_id="dgmif", for_profit=False)).decision is Decision.PERMIT
    assert evaluate(policy, make.request()).decision is None


def test_permitted_scope_of_dashboard_round_trip() -> None:
    scope = ConsentScope(kind="datasets", dataset_ids=("ds-a", "ds-b"), institution_ids=("knuh",))

    assert permitted_scope(policy_from_scope(scope)) == scope


def test_permitted_scope_of_mii_sample(mii_consent_xml: bytes) -> None:
    summary = permitted_scope(read_fhir_consent_xml(mii_consent_xml))

    assert summary == ConsentScope(kind="purposes", purpose_codes=("HMB",))


def test_permitted_scope_of_opt_out() -> None:
    assert permitted_scope(ConsentPolicy(Provision(Decision.DENY, holder_ids=frozenset({"knuh"})), "fhir")) is None


def test_permitted_scope_joins_permits() -> None:
    root = Provision(
        Decision.DENY,
        holder_ids=frozenset({"knuh", "cnuh"}),
        provisions=(
            Provision(Decision.PERMIT, "provision.provision[0]", purposes=PurposeCondition(frozenset({"HMB"})), holder_ids=frozenset({"knuh"})),
            Provision(Decision.PERMIT, "provision.provision[1]", purposes=PurposeCondition(frozenset({"POA"}))),
            Provision(Decision.PERMIT, "provision.provision[2]", holder_ids=frozenset({"jnuh"})),
        ),
    )

    summary = permitted_scope(ConsentPolicy(root, "fhir"))

    assert summary == ConsentScope(kind="purposes", purpose_codes=("HMB", "POA"), institution_ids=("cnuh", "knuh"))


def test_scope_covers_by_overlap(make: Builders) -> None:
    hmb_at_knuh = ConsentScope(kind="purposes", purpose_codes=("HMB",), institution_ids=("knuh",))

    assert scope_covers(hmb_at_knuh, make.request(purposes=("GRU",))) is True
    assert scope_covers(hmb_at_knuh, make.request(purposes=("POA",))) is False
    assert scope_covers(hmb_at_knuh, make.request(dataset=make.dataset("ds-cnuh", holder_id="cnuh"))) is False
    assert scope_covers(ConsentScope(), make.request(purposes=("POA",))) is True
