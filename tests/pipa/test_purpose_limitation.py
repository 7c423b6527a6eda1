"""Pseudonymized data serves research (PIPA's statistics, scientific research, public-interest archiving) unless consent covers the use.

Where the platform enforces it:

- review screening: an application is reviewed only when its purpose is coded
  with a GA4GH DUO research purpose (GRU, HMB, DS:<disease>, POA), so every
  access grant carries a research purpose;
- consent evaluation: a subject with no applicable consent or revocation is
  admitted to uses of pseudonymized or anonymous datasets. For a dataset whose
  legal basis is consent, a subject is admitted only when a consent permits
  the use. A revocation excludes the subject whatever the legal basis;
- the consent service's re-check lists active grants that hold data of
  subjects whose consents no longer admit the use (GET /v1/mismatches).

The platform has no purpose code for statistics or archiving, so those
purposes reach it only as research purposes.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgov_shared.clock import SystemClock
from medgov_shared.contracts.types import LegalBasis
from medgov_shared.testing.services import http_client, running, unique_name, wait_until

from medgov_consent.domain import duo
from medgov_consent.domain.history import SubjectDecision
from medgov_consent.domain.policy import Decision
from medgov_consent.main import build_service as build_consent
from medgov_consent.settings import ConsentSettings
from medgov_review.domain.screening import ApplicationDraft, missing_items

from .stack import (
    PrivateTopics,
    access_granted,
    bearer,
    dataset_events,
    new_id,
    new_subject,
    wait_for_dataset_members,
)

RESEARCH_PURPOSES = st.sampled_from(["GRU", "HMB", "POA", "DS:C34", "DS:MONDO_0005148", "DUO:0000042", "DUO:0000006"])
# Modifiers restrict how data may be used but name no purpose. Numeric DUO ids are included.
MODIFIERS = st.sampled_from(
    ["NCU", "NPU", "NPUNCU", "IRB", "PUB", "COL", "RTN", "TS", "GS", "IS", "PS", "US", "MOR", "NMDS", "GSO", "CC",
     "NPOA", "DUO:0000046", "DUO:0000021", "DUO:0000019"]
)


def draft(purpose_codes: tuple[str, ...]) -> ApplicationDraft:
    return ApplicationDraft(
        applicant_institution="vendor-medvision",
        principal_investigator="Dr. Kim",
        title="Chest CT nodule detection",
        purpose_text="Train a nodule detector",
        purpose_codes=purpose_codes,
        dataset_ids=("ds-knuh-ct-0001",),
    )


# -- review screening -----------------------------------------------------------------------


@given(st.lists(MODIFIERS, max_size=5).map(tuple))
def test_no_research_purpose_waits_for_revision(codes: tuple[str, ...]) -> None:
    missing = {item.item for item in missing_items(draft(codes))}

    assert "purpose_codes" in missing


@given(st.lists(MODIFIERS, max_size=3), RESEARCH_PURPOSES, st.randoms())
def test_research_purpose_passes_screening(modifiers, purpose, random) -> None:  # type: ignore[no-untyped-def]
    codes = [*modifiers, purpose]
    random.shuffle(codes)

    missing = {item.item for item in missing_items(draft(tuple(codes)))}

    assert "purpose_codes" not in missing


def test_disease_specific_purpose_needs_its_disease() -> None:
    missing = {item.item: item for item in missing_items(draft(("DS",)))}

    assert "purpose_codes" in missing


# -- consent evaluation ------------------------------------------------------------------------


@given(st.lists(st.one_of(RESEARCH_PURPOSES, MODIFIERS), max_size=6).map(tuple))
def test_every_grant_purpose_reads_as_a_research_purpose(codes: tuple[str, ...]) -> None:
    purposes = duo.requested_purposes(codes)

    assert purposes
    assert all(item.split(":", 1)[0] in duo.PURPOSES for item in purposes)


ADMISSION = [
    (None, LegalBasis.PSEUDONYMIZED_RESEARCH, True),
    (None, LegalBasis.ANONYMOUS, True),
    (None, LegalBasis.CONSENT, False),
    (Decision.PERMIT, LegalBasis.CONSENT, True),
    (Decision.PERMIT, LegalBasis.PSEUDONYMIZED_RESEARCH, True),
    (Decision.DENY, LegalBasis.PSEUDONYMIZED_RESEARCH, False),
    (Decision.DENY, LegalBasis.ANONYMOUS, False),
    (Decision.DENY, LegalBasis.CONSENT, False),
]


@pytest.mark.parametrize(("decision", "legal_basis", "admitted"), ADMISSION)
def test_subject_admission_by_legal_basis(decision: Decision | None, legal_basis: LegalBasis, admitted: bool) -> None:
    outcome = SubjectDecision(decision, reason="test")

    assert outcome.admits(legal_basis) is admitted


def test_contract_valid_duo_id_is_understood_by_consent() -> None:
    purposes = duo.requested_purposes(("HMB", "DUO:0000001"))

    # The contracts' DuoCode admits any DUO id. Consent keeps an id it does not list as a purpose of the grant.
    assert purposes == frozenset({"HMB", "DUO:0000001"})


def test_unlisted_duo_id_needs_unrestricted_consent() -> None:
    requested = duo.requested_purposes(("HMB", "DUO:0000001"))

    assert duo.PurposeCondition(purposes=frozenset({"HMB"})).permits(requested, for_profit=False) is False
    assert duo.PurposeCondition(purposes=frozenset({"GRU"})).permits(requested, for_profit=False) is False
    assert duo.PurposeCondition(purposes=None).permits(requested, for_profit=False) is True
    assert duo.PurposeCondition(purposes=frozenset({"POA"})).denies(requested) is True


# -- end to end on the consent service ------------------------------------------------------------


@pytest.fixture
async def consent_service(settings_factory, infra):  # type: ignore[no-untyped-def]
    topics = await PrivateTopics(infra.kafka_bootstrap_servers).create()
    settings = settings_factory(ConsentSettings, kafka_group_id=unique_name("pipa-consent"))
    service = build_consent(settings, SystemClock(), consumes=topics.names, consume_inbound=False)
    async with running(service):
        yield service, topics


@pytest.mark.integration
async def test_consent_basis_grant_lists_unconsented(consent_service, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    service, topics = consent_service
    consenting, silent, silent_in_research = new_subject(), new_subject(), new_subject()
    needs_consent, research = new_id("ds-consent"), new_id("ds-research")
    async with http_client(service) as client:
        given_consent = await client.post(
            "/v1/me/consents", json={"scope": {"kind": "all_research"}, "institution_id": "knuh"},
            headers=bearer(jwt_secret, "patient", patient_subject=consenting),
        )
    assert given_consent.status_code == 201, given_consent.text
    await topics.publish(topics.catalog, dataset_events(needs_consent, (consenting, silent), LegalBasis.CONSENT),
                         source="medgov/catalog")
    await topics.publish(topics.catalog, dataset_events(research, (silent_in_research,), LegalBasis.PSEUDONYMIZED_RESEARCH),
                         source="medgov/catalog")
    await wait_for_dataset_members(service, needs_consent, 2)
    await wait_for_dataset_members(service, research, 1)
    grants = [access_granted(needs_consent, ("HMB",)), access_granted(research, ("HMB",))]

    await topics.publish(topics.review, grants, source="medgov/review")
    await wait_until(
        lambda: service.pool.fetchval("SELECT count(*) = 2 FROM grants WHERE grant_id = ANY($1::text[])",
                                      [item.grant_id for item in grants]),
        message="both grants in the consent service's projection",
    )
    async with http_client(service) as client:
        listed = await client.get("/v1/mismatches", headers=bearer(jwt_secret, "drb_reviewer"))

    mismatches = {(item["grant_id"], item["subject"]) for item in listed.json()["mismatches"]}
    assert (grants[0].grant_id, silent) in mismatches
    assert (grants[0].grant_id, consenting) not in mismatches
    assert all(grant_id != grants[1].grant_id for grant_id, _ in mismatches)
    reasons = [item["reason"] for item in listed.json()["mismatches"] if item["subject"] == silent]
    assert reasons and "legal basis 'consent'" in reasons[0]


@pytest.mark.integration
async def test_grant_with_unlisted_duo_id_gets_exclusions(consent_service, jwt_secret) -> None:  # type: ignore[no-untyped-def]
    service, topics = consent_service
    subject = new_subject()
    dataset_id = new_id("ds-duo")
    await topics.publish(topics.catalog, dataset_events(dataset_id, (subject,), LegalBasis.PSEUDONYMIZED_RESEARCH),
                         source="medgov/catalog")
    await wait_for_dataset_members(service, dataset_id, 1)
    grant = access_granted(dataset_id, ("HMB", "DUO:0000001"))

    await topics.publish(topics.review, [grant], source="medgov/review")

    async def settled() -> bool:
        projected = await service.pool.fetchval("SELECT count(*) > 0 FROM grants WHERE grant_id = $1", grant.grant_id)
        dead = await service.pool.fetchval("SELECT count(*) > 0 FROM dead_letters WHERE topic = $1", topics.review)
        return projected or dead

    await wait_until(settled, timeout_s=30, message="the grant projected or dead-lettered")
    assert await service.pool.fetchval("SELECT count(*) FROM grants WHERE grant_id = $1", grant.grant_id) == 1
    assert await service.pool.fetchval("SELECT count(*) FROM dead_letters WHERE topic = $1", topics.review) == 0

    # A revocation scoped to POA cannot tell whether the unlisted purpose overlaps POA, so it reaches the grant.
    async with http_client(service) as client:
        revoked = await client.post(
            "/v1/me/revocations",
            json={"scope": {"kind": "purposes", "purpose_codes": ["POA"]}, "institution_id": "knuh"},
            headers=bearer(jwt_secret, "patient", patient_subject=subject),
        )
    assert revoked.status_code == 200, revoked.text
    exclusions = await service.pool.fetchval(
        "SELECT count(*) FROM exclusions WHERE grant_id = $1 AND subject = $2", grant.grant_id, subject
    )
    assert exclusions == 1
