"""The public opt-out rates, counted in PostgreSQL, against histories written through the repository."""

from datetime import UTC, date, datetime

import pytest

from medgov_shared.contracts.events.consent import ConsentScope
from medgov_shared.service import Service
from medgov_shared.testing.services import http_client

from medgov_consent.domain.history import ConsentHistory, Revocation
from medgov_consent.domain.policy import ConsentPolicy, Decision, Provision
from medgov_consent.domain.scope import policy_from_scope
from medgov_consent.domain.transparency import opt_out_rates
from medgov_consent.repository import histories

from .conftest import new_subject

pytestmark = pytest.mark.integration

MID_JANUARY = datetime(2027, 1, 15, tzinfo=UTC)
# 16:00 UTC on 31 January is 01:00 on 1 February in Korea, where the months are counted.
LATE_JANUARY_UTC = datetime(2027, 1, 31, 16, 0, tzinfo=UTC)
JANUARY_20 = datetime(2027, 1, 20, tzinfo=UTC)
FEBRUARY_5 = datetime(2027, 2, 5, tzinfo=UTC)
FEBRUARY_10 = datetime(2027, 2, 10, tzinfo=UTC)
FEBRUARY_20 = datetime(2027, 2, 20, tzinfo=UTC)

RESEARCH = policy_from_scope(ConsentScope(kind="all_research"))
OPT_OUT = ConsentPolicy(Provision(Decision.DENY), "fhir")


def consented(history: ConsentHistory, consent_id: str, at: datetime, *, institution_id: str = "knuh",
              policy: ConsentPolicy = RESEARCH) -> ConsentHistory:
    after, _ = history.record_consent(consent_id, institution_id=institution_id, channel="fhir", policy=policy, granted_at=at)
    return after


def revoked(history: ConsentHistory, consent_id: str, at: datetime, *, institution_id: str = "knuh") -> ConsentHistory:
    after, _ = history.record_revocation(Revocation(consent_id, institution_id, "fhir", at))
    return after


def build_histories() -> list[ConsentHistory]:
    """Ten knuh subjects with revocations, a re-consent and an opt-out consent, and two yumc subjects."""
    knuh = [consented(ConsentHistory(new_subject()), "cns-1", MID_JANUARY) for _ in range(8)]
    knuh[0] = revoked(knuh[0], "cns-1", FEBRUARY_10)
    knuh[1] = consented(revoked(knuh[1], "cns-1", JANUARY_20), "cns-2", FEBRUARY_20)
    knuh.append(consented(ConsentHistory(new_subject()), "cns-1", FEBRUARY_5, policy=OPT_OUT))
    knuh.append(consented(ConsentHistory(new_subject()), "cns-1", LATE_JANUARY_UTC))
    yumc = [consented(ConsentHistory(new_subject()), "cns-1", MID_JANUARY, institution_id="yumc") for _ in range(2)]
    return knuh + yumc


async def store(service: Service, written: list[ConsentHistory]) -> None:
    async with service.unit_of_work() as context:
        for history in written:
            await histories.lock_subject(context.connection, history.subject, context.now())
            await histories.save_history(context.connection, ConsentHistory(history.subject), history, context.now())


async def test_opt_out_rates_counted_per_month(service: Service) -> None:
    await store(service, build_histories())

    async with http_client(service) as client:
        response = await client.get("/v1/public/opt-out-rates", params={"months": 3})

    body = response.json()
    cells = {(cell["institution"]["id"], cell["month"]): cell for cell in body["cells"]}
    assert response.status_code == 200
    assert body["months"] == ["2027-01", "2027-02", "2027-03"]
    assert (cells["knuh", "2027-01"]["subjects"], cells["knuh", "2027-01"]["opted_out"]) == (8, 1)
    assert (cells["knuh", "2027-02"]["subjects"], cells["knuh", "2027-02"]["opted_out"]) == (10, 2)
    assert (cells["knuh", "2027-03"]["subjects"], cells["knuh", "2027-03"]["opted_out"]) == (10, 2)
    assert cells["knuh", "2027-02"]["rate"] == 0.2
    assert [cells["yumc", month]["suppressed"] for month in body["months"]] == [True, True, True]
    assert len(body["cells"]) == 6


async def test_opt_out_rates_match_domain_rule(service: Service) -> None:
    await store(service, build_histories())

    async with http_client(service) as client:
        response = await client.get("/v1/public/opt-out-rates", params={"months": 3})
    async with service.unit_of_work() as context:
        subjects = await histories.all_subjects(context.connection)
        loaded = await histories.load_histories(context.connection, subjects)
    expected = opt_out_rates(loaded.values(), [date(2027, 1, 1), date(2027, 2, 1), date(2027, 3, 1)])

    served = [(cell["institution"]["id"], cell["month"], cell["subjects"], cell["opted_out"]) for cell in response.json()["cells"]]
    assert served == [(cell.institution_id, cell.month.isoformat()[:7], cell.subjects, cell.opted_out) for cell in expected]
