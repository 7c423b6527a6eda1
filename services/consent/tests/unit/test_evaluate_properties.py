"""Properties of consent evaluation over generated provision trees, requests and FHIR Consents."""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from medgov_consent.domain.duo import PurposeCondition
from medgov_consent.domain.evaluate import evaluate, evaluate_provision, find_mismatch
from medgov_consent.domain.fhir_consent import read_fhir_consent
from medgov_consent.domain.policy import (
    KOREA_STANDARD_TIME,
    ConsentPolicy,
    DataClass,
    DataClassKind,
    DatasetContent,
    DatasetTerms,
    Decision,
    Period,
    Provision,
    UseRequest,
)

PURPOSES = ["GRU", "HMB", "POA", "DS:MONDO_0005148", "NRES"]
DATASETS = ["ds-a", "ds-b", "ds-c"]
HOLDERS = ["knuh", "cnuh", "jnuh"]
RECIPIENTS = ["vendor-medvision", "vendor-lunapath", "dgmif"]
CLASSES = [DataClass(DataClassKind.RESOURCE_TYPE, name) for name in ("Patient", "Observation", "ImagingStudy")]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
INSTANTS = [BASE + timedelta(days=30 * step) for step in range(12)]

decisions = st.sampled_from(list(Decision))
optional_ids = lambda values: st.one_of(st.none(), st.frozensets(st.sampled_from(values), min_size=1))  # noqa: E731


@st.composite
def periods(draw: st.DrawFn) -> Period | None:
    if draw(st.booleans()):
        return None
    start, end = sorted(draw(st.lists(st.sampled_from(INSTANTS), min_size=2, max_size=2, unique=True)))
    return Period(draw(st.sampled_from([start, None])), end)


@st.composite
def purpose_conditions(draw: st.DrawFn) -> PurposeCondition | None:
    if draw(st.booleans()):
        return None
    return PurposeCondition(draw(st.frozensets(st.sampled_from(PURPOSES), min_size=1)), draw(st.booleans()))


def provisions(max_depth: int = 3) -> st.SearchStrategy[Provision]:
    leaf_fields = st.fixed_dictionaries(
        {
            "decision": decisions,
            "period": periods(),
            "purposes": purpose_conditions(),
            "dataset_ids": optional_ids(DATASETS),
            "holder_ids": optional_ids(HOLDERS),
            "recipient_ids": optional_ids(RECIPIENTS),
            "data_classes": optional_ids(CLASSES),
        }
    )

    def build(fields: dict[str, Any], children: list[Provision]) -> Provision:
        return _with_paths(Provision(**fields, provisions=tuple(children)), "provision")

    if max_depth == 0:
        return leaf_fields.map(lambda fields: build(fields, []))
    return st.builds(build, leaf_fields, st.lists(provisions(max_depth - 1), max_size=3))


def _with_paths(provision: Provision, path: str) -> Provision:
    children = tuple(_with_paths(child, f"{path}.provision[{index}]") for index, child in enumerate(provision.provisions))
    return replace(provision, path=path, provisions=children)


@st.composite
def requests(draw: st.DrawFn) -> UseRequest:
    content = None
    if draw(st.booleans()):
        content = DatasetContent(data_classes=draw(st.frozensets(st.sampled_from(CLASSES), min_size=1)))
    dataset = DatasetTerms(draw(st.sampled_from(DATASETS)), draw(st.sampled_from(HOLDERS)), content=content)
    return UseRequest(
        purposes=tuple(draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2))),
        dataset=dataset,
        recipient_id=draw(st.sampled_from(RECIPIENTS)),
        recipient_for_profit=draw(st.booleans()),
        at=draw(st.sampled_from(INSTANTS)),
    )


def _find(root: Provision, path: str) -> list[Provision]:
    """Return the provisions from the root down to the one at `path`."""
    chain = [root]
    while chain[-1].path != path:
        chain.append(next(child for child in chain[-1].provisions if path.startswith(child.path)))
    return chain


def _reversed(provision: Provision) -> Provision:
    return replace(provision, provisions=tuple(_reversed(child) for child in reversed(provision.provisions)))


@given(provisions(), requests())
def test_outside_root_nothing_applies(root: Provision, request: UseRequest) -> None:
    result = evaluate_provision(root, request)

    if find_mismatch(root, request) is not None:
        assert result.decision is None
        assert result.path == "provision"


@given(provisions(), requests())
def test_decision_comes_from_matching_chain(root: Provision, request: UseRequest) -> None:
    result = evaluate_provision(root, request)

    if result.decision is not None:
        assert result.path is not None
        chain = _find(root, result.path)
        assert chain[-1].decision is result.decision
        assert all(find_mismatch(item, request) is None for item in chain)


@given(provisions(), requests())
def test_deciding_provision_has_no_deciding_children(root: Provision, request: UseRequest) -> None:
    """The decision is the most specific one: no nested provision of the decider applies."""
    result = evaluate_provision(root, request)

    if result.decision is not None:
        decider = _find(root, result.path or "")[-1]
        assert all(evaluate_provision(child, request).decision is None for child in decider.provisions)


@given(provisions(), requests())
def test_sibling_order_does_not_matter(root: Provision, request: UseRequest) -> None:
    assert evaluate_provision(_reversed(root), request).decision == evaluate_provision(root, request).decision


