"""Outgoing events: the contract payload for each domain outcome the service publishes.

Event ids are UUIDv5 of the fact they report (e.g. the payout id of a
disbursement) and the region, so a rebuild or a replay into a fresh database
publishes the same ids and consumers deduplicate them.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.grants import (
    FundAllocated,
    GrantDisbursed,
    MilestoneReached,
    PoolExhausted,
    SubsidyAwarded,
    ToolGrantAwarded,
)

from medgov_grants.domain.fund import Allocation, InstitutionDirectory, Outcome
from medgov_grants.domain.ledger import Disbursed, PayoutWaiting
from medgov_grants.domain.milestones import MilestoneCrossed
from medgov_grants.domain.subsidies import SubsidyChange
from medgov_grants.domain.tool_grants import ToolGrantAward

# Fixed namespace of grants event ids; changing it would give every replayed fact a new id.
EVENT_ID_NAMESPACE = uuid.UUID("6f1d8c1e-4f3a-5b8e-9a51-3c2d7f0e9b44")


@dataclass(frozen=True)
class OutgoingEvent:
    payload: EventPayload
    event_id: uuid.UUID
    time: datetime


def outgoing_events(outcomes: list[Outcome], *, directory: InstitutionDirectory, region: str) -> list[OutgoingEvent]:
    """Map outcomes to events in order; outcomes without a contract event (held, cancelled ...) map to none."""
    events = []
    for outcome in outcomes:
        mapped = _payload(outcome, directory)
        if mapped is not None:
            payload, identity, time = mapped
            event_id = uuid.uuid5(EVENT_ID_NAMESPACE, f"{region}:{payload.event_type}:{identity}")
            events.append(OutgoingEvent(payload, event_id, time))
    return events


def _payload(outcome: Outcome, directory: InstitutionDirectory) -> tuple[EventPayload, str, datetime] | None:
    match outcome:
        case Allocation():
            payload = FundAllocated(
                fund_id=outcome.fund_id,
                total_krw=outcome.total_krw,
                pools_krw=outcome.pools_krw,
                allocated_at=outcome.allocated_at,
            )
            return payload, outcome.fund_id, outcome.allocated_at
        case SubsidyChange():
            return _subsidy_awarded(outcome), outcome.award_id, outcome.awarded_at
        case ToolGrantAward():
            return _tool_grant_awarded(outcome), outcome.award_id, outcome.awarded_at
        case MilestoneCrossed():
            payload = MilestoneReached(
                institution_id=outcome.institution_id,
                milestone=outcome.milestone.transactions,
                transactions_counted=outcome.transactions_counted,
                reached_at=outcome.reached_at,
            )
            return payload, outcome.milestone_id, outcome.reached_at
        case Disbursed():
            return _grant_disbursed(outcome, directory), outcome.request.payout_id, outcome.posting.posted_at
        case PayoutWaiting():
            payload = PoolExhausted(
                institution_id=outcome.request.institution_id,
                pool=outcome.request.pool,
                requested_krw=outcome.request.amount_krw,
                available_krw=outcome.available_krw,
                reference_id=outcome.request.reference_id,
                detected_at=outcome.detected_at,
            )
            return payload, outcome.request.payout_id, outcome.detected_at
    return None


def _subsidy_awarded(change: SubsidyChange) -> SubsidyAwarded:
    return SubsidyAwarded(
        institution_id=change.institution_id,
        award_id=change.award_id,
        dataset_id=change.dataset_id,
        amount_krw=change.amount_krw,
        completeness_score=change.completeness_score,
        record_count=change.record_count,
        awarded_at=change.awarded_at,
    )


def _tool_grant_awarded(award: ToolGrantAward) -> ToolGrantAwarded:
    return ToolGrantAwarded(
        institution_id=award.vendor_id,
        award_id=award.award_id,
        amount_krw=award.amount_krw,
        tranches_krw=tuple(tranche.amount_krw for tranche in award.tranches),
        awarded_by=award.awarded_by,
        awarded_at=award.awarded_at,
    )


def _grant_disbursed(disbursed: Disbursed, directory: InstitutionDirectory) -> GrantDisbursed:
    request = disbursed.request
    return GrantDisbursed(
        institution_id=request.institution_id,
        disbursement_id=request.payout_id,
        pool=request.pool,
        amount_krw=request.amount_krw,
        reason=request.reason,
        reference_id=request.reference_id,
        region=directory(request.institution_id).region,
        disbursed_at=disbursed.posting.posted_at,
    )
