"""Consent scopes (the contract's ConsentScope): checking them, turning them into policies, and summarizing policies as scopes.

A scope's lists restrict together: a scope with purposes [HMB] and
institutions [knuh] covers HMB research on data held by knuh. An empty list
does not restrict its dimension; `kind` names the dimension the patient chose
and must have a non-empty list unless it is `all_research`.
"""

from collections.abc import Collection, Iterable

from medgov_shared.contracts.events.consent import ConsentScope

from medgov_consent.domain import duo
from medgov_consent.domain.errors import ConsentRejected, RejectionReason
from medgov_consent.domain.policy import ConsentPolicy, Decision, Provision, UseRequest

_KIND_FIELDS = {"purposes": "purpose_codes", "datasets": "dataset_ids", "institutions": "institution_ids"}


def validate_scope(scope: ConsentScope, *, institution_ids: Collection[str], revocation: bool = False) -> None:
    """Raise ConsentRejected unless the scope names something usable and only known institutions."""
    list_field = _KIND_FIELDS.get(scope.kind)
    if list_field is not None and not getattr(scope, list_field):
        raise ConsentRejected(
            RejectionReason.NO_USABLE_SCOPE, f"scope kind {scope.kind!r} needs at least one entry in {list_field}", path=f"scope.{list_field}"
        )

    unknown = sorted(set(scope.institution_ids) - set(institution_ids))
    if unknown:
        raise ConsentRejected(
            RejectionReason.UNKNOWN_INSTITUTION, f"unknown institutions {', '.join(unknown)}", path="scope.institution_ids"
        )

    try:
        purposes, _ = duo.split_codes(scope.purpose_codes)
    except duo.UnknownDuoCode as error:
        raise ConsentRejected(RejectionReason.NO_USABLE_SCOPE, str(error), path="scope.purpose_codes") from error
    if revocation and scope.purpose_codes and not purposes:
        raise ConsentRejected(
            RejectionReason.NO_USABLE_SCOPE,
            "a revocation scope needs a research purpose (GRU, HMB, DS, POA, NRES), not only DUO modifiers",
            path="scope.purpose_codes",
        )


def policy_from_scope(scope: ConsentScope) -> ConsentPolicy:
    """Return the policy of a consent the patient gave on the dashboard: one permit over the scope."""
    root = Provision(
        decision=Decision.PERMIT,
        purposes=duo.PurposeCondition.from_codes(scope.purpose_codes) if scope.purpose_codes else None,
        dataset_ids=frozenset(scope.dataset_ids) or None,
        holder_ids=frozenset(scope.institution_ids) or None,
    )
    return ConsentPolicy(root=root, source="dashboard")


def scope_covers(scope: ConsentScope, request: UseRequest) -> bool:
    """Tell whether a revoked scope reaches a request; any overlap counts, as for a deny."""
    purposes, _ = duo.split_codes(scope.purpose_codes)
    reaches_purpose = not purposes or duo.PurposeCondition(purposes=purposes).denies(request.research_purposes)
    reaches_dataset = not scope.dataset_ids or request.dataset.dataset_id in scope.dataset_ids
    reaches_holder = not scope.institution_ids or request.dataset.holder_id in scope.institution_ids
    return reaches_purpose and reaches_dataset and reaches_holder


def permitted_scope(policy: ConsentPolicy) -> ConsentScope | None:
    """Summarize what a policy permits as a scope, or None when it permits nothing.

    The summary is an upper bound: it joins every permit that can apply and
    leaves out periods, data classes and the holes that denies cut, because a
    flat scope cannot express them.
    """
    permits = list(_reachable_permits(policy.root, inherited=_Dimensions()))
    if not permits:
        return None
    purposes = _union(item.purposes for item in permits)
    dataset_ids = _union(item.dataset_ids for item in permits)
    institution_ids = _union(item.holder_ids for item in permits)
    return ConsentScope(
        kind=_kind(purposes, dataset_ids, institution_ids),
        purpose_codes=tuple(sorted(purposes or ())),
        dataset_ids=tuple(sorted(dataset_ids or ())),
        institution_ids=tuple(sorted(institution_ids or ())),
    )


def describe_scope(scope: ConsentScope) -> str:
    parts = [
        f"purposes {', '.join(scope.purpose_codes)}" if scope.purpose_codes else "all research purposes",
        f"datasets {', '.join(scope.dataset_ids)}" if scope.dataset_ids else "all datasets",
        f"holders {', '.join(scope.institution_ids)}" if scope.institution_ids else "all holders",
    ]
    return ", ".join(parts)


class _Dimensions:
    """The restrictions in force at one provision: its own, or else its nearest ancestor's."""

    def __init__(
        self,
        purposes: frozenset[str] | None = None,
        dataset_ids: frozenset[str] | None = None,
        holder_ids: frozenset[str] | None = None,
    ) -> None:
        self.purposes = purposes
        self.dataset_ids = dataset_ids
        self.holder_ids = holder_ids

    def narrowed_by(self, provision: Provision) -> "_Dimensions":
        own_purposes = provision.purposes.purposes if provision.purposes else None
        return _Dimensions(
            purposes=duo.intersect(self.purposes, own_purposes),
            dataset_ids=_intersect(self.dataset_ids, provision.dataset_ids),
            holder_ids=_intersect(self.holder_ids, provision.holder_ids),
        )


def _reachable_permits(provision: Provision, inherited: _Dimensions) -> Iterable[_Dimensions]:
    if provision.inapplicable:
        return
    narrowed = inherited.narrowed_by(provision)
    if frozenset() in (narrowed.purposes, narrowed.dataset_ids, narrowed.holder_ids):
        return  # restrictions that exclude each other: nothing below can apply
    if provision.decision is Decision.PERMIT:
        yield narrowed
    for child in provision.provisions:
        yield from _reachable_permits(child, narrowed)


def _intersect(first: frozenset[str] | None, second: frozenset[str] | None) -> frozenset[str] | None:
    if first is None:
        return second
    if second is None:
        return first
    return first & second


def _union(values: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    joined: set[str] = set()
    for value in values:
        if value is None:
            return None
        joined |= value
    return frozenset(joined)


def _kind(purposes: frozenset[str] | None, dataset_ids: frozenset[str] | None, institution_ids: frozenset[str] | None) -> str:
    if dataset_ids:
        return "datasets"
    if purposes:
        return "purposes"
    if institution_ids:
        return "institutions"
    return "all_research"
