"""The application aggregate: every command an application accepts and the events each one causes.

Each command takes the current instant and returns the events it caused, in
order. A command that raises a ReviewError has changed nothing, because every
check runs before the first change.

Before any command changes state it brings the SLA clock up to `now`, so a
warning whose threshold passed before a decision is emitted before that
decision, and never after it.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from medgov_shared.contracts.base import EventPayload
from medgov_shared.contracts.events.review import (
    AccessExpired,
    AccessGranted,
    AccessRevoked,
    ApplicationApproved,
    ApplicationRejected,
    ApplicationSubmitted,
    DrbDecisionRecorded,
    IrbDecisionRecorded,
    ReviewSlaBreached,
    ReviewSlaWarning,
    ReviewStarted,
    RevisionRequested,
)
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.types import Board, Region, Vote

from medgov_review.domain.application import ApplicationStatus, StatusTimeline
from medgov_review.domain.boards import Ballot, JointOutcome, Panel, PanelDecision, joint_outcome, merge_texts
from medgov_review.domain.errors import (
    DecisionAlreadyMade,
    GrantNotFound,
    InvalidTransition,
    InvalidVote,
    NotBoardMember,
    NotUnderReview,
    WrongApplicant,
    reject_personal_data_in,
)
from medgov_review.domain.governance import Governance
from medgov_review.domain.grants import AccessGrant, access_period, grant_id_for
from medgov_review.domain.purpose import DatasetTerms, FindingKind, Purpose, PurposeReport, match_purpose
from medgov_review.domain.screening import ApplicationContent, ApplicationDraft, Screening, screen
from medgov_review.domain.sla import SlaAlert, SlaCalendar, SlaClock, alerts_due, as_days, next_alert_at

# Fixed namespace so that a board decision has the same id however often it is recomputed.
_DECISION_NAMESPACE = uuid.UUID("1c9a7e44-5b1d-4f0e-8d6a-3e2b9f7a0c58")


@dataclass(frozen=True)
class ReviewRules:
    """Everything a command needs besides the application: window, calendar, boards and council."""

    governance: Governance
    calendar: SlaCalendar = field(default_factory=SlaCalendar)
    window_days: int = 20


@dataclass(frozen=True)
class SlaStatus:
    running: bool
    days_used: float
    days_left: float
    due_at: datetime | None


@dataclass
class Application:
    application_id: str
    home_region: Region
    applicant_institution: str | None
    draft: ApplicationDraft
    timeline: StatusTimeline = field(default_factory=StatusTimeline)
    content: ApplicationContent | None = None
    regions: tuple[Region, ...] = ()
    datasets: tuple[DatasetTerms, ...] = ()
    purpose_report: PurposeReport | None = None
    review_round: int = 0
    panels: list[Panel] = field(default_factory=list)
    # Panels of rounds that ended in a request for revision, oldest first, kept for the record.
    earlier_panels: list[list[Panel]] = field(default_factory=list)
    clock: SlaClock | None = None
    fired_alerts: set[SlaAlert] = field(default_factory=set)
    decided_at: datetime | None = None
    grants: dict[str, AccessGrant] = field(default_factory=dict)

    @property
    def status(self) -> ApplicationStatus:
        current = self.timeline.current
        assert current is not None, "an application always has a status once submitted"
        return current

    # -- submission -----------------------------------------------------------------

    @classmethod
    def submit(
        cls,
        application_id: str,
        draft: ApplicationDraft,
        *,
        catalog: Mapping[str, DatasetTerms],
        rules: ReviewRules,
        received_in: Region,
        now: datetime,
    ) -> tuple["Application", list[EventPayload]]:
        """Screen a new application; start the review if complete, else ask for the missing items.

        `received_in` is the home region used while the draft names no applicant institution.
        """
        screening = screen(draft, catalog, now)
        institution = (draft.applicant_institution or "").strip() or None
        application = cls(
            application_id=application_id,
            home_region=_region_of(institution, received_in),
            applicant_institution=institution,
            draft=draft,
        )
        return application, application._accept(screening, catalog, rules, now)

    def resubmit(
        self, draft: ApplicationDraft, *, catalog: Mapping[str, DatasetTerms], rules: ReviewRules, now: datetime
    ) -> list[EventPayload]:
        """Screen a revised application that waits for the applicant; the clock resumes if it is complete."""
        if self.status is not ApplicationStatus.AWAITING_REVISION:
            raise InvalidTransition(
                f"application {self.application_id} is {self.status}; only an application awaiting "
                "revision can be resubmitted",
                application_id=self.application_id,
            )
        institution = (draft.applicant_institution or "").strip() or None
        if self.applicant_institution and institution and institution != self.applicant_institution:
            raise WrongApplicant(
                f"application {self.application_id} belongs to {self.applicant_institution}, not {institution}",
                application_id=self.application_id,
            )
        screening = screen(draft, catalog, now)
        events = self.check_clock(now, rules)
        self.draft = draft
        if institution:
            self.applicant_institution = institution
            self.home_region = _region_of(institution, self.home_region)
        return events + self._accept(screening, catalog, rules, now)

    def _accept(
        self, screening: Screening, catalog: Mapping[str, DatasetTerms], rules: ReviewRules, now: datetime
    ) -> list[EventPayload]:
        if screening.content is None:
            self.timeline.enter(ApplicationStatus.AWAITING_REVISION, now)
            return [
                RevisionRequested(
                    application_id=self.application_id,
                    requested_by="screening",
                    missing_items=tuple(item.item for item in screening.missing),
                    comments=tuple(f"{item.item}: {item.explanation}" for item in screening.missing),
                    requested_at=now,
                )
            ]
        return self._start_round(screening.content, catalog, rules, now)

    def _start_round(
        self, content: ApplicationContent, catalog: Mapping[str, DatasetTerms], rules: ReviewRules, now: datetime
    ) -> list[EventPayload]:
        self.content = content
        self.datasets = tuple(catalog[item] for item in content.dataset_ids)
        self.regions = _regions_involved(self.home_region, self.datasets)
        self.purpose_report = match_purpose(_purpose_of(content), self.datasets)
        self.review_round += 1
        if self.panels:
            self.earlier_panels.append(self.panels)
        self.panels = [
            Panel.open(rules.governance.roster.seat(region, board), content.applicant_institution)
            for region in self.regions
            for board in (Board.IRB, Board.DRB)
        ]
        self.clock = self.clock.resume(now) if self.clock else SlaClock(started_at=now, window_days=rules.window_days)
        self.timeline.enter(ApplicationStatus.UNDER_REVIEW, now)
        return [self._submitted_event(content, now), self._review_started_event(rules)]

    # -- votes and decisions -------------------------------------------------------

    def record_vote(
        self,
        member_id: str,
        board: Board,
        vote: Vote,
        *,
        comments: tuple[str, ...] = (),
        conditions: tuple[str, ...] = (),
        rules: ReviewRules,
        now: datetime,
    ) -> list[EventPayload]:
        """Record one member's ballot and return the decisions it settles.

        Raises NotBoardMember, DecisionAlreadyMade, NotUnderReview, MemberRecused,
        DuplicateVote or InvalidVote.
        """
        panel = self._panel_for(member_id, board, rules)
        ballot = Ballot(member_id=member_id, vote=vote, comments=comments, conditions=conditions, cast_at=now)
        panel.check(ballot)
        events = self.check_clock(now, rules)
        decision = panel.cast(ballot)
        if decision is not None:
            events += self._settle(panel, decision, rules, now)
        return events

    def _panel_for(self, member_id: str, board: Board, rules: ReviewRules) -> Panel:
        seats = [seat for seat in rules.governance.roster.seats_of(member_id) if seat.board == board]
        reviewing = [seat for seat in seats if seat.region in self.regions]
        if not reviewing:
            raise NotBoardMember(
                f"{member_id} is not a member of the {board} of any region reviewing application "
                f"{self.application_id}",
                member_id=member_id,
            )
        if not self.status.open:
            raise DecisionAlreadyMade(
                f"application {self.application_id} was already {self.status}; no further votes are taken",
                application_id=self.application_id,
            )
        if self.status is ApplicationStatus.AWAITING_REVISION:
            raise NotUnderReview(
                f"application {self.application_id} waits for the applicant's revision; "
                "votes resume after resubmission",
                application_id=self.application_id,
            )
        region = reviewing[0].region
        return next(item for item in self.panels if item.seat.region == region and item.seat.board == board)

    def _settle(self, panel: Panel, decision: PanelDecision, rules: ReviewRules, now: datetime) -> list[EventPayload]:
        events: list[EventPayload] = [self._decision_event(decision)]
        outcome = joint_outcome(self.panels)
        if outcome is JointOutcome.REJECTED:
            events += self._reject(decision, now, rules)
        elif outcome is JointOutcome.REVISION:
            events += self._send_back(decision, now)
        elif outcome is JointOutcome.APPROVED:
            events += self._approve(now, rules)
        return events

    def _reject(self, decision: PanelDecision, now: datetime, rules: ReviewRules) -> list[EventPayload]:
        self._close(ApplicationStatus.REJECTED, now)
        assert self.content is not None
        return [
            ApplicationRejected(
                application_id=self.application_id,
                applicant_institution=self.content.applicant_institution,
                decision_ids=(self.decision_id(decision.region, decision.board),),
                reasons=decision.reasons,
                decided_at=now,
                days_used=self._days_used(now, rules),
            )
        ]

    def _send_back(self, decision: PanelDecision, now: datetime) -> list[EventPayload]:
        assert self.clock is not None
        self.clock = self.clock.stop(now)
        self.timeline.enter(ApplicationStatus.AWAITING_REVISION, now)
        return [
            RevisionRequested(
                application_id=self.application_id,
                requested_by=decision.board.value,  # type: ignore[arg-type]
                missing_items=(),
                comments=decision.reasons,
                requested_at=now,
            )
        ]

    def _approve(self, now: datetime, rules: ReviewRules) -> list[EventPayload]:
        self._close(ApplicationStatus.APPROVED, now)
        assert self.content is not None
        conditions = self.approval_conditions()
        approved = ApplicationApproved(
            application_id=self.application_id,
            applicant_institution=self.content.applicant_institution,
            decision_ids=tuple(self.decision_id(item.seat.region, item.seat.board) for item in self.panels),
            conditions=conditions,
            decided_at=now,
            days_used=self._days_used(now, rules),
        )
        return [approved, *self._issue_grants(conditions, now)]

    def _close(self, status: ApplicationStatus, now: datetime) -> None:
        assert self.clock is not None
        self.clock = self.clock.stop(now)
        self.decided_at = now
        self.timeline.enter(status, now)

    def approval_conditions(self) -> tuple[str, ...]:
        """Merge the conditions of every panel that approved, home region first."""
        return merge_texts(item.decision.conditions for item in self.panels if item.decision is not None)

    def decision_id(self, region: Region, board: Board) -> str:
        name = f"{self.application_id}/{self.review_round}/{region}/{board}"
        return f"dec-{uuid.uuid5(_DECISION_NAMESPACE, name)}"

    # -- grants --------------------------------------------------------------------

    def withdraw_dataset(self, dataset_id: str) -> bool:
        """Note that the holder withdrew a requested dataset, so an approval grants no access to it.

        Returns whether the application requested the dataset and was still open.
        """
        if not self.status.open or all(item.dataset_id != dataset_id for item in self.datasets):
            return False
        self.datasets = tuple(
            replace(item, withdrawn=True) if item.dataset_id == dataset_id else item for item in self.datasets
        )
        return True

    def _issue_grants(self, conditions: tuple[str, ...], now: datetime) -> list[EventPayload]:
        assert self.content is not None and self.purpose_report is not None
        content = self.content
        starts_at, expires_at = access_period(content.requested_start, content.requested_end, now)
        events: list[EventPayload] = []
        for dataset in (item for item in self.datasets if not item.withdrawn):
            obligations = tuple(
                f"DUO {item.term}: {item.explanation}"
                for item in self.purpose_report.for_dataset(dataset.dataset_id)
                if item.kind is FindingKind.OBLIGATION
            )
            grant = AccessGrant(
                grant_id=grant_id_for(self.application_id, dataset.dataset_id),
                application_id=self.application_id,
                dataset_id=dataset.dataset_id,
                dataset_ids=content.dataset_ids,
                grantee_institution=content.applicant_institution,
                holder_institution=dataset.institution_id,
                region=dataset.region,
                data_environment=content.data_environment,
                purpose_codes=content.purpose_codes,
                conditions=merge_texts([conditions, obligations]),
                starts_at=starts_at,
                expires_at=expires_at,
            )
            self.grants[grant.grant_id] = grant
            events.append(_granted_event(grant))
        return events + self.expire_grants(now)

    def expire_grants(self, now: datetime) -> list[EventPayload]:
        """Expire every active grant whose expiry has passed."""
        events: list[EventPayload] = []
        for grant_id, grant in list(self.grants.items()):
            if grant.due_to_expire(now):
                self.grants[grant_id] = grant.expire()
                events.append(
                    AccessExpired(application_id=self.application_id, grant_id=grant_id, expired_at=grant.expires_at)
                )
        return events

    def revoke_grant(
        self, grant_id: str, member_id: str, reason: str, *, rules: ReviewRules, now: datetime
    ) -> list[EventPayload]:
        """Revoke an active grant on behalf of a DRB member of the grant's region."""
        grant = self.grants.get(grant_id)
        if grant is None:
            raise GrantNotFound(f"application {self.application_id} has no grant {grant_id}", grant_id=grant_id)
        if rules.governance.roster.seat(grant.region, Board.DRB).member(member_id) is None:
            raise NotBoardMember(
                f"{member_id} is not a member of the {grant.region} DRB, which oversees grant {grant_id}",
                member_id=member_id,
            )
        if not reason.strip():
            raise InvalidVote("a revocation needs a reason")
        reject_personal_data_in({"reason": reason})
        events = self.expire_grants(now)
        self.grants[grant_id] = self.grants[grant_id].revoke(reason.strip(), now)
        return events + [
            AccessRevoked(application_id=self.application_id, grant_id=grant_id, reason=reason.strip(), revoked_at=now)
        ]

    # -- the clock -----------------------------------------------------------------

    def check_clock(self, now: datetime, rules: ReviewRules) -> list[EventPayload]:
        """Emit every SLA warning and the breach whose threshold has passed and that has not fired."""
        if self.clock is None or not self.status.open:
            return []
        used = self.clock.used(now, rules.calendar)
        events: list[EventPayload] = []
        for alert in alerts_due(used, self.clock.window, self.fired_alerts):
            self.fired_alerts.add(alert)
            events.append(self._alert_event(alert, used, now, rules))
        return events

    def sla_status(self, now: datetime, rules: ReviewRules) -> SlaStatus | None:
        if self.clock is None:
            return None
        used = self.clock.used(now, rules.calendar)
        return SlaStatus(
            running=self.clock.running,
            days_used=as_days(used),
            days_left=as_days(self.clock.window - used),
            due_at=self.clock.due_at(rules.calendar),
        )

    def next_clock_check_at(self, rules: ReviewRules) -> datetime | None:
        """Return when the next SLA alert falls due, or None if none can while the application stays as it is."""
        if self.clock is None or not self.status.open:
            return None
        return next_alert_at(self.clock, rules.calendar, self.fired_alerts)

    def days_used_at_decision(self, rules: ReviewRules) -> float | None:
        if self.decided_at is None:
            return None
        return self._days_used(self.decided_at, rules)

    def _days_used(self, now: datetime, rules: ReviewRules) -> float:
        assert self.clock is not None
        return as_days(self.clock.used(now, rules.calendar))

    def _projected_due_at(self, now: datetime, rules: ReviewRules) -> datetime:
        """Return the deadline, assuming a stopped clock resumes at `now`."""
        assert self.clock is not None
        clock = self.clock if self.clock.running else self.clock.resume(now)
        due_at = clock.due_at(rules.calendar)
        assert due_at is not None, "a running clock always has a deadline"
        return due_at

    def _alert_event(self, alert: SlaAlert, used: timedelta, now: datetime, rules: ReviewRules) -> EventPayload:
        due_at = self._projected_due_at(now, rules)
        if alert is SlaAlert.BREACH:
            return ReviewSlaBreached(
                application_id=self.application_id,
                due_at=due_at,
                region=self.home_region,
                council_chair_region=rules.governance.council.chair_at(due_at),
                breached_at=now,
            )
        assert self.clock is not None
        return ReviewSlaWarning(
            application_id=self.application_id,
            threshold_percent=alert.percent,  # type: ignore[arg-type]
            days_used=as_days(used),
            days_left=as_days(self.clock.window - used),
            due_at=due_at,
        )

    # -- event payloads ------------------------------------------------------------

    def _submitted_event(self, content: ApplicationContent, now: datetime) -> ApplicationSubmitted:
        return ApplicationSubmitted(
            application_id=self.application_id,
            applicant_institution=content.applicant_institution,
            principal_investigator=content.principal_investigator,
            title=content.title,
            purpose_text=content.purpose_text,
            purpose_codes=content.purpose_codes,
            dataset_ids=content.dataset_ids,
            requested_start=content.requested_start,
            requested_end=content.requested_end,
            data_environment=content.data_environment,
            irb_document_ref=content.irb_document_ref,
            region=self.home_region,
            regions_involved=self.regions,
            submitted_at=now,
        )

    def _review_started_event(self, rules: ReviewRules) -> ReviewStarted:
        assert self.clock is not None
        due_at = self.clock.due_at(rules.calendar)
        assert due_at is not None
        return ReviewStarted(
            application_id=self.application_id,
            boards=(Board.IRB, Board.DRB),
            started_at=self.clock.started_at,
            due_at=due_at,
            window_days=self.clock.window_days,
            calendar=rules.calendar.day_count.value,  # type: ignore[arg-type]
        )

    def _decision_event(self, decision: PanelDecision) -> EventPayload:
        event_class = IrbDecisionRecorded if decision.board is Board.IRB else DrbDecisionRecorded
        return event_class(
            application_id=self.application_id,
            decision_id=self.decision_id(decision.region, decision.board),
            board=decision.board,
            decision=decision.outcome,
            votes_approve=decision.counts[Vote.APPROVE],
            votes_reject=decision.counts[Vote.REJECT],
            votes_revise=decision.counts[Vote.REVISE],
            quorum=decision.quorum,
            conditions=decision.conditions,
            reasons=decision.reasons,
            region=decision.region,
            decided_at=decision.decided_at,
        )


def _granted_event(grant: AccessGrant) -> AccessGranted:
    return AccessGranted(
        application_id=grant.application_id,
        grant_id=grant.grant_id,
        grantee_institution=grant.grantee_institution,
        dataset_id=grant.dataset_id,
        dataset_ids=grant.dataset_ids,
        holder_institution=grant.holder_institution,
        data_environment=grant.data_environment,
        purpose_codes=grant.purpose_codes,
        conditions=grant.conditions,
        starts_at=grant.starts_at,
        expires_at=grant.expires_at,
        region=grant.region,
    )


def _region_of(institution_id: str | None, fallback: Region) -> Region:
    institution = all_institutions().get(institution_id or "")
    return institution.region if institution else fallback


def _regions_involved(home: Region, datasets: tuple[DatasetTerms, ...]) -> tuple[Region, ...]:
    others = sorted({item.region for item in datasets} - {home}, key=list(Region).index)
    return (home, *others)


def _purpose_of(content: ApplicationContent) -> Purpose:
    institution = all_institutions()[content.applicant_institution]
    return Purpose(codes=content.purpose_codes, for_profit_applicant=institution.kind == "vendor")
