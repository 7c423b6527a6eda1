"""Evaluation of one policy: conditions, nesting and the permit/deny asymmetry, by example."""

from datetime import UTC, datetime, timedelta

from medgov_consent.domain.duo import PurposeCondition
from medgov_consent.domain.evaluate import evaluate
from medgov_consent.domain.policy import (
    ConsentPolicy,
    DataClass,
    DataClassKind,
    DatasetContent,
    DatasetTerms,
    Decision,
    Period,
    Provision,
)

from .conftest import T0, Builders

CT = DataClass(DataClassKind.MEDIA_TYPE, "application/dicom")
PATIENT = DataClass(DataClassKind.RESOURCE_TYPE, "Patient")
OBSERVATION = DataClass(DataClassKind.RESOURCE_TYPE, "Observation")


def policy(root: Provision) -> ConsentPolicy:
    return ConsentPolicy(root=root, source="fhir")


def test_permit_without_conditions(make: Builders) -> None:
    result = evaluate(policy(Provision(Decision.PERMIT)), make.request())

    assert result.decision is Decision.PERMIT
    assert result.path == "provision"
    assert result.reason == "permitted by provision"


def test_nested_deny_is_exception(make: Builders) -> None:
    root = Provision(
        Decision.PERMIT,
        provisions=(Provision(Decision.DENY, "provision.provision[0]", holder_ids=frozenset({"knuh"})),),
    )

    at_knuh = evaluate(policy(root), make.request())
    at_cnuh = evaluate(policy(root), make.request(dataset=make.dataset("ds-cnuh", holder_id="cnuh")))

    assert at_knuh.decision is Decision.DENY
    assert at_knuh.path == "provision.provision[0]"
    assert at_cnuh.decision is Decision.PERMIT
    assert at_cnuh.path == "provision"


def test_nested_permit_inside_deny(make: Builders) -> None:
    root = Provision(
        Decision.DENY,
        provisions=(Provision(Decision.PERMIT, "provision.provision[0]", purposes=PurposeCondition(frozenset({"HMB"}))),),
    )

    assert evaluate(policy(root), make.request(purposes=("HMB",))).decision is Decision.PERMIT
    assert evaluate(policy(root), make.request(purposes=("POA",))).decision is Decision.DENY


def test_deny_wins_among_siblings(make: Builders) -> None:
    root = Provision(
        Decision.DENY,
        provisions=(
            Provision(Decision.PERMIT, "provision.provision[0]"),
            Provision(Decision.DENY, "provision.provision[1]"),
            Provision(Decision.PERMIT, "provision.provision[2]"),
        ),
    )

    result = evaluate(policy(root), make.request())

    assert result.decision is Decision.DENY
    assert result.path == "provision.provision[1]"


def test_children_never_apply_outside_parent(make: Builders) -> None:
    period = Period(datetime(2020, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
    root = Provision(Decision.PERMIT, period=period, provisions=(Provision(Decision.DENY, "provision.provision[0]"),))

    result = evaluate(policy(root), make.request())

    assert result.decision is None
    assert result.path == "provision"
    assert "outside its period" in result.reason


def test_period_bounds(make: Builders) -> None:
    period = Period(T0, T0 + timedelta(days=1))
    root = Provision(Decision.PERMIT, period=period)

    assert evaluate(policy(root), make.request(at=T0)).decision is Decision.PERMIT
    assert evaluate(policy(root), make.request(at=T0 - timedelta(microseconds=1))).decision is None
    assert evaluate(policy(root), make.request(at=T0 + timedelta(days=1))).decision is None


def test_permit_purposes_must_cover_all(make: Builders) -> None:
    root = Provision(Decision.PERMIT, purposes=PurposeCondition(frozenset({"HMB"})))

    both = evaluate(policy(root), make.request(purposes=("HMB", "POA")))

    assert both.decision is None
    assert "not within HMB" in both.reason


def test_deny_purposes_reach_on_overlap(make: Builders) -> None:
    root = Provision(Decision.DENY, purposes=PurposeCondition(frozenset({"HMB"})))

    assert evaluate(policy(root), make.request(purposes=("GRU",))).decision is Decision.DENY
    assert evaluate(policy(root), make.request(purposes=("POA",))).decision is None


def test_non_commercial_permit(make: Builders) -> None:
    root = Provision(Decision.PERMIT, purposes=PurposeCondition(frozenset({"HMB"}), excludes_for_profit=True))

    vendor = evaluate(policy(root), make.request(for_profit=True))
    university = evaluate(policy(root), make.request(recipient_id="dgmif", for_profit=False))

    assert vendor.decision is None
    assert "for-profit" in vendor.reason
    assert university.decision is Decision.PERMIT


def test_permit_classes_need_whole_dataset(make: Builders) -> None:
    root = Provision(Decision.PERMIT, data_classes=frozenset({PATIENT}))

    only_patients = evaluate(policy(root), make.request(dataset=make.dataset(resource_types=("Patient",))))
    with_observations = evaluate(policy(root), make.request(dataset=make.dataset(resource_types=("Patient", "Observation"))))
    unknown = evaluate(policy(root), make.request(dataset=make.dataset(resource_types=None)))

    assert only_patients.decision is Decision.PERMIT
    assert with_observations.decision is None
    assert "resource:Observation" in with_observations.reason
    assert unknown.decision is None


def test_deny_classes_reach_any_overlap(make: Builders) -> None:
    root = Provision(Decision.PERMIT, provisions=(Provision(Decision.DENY, "provision.provision[0]", data_classes=frozenset({OBSERVATION})),))

    mixed = evaluate(policy(root), make.request(dataset=make.dataset(resource_types=("Patient", "Observation"))))
    imaging = evaluate(policy(root), make.request(dataset=make.dataset(resource_types=("ImagingStudy",))))
    unknown = evaluate(policy(root), make.request(dataset=make.dataset(resource_types=None)))

    assert mixed.decision is Decision.DENY
    assert imaging.decision is Decision.PERMIT
    assert unknown.decision is Decision.DENY


def test_permit_classes_ignore_other_kinds(make: Builders) -> None:
    root = Provision(Decision.PERMIT, data_classes=frozenset({CT}))
    dataset = DatasetTerms("ds-ct", "knuh", content=DatasetContent(data_classes=frozenset({CT, PATIENT})))

    assert evaluate(policy(root), make.request(dataset=dataset)).decision is Decision.PERMIT


def test_dataset_holder_recipient(make: Builders) -> None:
    root = Provision(
        Decision.PERMIT,
        dataset_ids=frozenset({"ds-knuh-ct-0001"}),
        holder_ids=frozenset({"knuh"}),
        recipient_ids=frozenset({"vendor-lunapath"}),
    )

    wrong_recipient = evaluate(policy(root), make.request())
    right = evaluate(policy(root), make.request(recipient_id="vendor-lunapath"))

    assert wrong_recipient.decision is None
    assert "recipient vendor-medvision is not one of vendor-lunapath" in wrong_recipient.reason
    assert right.decision is Decision.PERMIT


def test_inapplicable_provision_matches_nothing(make: Builders) -> None:
    root = Provision(Decision.DENY, provisions=(Provision(Decision.PERMIT, "provision.provision[0]", inapplicable="only for treatment"),))

    result = evaluate(policy(root), make.request())

    assert result.decision is Decision.DENY
    assert result.path == "provision"
