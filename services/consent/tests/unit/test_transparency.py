"""Opt-out rates per hospital and month, with small cells suppressed."""

from datetime import UTC, date, datetime

from medgov_consent.domain.history import ConsentHistory, Revocation
from medgov_consent.domain.policy import ConsentPolicy, Decision, Provision
from medgov_consent.domain.transparency import opt_out_rates

from .conftest import Builders, days

JANUARY = date(2027, 1, 1)
FEBRUARY = date(2027, 2, 1)
MID_JANUARY = datetime(2027, 1, 15, tzinfo=UTC)
MID_FEBRUARY = datetime(2027, 2, 15, tzinfo=UTC)


def subject(number: int) -> str:
    return f"daegu.k1.{number:064x}"


def consenting(make: Builders, number: int, *, institution_id: str = "knuh") -> ConsentHistory:
    return make.consented(ConsentHistory(subject(number)), at=MID_JANUARY, institution_id=institution_id)


def test_rates_per_month(make: Builders) -> None:
    histories = [consenting(make, number) for number in range(10)]
    histories[0] = make.revoked(histories[0], at=MID_FEBRUARY)
    histories[1] = make.revoked(histories[1], at=MID_FEBRUARY)

    cells = opt_out_rates(histories, [JANUARY, FEBRUARY])

    assert [(cell.month, cell.subjects, cell.opted_out) for cell in cells] == [(JANUARY, 10, 0), (FEBRUARY, 10, 2)]
    assert cells[1].rate == 0.2


def test_small_cells_suppressed(make: Builders) -> None:
    histories = [consenting(make, number) for number in range(6)] + [consenting(make, 100, institution_id="jnuh")]

    cells = {cell.institution_id: cell for cell in opt_out_rates(histories, [JANUARY])}

    assert cells["knuh"].subjects == 6
    assert cells["jnuh"].suppressed is True
    assert cells["jnuh"].rate is None


def test_reconsent_ends_opt_out(make: Builders) -> None:
    histories = [consenting(make, number) for number in range(5)]
    histories[0] = make.revoked(histories[0], at=MID_JANUARY + days(1))
    histories[0] = make.consented(histories[0], "cns-0002", at=MID_FEBRUARY)

    cells = opt_out_rates(histories, [JANUARY, FEBRUARY])

    assert [cell.opted_out for cell in cells] == [1, 0]


def test_opt_out_consent_counts(make: Builders) -> None:
    opt_out = ConsentPolicy(Provision(Decision.DENY), "fhir")
    histories = [consenting(make, number) for number in range(4)]
    histories.append(make.consented(ConsentHistory(subject(50)), policy=opt_out, at=MID_JANUARY))

    (cell,) = opt_out_rates(histories, [JANUARY])

    assert (cell.subjects, cell.opted_out) == (5, 1)


def test_subject_counts_from_first_consent(make: Builders) -> None:
    histories = [make.consented(ConsentHistory(subject(number)), at=MID_FEBRUARY) for number in range(5)]

    january, february = opt_out_rates(histories, [JANUARY, FEBRUARY])

    assert january.suppressed is True
    assert february.subjects == 5


def test_standalone_opt_out_counts(make: Builders) -> None:
    histories = [consenting(make, number) for number in range(4)]
    opted_out, _ = ConsentHistory(subject(60)).record_revocation(
        Revocation("optout-0001", "knuh", "dashboard", MID_JANUARY, standalone=True)
    )
    histories.append(opted_out)

    (cell,) = opt_out_rates(histories, [JANUARY])

    assert (cell.subjects, cell.opted_out) == (5, 1)
