from datetime import UTC, datetime

import pytest

from medgov_grants.domain.errors import (
    AwardExceedsPool,
    IneligibleInstitution,
    InvalidAmount,
    InvalidInput,
    InvalidState,
    InvalidTranches,
    NotAuthorized,
    NotFound,
    UnknownInstitution,
)
from medgov_grants.domain.fund import Fund
from medgov_grants.domain.ledger import Account, Disbursed, PayoutHeld, PayoutStatus
from medgov_grants.domain.tool_grants import Actor, ApplicationStatus, ToolGrantAward, TrancheTerms

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
TWO_TRANCHES = (TrancheTerms("De-identification engine beta", 100_000_000), TrancheTerms("Audit report", 200_000_000))


def _apply(fund: Fund, actor: Actor, application_id: str = "tga-1", requested_krw: object = 300_000_000) -> None:
    fund.submit_tool_application(
        application_id=application_id,
        vendor_id="vendor-medvision",
        title="DICOM de-identification toolkit",
        requested_krw=requested_krw,
        actor=actor,
        at=T0,
    )


def _award(fund: Fund, admin: Actor, application_id: str = "tga-1", amount: object = 300_000_000, tranches=TWO_TRANCHES) -> ToolGrantAward:  # type: ignore[no-untyped-def]
    (award,) = fund.award_tool_grant(application_id=application_id, amount_krw=amount, tranches=tranches, actor=admin, at=T0)
    assert isinstance(award, ToolGrantAward)
    return award


def test_vendor_applies(fund, vendor_applicant) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)

    application = fund.applications["tga-1"]
    assert (application.vendor_id, application.status, application.requested_krw) == (
        "vendor-medvision",
        ApplicationStatus.SUBMITTED,
        300_000_000,
    )


def test_resubmission_returns_first_application(fund, vendor_applicant) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    _apply(fund, vendor_applicant, requested_krw=1)

    assert fund.applications["tga-1"].requested_krw == 300_000_000


def test_hospital_cannot_apply(fund) -> None:  # type: ignore[no-untyped-def]
    actor = Actor("it-01", frozenset({"applicant"}), "knuh")

    with pytest.raises(IneligibleInstitution, match="'knuh' is a hospital"):
        fund.submit_tool_application(application_id="tga-1", vendor_id="knuh", title="Tool", requested_krw=1, actor=actor, at=T0)


def test_unknown_vendor_rejected(fund) -> None:  # type: ignore[no-untyped-def]
    actor = Actor("dev-01", frozenset({"applicant"}), "vendor-nobody")

    with pytest.raises(UnknownInstitution, match="'vendor-nobody' is not registered"):
        fund.submit_tool_application(application_id="tga-1", vendor_id="vendor-nobody", title="Tool", requested_krw=1, actor=actor, at=T0)


def test_applicant_of_other_vendor_rejected(fund) -> None:  # type: ignore[no-untyped-def]
    actor = Actor("dev-02", frozenset({"applicant"}), "vendor-lunapath")

    with pytest.raises(NotAuthorized, match="cannot apply on behalf of 'vendor-medvision'"):
        _apply(fund, actor)
    assert fund.applications == {}


def test_fractional_request_rejected(fund, vendor_applicant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidAmount, match="fractional"):
        _apply(fund, vendor_applicant, requested_krw=1000.5)


def test_empty_title_rejected(fund, vendor_applicant) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="title is empty"):
        fund.submit_tool_application(
            application_id="tga-1", vendor_id="vendor-medvision", title="  ", requested_krw=1, actor=vendor_applicant, at=T0
        )


def test_award_needs_fund_admin(fund, vendor_applicant) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    reviewer = Actor("rev-01", frozenset({"drb_reviewer", "applicant"}))

    with pytest.raises(NotAuthorized, match="needs the role 'fund_admin'.*applicant, drb_reviewer"):
        _award(fund, reviewer)
    assert fund.applications["tga-1"].status is ApplicationStatus.SUBMITTED
    assert fund.awards == {}


def test_award_of_unknown_application(fund, admin) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match="'tga-404' not found"):
        _award(fund, admin, application_id="tga-404")


