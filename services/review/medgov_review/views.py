"""JSON views of applications for the reviewers' queue, the detail page and the dashboard."""

from datetime import datetime
from typing import Any

from medgov_review.domain.aggregate import Application, ReviewRules
from medgov_review.domain.boards import Panel
from medgov_review.domain.reporting import summarize_decision_times
from medgov_review.domain.sla import DAY


def queue_entry(application: Application, now: datetime, rules: ReviewRules) -> dict[str, Any]:
    sla = application.sla_status(now, rules)
    content = application.content
    return {
        "application_id": application.application_id,
        "title": content.title if content else application.draft.title,
        "applicant_institution": application.applicant_institution,
        "status": application.status.value,
        "home_region": application.home_region.value,
        "regions_involved": [region.value for region in application.regions],
        "review_round": application.review_round,
        "clock_running": sla.running if sla else False,
        "days_used": round(sla.days_used, 3) if sla else 0.0,
        "days_left": round(sla.days_left, 3) if sla else float(rules.window_days),
        "due_at": sla.due_at.isoformat() if sla and sla.due_at else None,
        "purpose_conflicts": len(application.purpose_report.conflicts) if application.purpose_report else 0,
        "boards": [_panel_summary(panel) for panel in application.panels],
    }


def application_detail(application: Application, now: datetime, rules: ReviewRules) -> dict[str, Any]:
    content = application.content
    return {
        **queue_entry(application, now, rules),
        "content": _content(application),
        "complete": content is not None,
        "purpose_findings": [
            {"dataset_id": item.dataset_id, "term": item.term, "kind": item.kind.value, "explanation": item.explanation}
            for item in (application.purpose_report.findings if application.purpose_report else ())
        ],
        "withdrawn_datasets": [item.dataset_id for item in application.datasets if item.withdrawn],
        "panels": [_panel_detail(panel) for panel in application.panels],
        "earlier_rounds": [[_panel_detail(panel) for panel in panels] for panels in application.earlier_panels],
        "decided_at": application.decided_at.isoformat() if application.decided_at else None,
        "days_in_state": {
            status.value: round(spent / DAY, 4) for status, spent in application.timeline.time_in_states(now).items()
        },
        "status_history": [
            {"status": change.status.value, "entered_at": change.entered_at.isoformat()}
            for change in application.timeline.changes
        ],
        "grants": [
            {
                "grant_id": grant.grant_id,
                "dataset_id": grant.dataset_id,
                "holder_institution": grant.holder_institution,
                "region": grant.region.value,
                "status": grant.status.value,
                "starts_at": grant.starts_at.isoformat(),
                "expires_at": grant.expires_at.isoformat(),
                "conditions": list(grant.conditions),
                "revocation_reason": grant.revocation_reason,
            }
            for grant in application.grants.values()
        ],
    }


def statistics(
    decision_days: list[float], status_counts: dict[str, int], seconds_in_states: dict[str, float]
) -> dict[str, Any]:
    summary = summarize_decision_times(decision_days)
    return {
        "decided": summary.count if summary else 0,
        "mean_days_to_decision": round(summary.mean_days, 3) if summary else None,
        "p90_days_to_decision": round(summary.p90_days, 3) if summary else None,
        "applications_by_status": status_counts,
        "mean_days_per_visit_in_state": {
            status: round(seconds / DAY.total_seconds(), 4) for status, seconds in seconds_in_states.items()
        },
    }


def _content(application: Application) -> dict[str, Any]:
    source = application.content or application.draft
    return {
        "principal_investigator": source.principal_investigator,
        "title": source.title,
        "purpose_text": source.purpose_text,
        "purpose_codes": list(source.purpose_codes),
        "dataset_ids": list(source.dataset_ids),
        "requested_start": source.requested_start.isoformat() if source.requested_start else None,
        "requested_end": source.requested_end.isoformat() if source.requested_end else None,
        "data_environment": source.data_environment.value if source.data_environment else None,
        "irb_document_ref": source.irb_document_ref,
    }


def _panel_summary(panel: Panel) -> dict[str, Any]:
    return {
        "region": panel.seat.region.value,
        "board": panel.seat.board.value,
        "votes_cast": len(panel.ballots),
        "decision": panel.decision.outcome.value if panel.decision else None,
    }


def _panel_detail(panel: Panel) -> dict[str, Any]:
    return {
        **_panel_summary(panel),
        "quorum": panel.seat.quorum,
        "eligible": panel.eligible,
        "recused": sorted(panel.recused),
        "ballots": [
            {
                "member_id": ballot.member_id,
                "vote": ballot.vote.value,
                "comments": list(ballot.comments),
                "conditions": list(ballot.conditions),
                "cast_at": ballot.cast_at.isoformat(),
            }
            for ballot in panel.ballots
        ],
        "conditions": list(panel.decision.conditions) if panel.decision else [],
        "reasons": list(panel.decision.reasons) if panel.decision else [],
    }