@given(provisions(), requests())
def test_unconditional_nested_deny_wins(root: Provision, request: UseRequest) -> None:
    blocked = replace(root, provisions=root.provisions + (Provision(Decision.DENY, f"provision.provision[{len(root.provisions)}]"),))

    result = evaluate_provision(blocked, request)

    expected = None if find_mismatch(root, request) is not None else Decision.DENY
    assert result.decision is expected


@given(provisions(max_depth=0), requests(), st.frozensets(st.sampled_from(DATASETS), min_size=1))
def test_narrowing_a_permit_never_widens_it(leaf: Provision, request: UseRequest, datasets: frozenset[str]) -> None:
    narrowed = replace(leaf, dataset_ids=datasets if leaf.dataset_ids is None else leaf.dataset_ids & datasets)

    if evaluate_provision(narrowed, request).decision is Decision.PERMIT:
        assert evaluate_provision(leaf, request).decision is Decision.PERMIT


@given(provisions(max_depth=0), requests())
def test_permit_and_deny_mirror_on_full_match(leaf: Provision, request: UseRequest) -> None:
    """Where a permit applies, the same conditions as a deny apply too: a deny reaches at least as far."""
    permit = replace(leaf, decision=Decision.PERMIT)
    deny = replace(leaf, decision=Decision.DENY)

    if evaluate_provision(permit, request).decision is Decision.PERMIT:
        assert evaluate_provision(deny, request).decision is Decision.DENY


# FHIR Consents generated as JSON, read by the reader, then evaluated.

fhir_days = st.dates(min_value=date(2020, 1, 1), max_value=date(2035, 12, 31))


def fhir_provision(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    own = st.fixed_dictionaries(
        {"type": st.sampled_from(["permit", "deny"])},
        optional={
            "period": st.tuples(fhir_days, fhir_days).map(
                lambda pair: {"start": min(pair).isoformat(), "end": (max(pair) + timedelta(days=1)).isoformat()}
            ),
            "purpose": st.lists(st.sampled_from(["GRU", "HMB", "POA"]), min_size=1, max_size=2).map(
                lambda codes: [{"system": "http://purl.obolibrary.org/obo/duo", "code": code} for code in codes]
            ),
        },
    )
    if depth == 0:
        return own
    return st.builds(lambda fields, children: {**fields, **({"provision": children} if children else {})}, own, st.lists(fhir_provision(depth - 1), max_size=2))


def fhir_consent(provision: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "provision": provision,
    }


def _count(node: dict[str, Any]) -> int:
    return 1 + sum(_count(child) for child in node.get("provision", []))


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time(), KOREA_STANDARD_TIME).astimezone(UTC)


@settings(max_examples=150)
@given(fhir_provision(depth=2))
def test_reader_keeps_tree_shape(provision: dict[str, Any]) -> None:
    policy = read_fhir_consent(fhir_consent(provision))

    read_nodes = list(policy.root.walk())

    assert len(read_nodes) == _count(provision)
    assert [node.decision.value for node in read_nodes] == _decisions_preorder(provision)


def _decisions_preorder(node: dict[str, Any]) -> list[str]:
    return [node["type"]] + [value for child in node.get("provision", []) for value in _decisions_preorder(child)]


@given(fhir_days, fhir_days, st.integers(min_value=-2, max_value=2), st.integers(min_value=0, max_value=86399))
def test_date_period_includes_whole_days(first: date, second: date, offset_days: int, second_of_day: int) -> None:
    """A permit with a date period applies from the first second of its start day to the last second of its end day (KST)."""
    start, end = min(first, second), max(first, second)
    policy = read_fhir_consent(fhir_consent({"type": "permit", "period": {"start": start.isoformat(), "end": end.isoformat()}}))
    day = (start if offset_days <= 0 else end) + timedelta(days=offset_days)
    moment = _start_of_day(day) + timedelta(seconds=second_of_day)
    request = UseRequest(("HMB",), DatasetTerms("ds-a", "knuh"), "vendor-medvision", True, moment)

    result = evaluate(policy, request)

    expected = Decision.PERMIT if start <= day <= end else None
    assert result.decision is expected


@given(fhir_provision(depth=2), requests())
def test_reader_and_model_agree(provision: dict[str, Any], request: UseRequest) -> None:
    """Evaluating the read policy equals evaluating the same tree built by hand."""
    policy = read_fhir_consent(fhir_consent(provision))

    assert evaluate(policy, request).decision == evaluate(ConsentPolicy(_model(provision, "provision"), "fhir"), request).decision


def _model(node: dict[str, Any], path: str) -> Provision:
    period = None
    if "period" in node:
        start = _start_of_day(date.fromisoformat(node["period"]["start"]))
        end = _start_of_day(date.fromisoformat(node["period"]["end"]) + timedelta(days=1))
        period = Period(start, end)
    purposes = None
    if "purpose" in node:
        purposes = PurposeCondition(frozenset(item["code"] for item in node["purpose"]))
    children = tuple(_model(child, f"{path}.provision[{index}]") for index, child in enumerate(node.get("provision", [])))
    return Provision(Decision(node["type"]), path, period=period, purposes=purposes, provisions=children)