def test_award_larger_than_pool_rejected(shrink_policy, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(shrink_policy(1_000_000_000))
    fund.allocate(at=T0)
    _apply(fund, vendor_applicant)

    with pytest.raises(AwardExceedsPool, match="300,000,000 KRW of the anonymization_tools pool"):
        _award(fund, admin, amount=300_000_001, tranches=(TrancheTerms("Everything", 300_000_001),))
    assert fund.applications["tga-1"].status is ApplicationStatus.SUBMITTED


def test_awards_commit_unpaid_tranches(shrink_policy, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    fund = Fund(shrink_policy(1_000_000_000))
    fund.allocate(at=T0)
    _apply(fund, vendor_applicant, "tga-1")
    _apply(fund, vendor_applicant, "tga-2")
    _award(fund, admin, "tga-1", 200_000_000, (TrancheTerms("Beta", 200_000_000),))

    with pytest.raises(AwardExceedsPool, match="100,000,000 KRW"):
        _award(fund, admin, "tga-2", 150_000_000, (TrancheTerms("Beta", 150_000_000),))
    assert fund.uncommitted_krw("anonymization_tools") == 100_000_000


def test_award_above_maximum_rejected(fund, vendor_applicant, admin, policy) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    too_much = policy.tool_grants.max_award_krw + 1

    with pytest.raises(InvalidAmount, match="exceeds the maximum tool grant"):
        _award(fund, admin, amount=too_much, tranches=(TrancheTerms("All", too_much),))


@pytest.mark.parametrize(
    ("amount", "tranches", "error", "message"),
    [
        (-1, TWO_TRANCHES, InvalidAmount, "must not be negative"),
        (300_000_000.5, TWO_TRANCHES, InvalidAmount, "fractional"),
        (300_000_000, (), InvalidTranches, "at least one tranche"),
        (300_000_000, (TrancheTerms("A", 100_000_000),), InvalidTranches, "sum to 100,000,000 KRW but the award is 300,000,000"),
        (300_000_000, (TrancheTerms("A", 400_000_000), TrancheTerms("B", -100_000_000)), InvalidAmount, "tranche 2 amount_krw"),
        (300_000_000, (TrancheTerms(" ", 300_000_000),), InvalidTranches, "tranche 1 has no deliverable"),
        (7, tuple(TrancheTerms(f"T{n}", 1) for n in range(7)), InvalidTranches, "at most 6"),
    ],
)
def test_invalid_award_moves_no_money(fund, vendor_applicant, admin, amount, tranches, error, message) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    before = fund.ledger.balances()

    with pytest.raises(error, match=message):
        _award(fund, admin, amount=amount, tranches=tranches)
    assert fund.ledger.balances() == before
    assert fund.awards == {}


def test_application_awarded_once(fund, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    _award(fund, admin)

    with pytest.raises(InvalidState, match="already awarded"):
        _award(fund, admin)


def test_rejected_application_cannot_be_awarded(fund, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    fund.reject_tool_application(application_id="tga-1", reason="Duplicates an earlier grant", actor=admin)

    with pytest.raises(InvalidState, match="already rejected"):
        _award(fund, admin)
    assert fund.applications["tga-1"].decision_note == "Duplicates an earlier grant"


def test_tranche_paid_on_confirmed_delivery(fund, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    award = _award(fund, admin)

    outcomes = fund.confirm_tranche_delivery(award_id=award.award_id, tranche_number=1, actor=admin, at=T0)

    assert [type(item) for item in outcomes] == [Disbursed]
    assert outcomes[0].request.payout_id == "tool-tga-1-t1"
    assert outcomes[0].request.reason == "tool_tranche"
    assert fund.ledger.balance(Account.grantee("anonymization_tools", "vendor-medvision")) == 100_000_000
    assert fund.ledger.available("anonymization_tools") == 3_500_000_000
    assert award.unconfirmed_krw == 200_000_000


def test_tranche_confirmed_once(fund, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    award = _award(fund, admin)
    fund.confirm_tranche_delivery(award_id=award.award_id, tranche_number=1, actor=admin, at=T0)

    with pytest.raises(InvalidState, match="already confirmed"):
        fund.confirm_tranche_delivery(award_id=award.award_id, tranche_number=1, actor=admin, at=T0)
    assert fund.ledger.available("anonymization_tools") == 3_500_000_000


def test_unknown_tranche_and_award(fund, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    award = _award(fund, admin)

    with pytest.raises(NotFound, match="no tranche 3; tranches are numbered 1 to 2"):
        fund.confirm_tranche_delivery(award_id=award.award_id, tranche_number=3, actor=admin, at=T0)
    with pytest.raises(NotFound, match="'tool-nope' not found"):
        fund.confirm_tranche_delivery(award_id="tool-nope", tranche_number=1, actor=admin, at=T0)


def test_delivery_confirmation_needs_fund_admin(fund, vendor_applicant, admin) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    award = _award(fund, admin)

    with pytest.raises(NotAuthorized):
        fund.confirm_tranche_delivery(award_id=award.award_id, tranche_number=1, actor=vendor_applicant, at=T0)
    assert award.tranches[0].confirmed_at is None


def test_suspended_vendor_tranche_held(fund, vendor_applicant, admin, build) -> None:  # type: ignore[no-untyped-def]
    _apply(fund, vendor_applicant)
    award = _award(fund, admin)
    fund.apply(build.exclusion_overdue("exc-1", "vendor-medvision"), at=T0)

    held = fund.confirm_tranche_delivery(award_id=award.award_id, tranche_number=1, actor=admin, at=T0)
    released = fund.apply(build.exclusion_acknowledged("exc-1", "vendor-medvision"), at=T0)

    assert [type(item) for item in held] == [PayoutHeld]
    assert [type(item).__name__ for item in released] == ["SuspensionChange", "Disbursed"]
    assert fund.ledger.payout_status("tool-tga-1-t1") is PayoutStatus.PAID
