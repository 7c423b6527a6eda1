"""The consent history of one subject: consents, revocations, parked revocations, and the decision they add up to.

Rules, in the order a reader needs them:

- The latest directive that speaks to a use decides it. Directives are the
  subject's consents (from their `granted_at`) and revocations (from their
  `effective_at`); ties go to the one recorded later. So grant, revoke, grant
  ends permitted, and a consent given again after a revocation admits the
  subject to uses decided after it only.
- A revocation withdraws what its scope names, or, without a scope, what the
  revoked consent permitted; inside that scope it denies. A revocation never
  takes effect before the consent it revokes was given, so it always ends it.
- A revocation whose consent is not recorded yet is parked and applied when
  that consent arrives; it is never dropped.
- A standalone opt-out (the dashboard's revoke button for a subject without a
  consent in force) names no consent and denies its scope at once.
- Recording the same consent or revocation again changes nothing, and an
  older version of a consent that arrives after a newer one is ignored.

A history is immutable; each change returns a new history and what changed.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.contracts.types import LegalBasis

from medgov_consent.domain.evaluate import evaluate
from medgov_consent.domain.policy import ConsentPolicy, Decision, UseRequest
from medgov_consent.domain.scope import describe_scope, permitted_scope, scope_covers

Channel = Literal["fhir", "dashboard"]


@dataclass(frozen=True)
class ConsentRecord:
    """One recorded consent; `withdrawn_at` is set when a revocation without scope ended all of it."""

    consent_id: str
    institution_id: str
    channel: Channel
    policy: ConsentPolicy
    granted_at: datetime
    sequence: int = 0
    withdrawn_at: datetime | None = None
    # When the first version of this consent id was granted; None is read as `granted_at`.
    first_granted_at: datetime | None = None

    @property
    def first_granted(self) -> datetime:
        return self.first_granted_at or self.granted_at

    def in_force(self, at: datetime) -> bool:
        return self.granted_at <= at and (self.withdrawn_at is None or at < self.withdrawn_at)

    def same_content(self, other: "ConsentRecord") -> bool:
        return (self.institution_id, self.channel, self.policy, self.granted_at) == (
            other.institution_id,
            other.channel,
            other.policy,
            other.granted_at,
        )


@dataclass(frozen=True)
class Revocation:
    """A request to revoke a consent; `scope` None means all the consent permitted.

    A `standalone` revocation is an opt-out that revokes no recorded consent:
    `consent_id` is its own id and `scope` None means all research.
    """

    consent_id: str
    institution_id: str
    channel: Channel
    effective_at: datetime
    scope: ConsentScope | None = None
    standalone: bool = False

    def may_withdraw(self, consent: "ConsentRecord") -> bool:
        """Tell whether this revocation may withdraw `consent`: the patient's own (dashboard) always, a hospital's only its own consents."""
        return self.channel != "fhir" or consent.institution_id == self.institution_id


@dataclass(frozen=True)
class AppliedRevocation:
    """A revocation matched to its consent.

    `denied` is what it denies from `effective_at` on: its own scope, or what
    the consent permitted; None when the consent permitted nothing (an
    opt-out), whose revocation only ends that opt-out.
    """

    revocation: Revocation
    denied: ConsentScope | None
    effective_at: datetime
    sequence: int

    @property
    def consent_id(self) -> str:
        return self.revocation.consent_id


class ChangeKind(StrEnum):
    RECORDED = "recorded"
    UPDATED = "updated"
    DUPLICATE = "duplicate"
    STALE = "stale"
    APPLIED = "applied"
    PARKED = "parked"
    # A revocation of all of a consent that an earlier revocation already ended.
    ALREADY_WITHDRAWN = "already_withdrawn"


@dataclass(frozen=True)
class ConsentChange:
    """The outcome of recording a consent.

    `applied` lists the parked revocations that took effect with it.
    `not_applied` lists those parked for its id by a hospital other than the
    one that recorded it. They stay parked and never take effect.
    """

    kind: ChangeKind
    record: ConsentRecord
    previous: ConsentRecord | None = None
    applied: tuple[AppliedRevocation, ...] = ()
    not_applied: tuple[Revocation, ...] = ()


@dataclass(frozen=True)
class RevocationChange:
    kind: ChangeKind
    applied: AppliedRevocation | None = None


@dataclass(frozen=True)
class SubjectDecision:
    """The decision the subject's directives give for one use; `decision` is None when none of them applies."""

    decision: Decision | None
    reason: str
    consent_id: str | None = None
    by_revocation: bool = False

    def admits(self, legal_basis: LegalBasis) -> bool:
        """Tell whether the subject may be in a use of a dataset with this legal basis.

        Without any applicable directive, the subject is admitted unless the
        dataset needs consent: PIPA lets pseudonymized data be processed for
        scientific research without consent, and anonymous data is not
        personal information.
        """
        if self.decision is not None:
            return self.decision is Decision.PERMIT
        return legal_basis is not LegalBasis.CONSENT


