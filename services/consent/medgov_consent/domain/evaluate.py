"""Evaluation of one consent policy: does it permit, deny, or not speak to a data use?

A provision applies when the request meets all of its conditions. Inside an
applying provision, the nested provisions that apply decide instead of it;
when nested siblings disagree, deny wins. A provision that does not apply
makes the policy silent (not applicable) for that request, whatever its
nested provisions contain, because they only refine it.

Conditions read differently for permits and denies where the request is only
partly inside the condition. A permit applies only when the whole request lies
inside it (every purpose covered, every data class of the dataset listed). A
deny applies as soon as any part overlaps it. Facts the platform lacks, such
as the classes of a dataset whose registration it has not seen, count against
a permit and for a deny.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from medgov_consent.domain.policy import ConsentPolicy, DataClass, Decision, Provision, UseRequest


@dataclass(frozen=True)
class Evaluation:
    """The outcome of a policy for one request; `decision` None means the policy does not apply.

    `path` names the provision that decided, or the one whose condition failed.
    """

    decision: Decision | None
    path: str | None
    reason: str


def evaluate(policy: ConsentPolicy, request: UseRequest) -> Evaluation:
    return evaluate_provision(policy.root, request)


def evaluate_provision(provision: Provision, request: UseRequest) -> Evaluation:
    mismatch = find_mismatch(provision, request)
    if mismatch is not None:
        return Evaluation(None, provision.path, f"{provision.path} does not apply: {mismatch}")

    decided = [result for result in (evaluate_provision(child, request) for child in provision.provisions) if result.decision]
    denials = [result for result in decided if result.decision is Decision.DENY]
    if denials:
        return denials[0]
    if decided:
        return decided[0]

    verb = "permitted" if provision.decision is Decision.PERMIT else "denied"
    return Evaluation(provision.decision, provision.path, f"{verb} by {provision.path}")


def find_mismatch(provision: Provision, request: UseRequest) -> str | None:
    """Return why `provision` does not apply to `request`, or None when it applies."""
    for check in _CHECKS:
        mismatch = check(provision, request)
        if mismatch is not None:
            return mismatch
    return None


def _check_applicable(provision: Provision, request: UseRequest) -> str | None:
    return provision.inapplicable


def _check_period(provision: Provision, request: UseRequest) -> str | None:
    if provision.period is None or provision.period.contains(request.at):
        return None
    return f"{_instant(request.at)} is outside its period {provision.period.describe()}"


def _check_purposes(provision: Provision, request: UseRequest) -> str | None:
    condition = provision.purposes
    if condition is None:
        return None
    requested = ", ".join(sorted(request.research_purposes))
    if provision.decision is Decision.PERMIT:
        if condition.permits(request.research_purposes, for_profit=request.recipient_for_profit):
            return None
        return f"purposes {requested} of a {'for-profit' if request.recipient_for_profit else 'non-profit'} recipient are not within {condition.describe()}"
    if condition.denies(request.research_purposes):
        return None
    return f"purposes {requested} do not overlap {condition.describe()}"


def _check_dataset(provision: Provision, request: UseRequest) -> str | None:
    return _check_member("dataset", request.dataset.dataset_id, provision.dataset_ids)


def _check_holder(provision: Provision, request: UseRequest) -> str | None:
    return _check_member("data holder", request.dataset.holder_id, provision.holder_ids)


def _check_recipient(provision: Provision, request: UseRequest) -> str | None:
    return _check_member("recipient", request.recipient_id, provision.recipient_ids)


def _check_member(label: str, value: str, allowed: frozenset[str] | None) -> str | None:
    if allowed is None or value in allowed:
        return None
    return f"{label} {value} is not one of {', '.join(sorted(allowed)) or 'no platform party'}"


def _check_data_classes(provision: Provision, request: UseRequest) -> str | None:
    if provision.data_classes is None:
        return None
    content = request.dataset.content
    known = content.data_classes if content else frozenset()
    named_kinds = {item.kind for item in provision.data_classes}
    relevant = frozenset(item for item in known if item.kind in named_kinds)
    listed = _join(provision.data_classes)

    if provision.decision is Decision.DENY:
        if content is None or known & provision.data_classes:
            return None
        return f"dataset {request.dataset.dataset_id} holds none of the classes {listed}"

    if not relevant:
        return f"data classes of dataset {request.dataset.dataset_id} are not known to be within {listed}"
    outside = relevant - provision.data_classes
    if outside:
        return f"dataset {request.dataset.dataset_id} also holds {_join(outside)}, outside {listed}"
    return None


def _check_content_codes(provision: Provision, request: UseRequest) -> str | None:
    if provision.content_codes is None:
        return None
    content = request.dataset.content
    known = content.content_codes if content else frozenset()
    listed = ", ".join(sorted(provision.content_codes))

    if provision.decision is Decision.DENY:
        if content is None or known & provision.content_codes:
            return None
        return f"dataset {request.dataset.dataset_id} holds none of the codes {listed}"

    if not known or not known <= provision.content_codes:
        return f"coded content of dataset {request.dataset.dataset_id} is not known to be within {listed}"
    return None


def _check_data_period(provision: Provision, request: UseRequest) -> str | None:
    window = provision.data_period
    if window is None:
        return None
    content = request.dataset.content
    first = content.date_start if content else None
    last = content.date_end if content else None
    dates_known = first is not None and last is not None

    if provision.decision is Decision.DENY:
        if not dates_known or window.overlaps_dates(first, last):  # type: ignore[arg-type]
            return None
        return f"clinical dates {first}..{last} of dataset {request.dataset.dataset_id} lie outside {window.describe()}"

    if dates_known and window.covers_dates(first, last):  # type: ignore[arg-type]
        return None
    return f"clinical dates of dataset {request.dataset.dataset_id} are not known to lie within {window.describe()}"


_CHECKS: tuple[Callable[[Provision, UseRequest], str | None], ...] = (
    _check_applicable,
    _check_period,
    _check_purposes,
    _check_dataset,
    _check_holder,
    _check_recipient,
    _check_data_classes,
    _check_content_codes,
    _check_data_period,
)


def _join(classes: frozenset[DataClass]) -> str:
    return ", ".join(str(item) for item in sorted(classes))


def _instant(moment: datetime) -> str:
    return moment.isoformat()