@dataclass(frozen=True)
class ConsentHistory:
    subject: str
    consents: tuple[ConsentRecord, ...] = ()
    revocations: tuple[AppliedRevocation, ...] = ()
    parked: tuple[Revocation, ...] = ()
    next_sequence: int = 0

    def consent(self, consent_id: str) -> ConsentRecord | None:
        return next((record for record in self.consents if record.consent_id == consent_id), None)

    def record_consent(
        self, consent_id: str, *, institution_id: str, channel: Channel, policy: ConsentPolicy, granted_at: datetime
    ) -> tuple["ConsentHistory", ConsentChange]:
        """Record a consent or a new version of it, then apply revocations parked for it."""
        existing = self.consent(consent_id)
        candidate = ConsentRecord(
            consent_id, institution_id, channel, policy, granted_at, sequence=self.next_sequence,
            first_granted_at=existing.first_granted if existing is not None else granted_at,
        )
        if existing is not None and existing.same_content(candidate):
            return self, ConsentChange(ChangeKind.DUPLICATE, existing, existing)
        if existing is not None and granted_at < existing.granted_at:
            return self, ConsentChange(ChangeKind.STALE, existing, existing)

        if existing is not None and existing.withdrawn_at is not None and existing.withdrawn_at > granted_at:
            candidate = replace(candidate, withdrawn_at=existing.withdrawn_at)
        others = tuple(record for record in self.consents if record.consent_id != consent_id)
        history = replace(self, consents=others + (candidate,), next_sequence=self.next_sequence + 1)
        history, applied = history._apply_parked(consent_id)
        not_applied = tuple(item for item in history.parked if item.consent_id == consent_id)

        kind = ChangeKind.UPDATED if existing is not None else ChangeKind.RECORDED
        return history, ConsentChange(kind, history.consent(consent_id) or candidate, existing, applied, not_applied)

    def record_revocation(self, revocation: Revocation) -> tuple["ConsentHistory", RevocationChange]:
        """Apply a revocation to its consent, or park it until that consent is recorded."""
        if self._knows(revocation):
            return self, RevocationChange(ChangeKind.DUPLICATE)
        if revocation.standalone:
            applied = AppliedRevocation(revocation, revocation.scope or ConsentScope(), revocation.effective_at, self.next_sequence)
            history = replace(self, revocations=self.revocations + (applied,), next_sequence=self.next_sequence + 1)
            return history, RevocationChange(ChangeKind.APPLIED, applied)
        consent = self.consent(revocation.consent_id)
        if consent is None:
            return replace(self, parked=self.parked + (revocation,)), RevocationChange(ChangeKind.PARKED)
        ended = consent.withdrawn_at
        if revocation.scope is None and ended is not None and ended <= max(revocation.effective_at, consent.first_granted):
            # Applying it would deny again what the consent permitted and so override a newer consent.
            return self, RevocationChange(ChangeKind.ALREADY_WITHDRAWN)
        history, applied = self._apply(revocation)
        return history, RevocationChange(ChangeKind.APPLIED, applied)

    def decide(self, request: UseRequest) -> SubjectDecision:
        """Return the decision of the latest directive in force at `request.at` that speaks to the use."""
        silent: list[str] = []
        for directive in self._directives_at(request.at):
            if isinstance(directive, AppliedRevocation):
                if directive.denied is not None and scope_covers(directive.denied, request):
                    return SubjectDecision(Decision.DENY, _revocation_reason(directive), directive.consent_id, by_revocation=True)
                continue
            outcome = evaluate(directive.policy, request)
            if outcome.decision is not None:
                return SubjectDecision(outcome.decision, f"consent {directive.consent_id}: {outcome.reason}", directive.consent_id)
            silent.append(f"consent {directive.consent_id}: {outcome.reason}")
        detail = "; ".join(silent) if silent else "no consent or revocation on record"
        return SubjectDecision(None, f"no consent of the subject applies ({detail})")

    def _directives_at(self, at: datetime) -> list[ConsentRecord | AppliedRevocation]:
        in_force: list[tuple[datetime, int, ConsentRecord | AppliedRevocation]] = [
            (record.granted_at, record.sequence, record) for record in self.consents if record.in_force(at)
        ]
        in_force += [
            (item.effective_at, item.sequence, item)
            for item in self.revocations
            if item.effective_at <= at and not self._superseded(item)
        ]
        in_force.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        return [entry[2] for entry in in_force]

    def _superseded(self, item: AppliedRevocation) -> bool:
        """Tell whether `item` revoked all of a consent that an earlier revocation had already ended.

        record_revocation turns such a revocation away. One that arrived
        before the earlier revocation was applied, and it stays on record, so
        decisions leave it out and the order of arrival does not change them.
        """
        if item.revocation.scope is not None or item.revocation.standalone:
            return False
        consent = self.consent(item.consent_id)
        return consent is not None and consent.withdrawn_at is not None and consent.withdrawn_at < item.effective_at

    def _knows(self, revocation: Revocation) -> bool:
        return revocation in self.parked or any(item.revocation == revocation for item in self.revocations)

    def _apply_parked(self, consent_id: str) -> tuple["ConsentHistory", tuple[AppliedRevocation, ...]]:
        """Apply the revocations parked for the consent that may withdraw it; the others stay parked."""
        consent = self.consent(consent_id)
        assert consent is not None, "apply parked revocations after recording their consent"
        waiting = sorted(
            (item for item in self.parked if item.consent_id == consent_id and item.may_withdraw(consent)),
            key=lambda item: item.effective_at,
        )
        history = replace(self, parked=tuple(item for item in self.parked if item not in waiting))
        applied: list[AppliedRevocation] = []
        for revocation in waiting:
            history, result = history._apply(revocation)
            applied.append(result)
        return history, tuple(applied)

    def _apply(self, revocation: Revocation) -> tuple["ConsentHistory", AppliedRevocation]:
        consent = self.consent(revocation.consent_id)
        if consent is None:
            raise LookupError(f"consent {revocation.consent_id} is not recorded; park the revocation instead")

        # A revocation never precedes its consent's first version. One dated before the
        # current version ends an earlier version only, so the current one stays in force.
        effective_at = max(revocation.effective_at, consent.first_granted)
        denied = revocation.scope if revocation.scope is not None else permitted_scope(consent.policy)
        applied = AppliedRevocation(revocation, denied, effective_at, self.next_sequence)

        consents = self.consents
        if revocation.scope is None and effective_at >= consent.granted_at:
            ended = replace(consent, withdrawn_at=min(effective_at, consent.withdrawn_at or effective_at))
            consents = tuple(ended if record.consent_id == consent.consent_id else record for record in consents)
        history = replace(
            self, consents=consents, revocations=self.revocations + (applied,), next_sequence=self.next_sequence + 1
        )
        return history, applied


def _revocation_reason(applied: AppliedRevocation) -> str:
    scope = describe_scope(applied.denied) if applied.denied else "nothing"
    return f"consent {applied.consent_id} revoked from {applied.effective_at.isoformat()} for {scope}"
