"""Every consent sample file, read as shipped and, where the reading stops at an unknown organization, read again as if it were a platform institution."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from medgov_shared.contracts.institutions import all_institutions

from medgov_consent.domain.errors import ConsentRejected, RejectionReason
from medgov_consent.domain.evaluate import evaluate
from medgov_consent.domain.fhir_consent import read_fhir_consent, read_fhir_consent_xml
from medgov_consent.domain.policy import ConsentPolicy, DataClass, DataClassKind, Decision

from .conftest import Builders, load_json

MII_FILE = "Example_MII_Consent_Einwilligung_2.xml"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True)
class Accepted:
    root_decision: Decision
    period_start: str | None
    period_end: str | None


@dataclass(frozen=True)
class Rejected:
    reason: RejectionReason
    path: str
    mentions: str


# Dates without a zone are read in Korea Standard Time (UTC+9), and a period
# end includes its whole last day, so 2016-01-01 ends at 2016-01-01T15:00Z.
AS_SHIPPED: dict[str, Accepted | Rejected] = {
    "Consent-consent-example-basic.json": Accepted(Decision.PERMIT, "1963-12-31T15:00:00+00:00", "2016-01-01T15:00:00+00:00"),
    "Consent-consent-example-notTime.json": Accepted(Decision.PERMIT, "2014-12-31T15:00:00+00:00", "2015-02-01T15:00:00+00:00"),
    "Consent-consent-example-smartonfhir.json": Accepted(
        Decision.PERMIT, "2016-06-23T07:02:33+00:00", "2016-06-23T07:32:33.000001+00:00"
    ),
    "Consent-consent-example-Emergency.json": Rejected(RejectionReason.UNKNOWN_INSTITUTION, "provision.actor[0].reference", "Organization/f001"),
    "Consent-consent-example-Out.json": Rejected(RejectionReason.UNKNOWN_INSTITUTION, "provision.actor[0].reference", "Organization/f001"),
    "Consent-consent-example-grantor.json": Rejected(RejectionReason.UNKNOWN_INSTITUTION, "provision.actor[0].reference", "Organization/f001"),
    "Consent-consent-example-notOrg.json": Rejected(RejectionReason.UNKNOWN_INSTITUTION, "provision.actor[0].reference", "Organization/f001"),
    "Consent-consent-example-notThis.json": Rejected(RejectionReason.NO_USABLE_SCOPE, "provision", "Task/example3"),
    "Consent-consent-example-signature.json": Rejected(RejectionReason.NO_USABLE_SCOPE, "provision", "Practitioner/13"),
    "Contract-pcd-example-notThis.json": Rejected(RejectionReason.NOT_A_CONSENT, "resourceType", "'Contract'"),
    MII_FILE: Accepted(Decision.DENY, "2020-08-31T15:00:00+00:00", "2050-08-31T15:00:00+00:00"),
}

# The same files with Organization/f001 (the examples' Burgers University
# Medical Center) registered, which shows how the rest of each is read.
WITH_F001_REGISTERED: dict[str, Accepted | Rejected] = {
    "Consent-consent-example-Emergency.json": Rejected(RejectionReason.NO_USABLE_SCOPE, "provision", "ETREAT"),
    "Consent-consent-example-Out.json": Accepted(Decision.DENY, None, None),
    "Consent-consent-example-grantor.json": Rejected(RejectionReason.UNSUPPORTED_CONDITION, "provision", "Patient/example"),
    "Consent-consent-example-notOrg.json": Accepted(Decision.DENY, None, None),
}


def read_sample(folder: Path, mii_xml: bytes, name: str, institution_ids: frozenset[str] | None = None) -> ConsentPolicy:
    if name == MII_FILE:
        return read_fhir_consent_xml(mii_xml, institution_ids=institution_ids)
    return read_fhir_consent(load_json(folder / name), institution_ids=institution_ids)


def check_outcome(read: Callable[[], ConsentPolicy], expected: Accepted | Rejected) -> None:
    if isinstance(expected, Rejected):
        with pytest.raises(ConsentRejected) as caught:
            read()
        assert caught.value.reason is expected.reason
        assert caught.value.path == expected.path
        assert expected.mentions in caught.value.message
        return

    policy = read()
    assert policy.root.decision is expected.root_decision
    period = policy.root.period
    start = period.start.isoformat() if period and period.start else None
    end = period.end.isoformat() if period and period.end else None
    assert start == expected.period_start
    assert end == expected.period_end


def test_table_lists_every_consent_sample(consent_folder: Path, sample_data: Path) -> None:
    on_disk = {path.name for path in consent_folder.iterdir()} | {
        path.name for path in (sample_data / "fhir" / "mii-consent-xml").iterdir()
    }

    assert on_disk == set(AS_SHIPPED)


@pytest.mark.parametrize("name", sorted(AS_SHIPPED))
def test_sample_as_shipped(name: str, consent_folder: Path, mii_consent_xml: bytes) -> None:
    check_outcome(lambda: read_sample(consent_folder, mii_consent_xml, name), AS_SHIPPED[name])


@pytest.mark.parametrize("name", sorted(WITH_F001_REGISTERED))
def test_sample_with_f001_registered(name: str, consent_folder: Path, mii_consent_xml: bytes) -> None:
    known = frozenset(all_institutions()) | {"f001"}

    check_outcome(lambda: read_sample(consent_folder, mii_consent_xml, name, known), WITH_F001_REGISTERED[name])


def test_basic_sample_expired_in_2016(consent_folder: Path, make: Builders) -> None:
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-basic.json"))

    during = evaluate(policy, make.request(at=utc("2010-06-01T00:00:00+09:00")))
    last_second = evaluate(policy, make.request(at=utc("2016-01-01T23:59:59+09:00")))
    after = evaluate(policy, make.request(at=utc("2016-01-02T00:00:00+09:00")))
    today = evaluate(policy, make.request())

    assert during.decision is Decision.PERMIT
    assert last_second.decision is Decision.PERMIT
    assert after.decision is None
    assert today.decision is None
    assert "outside its period" in today.reason


def test_basic_sample_permits_any_research_purpose(consent_folder: Path, make: Builders) -> None:
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-basic.json"))
    at = utc("2010-06-01T00:00:00+09:00")

    for purposes in (("GRU",), ("POA",), ("DS:MONDO_0005148", "NCU")):
        assert evaluate(policy, make.request(purposes=purposes, at=at)).decision is Decision.PERMIT


def test_not_time_sample_window(consent_folder: Path, make: Builders) -> None:
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-notTime.json"))

    inside = evaluate(policy, make.request(at=utc("2015-01-15T12:00:00+09:00")))
    before = evaluate(policy, make.request(at=utc("2014-12-31T23:59:59+09:00")))
    after = evaluate(policy, make.request(at=utc("2015-02-02T00:00:00+09:00")))

    assert inside.decision is Decision.PERMIT
    assert before.decision is None
    assert after.decision is None


def test_smart_on_fhir_sample_thirty_minutes(consent_folder: Path, make: Builders) -> None:
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-smartonfhir.json"))
    medication_requests = make.dataset(resource_types=("MedicationRequest",))

    by_nested = evaluate(policy, make.request(dataset=medication_requests, at=utc("2016-06-23T17:10:00+10:00")))
    by_root = evaluate(policy, make.request(at=utc("2016-06-23T17:10:00+10:00")))
    at_end = evaluate(policy, make.request(at=utc("2016-06-23T17:32:33+10:00")))
    after = evaluate(policy, make.request(at=utc("2016-06-23T17:32:34+10:00")))

    assert by_nested.path == "provision.provision[0]"
    assert by_nested.decision is Decision.PERMIT
    assert by_root.path == "provision"
    assert by_root.decision is Decision.PERMIT
    assert at_end.decision is Decision.PERMIT
    assert after.decision is None


def test_smart_on_fhir_nested_class(consent_folder: Path) -> None:
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-smartonfhir.json"))

    nested = policy.root.provisions[0]

    assert nested.decision is Decision.PERMIT
    assert nested.data_classes == frozenset({DataClass(DataClassKind.RESOURCE_TYPE, "MedicationRequest")})


def test_mii_sample_structure(mii_consent_xml: bytes) -> None:
    policy = read_fhir_consent_xml(mii_consent_xml)

    collect_and_store, scientific_use, biomaterial = policy.root.provisions

    assert policy.fhir_id == "Example-MII-Consent-ResultType-document"
    assert policy.given_at == utc("2020-09-01T00:00:00+09:00")
    assert collect_and_store.inapplicable is not None
    assert collect_and_store.period is not None
    assert collect_and_store.period.end == utc("2025-09-01T00:00:00+09:00")
    assert scientific_use.inapplicable is None
    assert scientific_use.purposes is not None
    assert scientific_use.purposes.purposes == frozenset({"HMB"})
    assert biomaterial.inapplicable is not None
    assert len(policy.notes) == 2


def test_mii_sample_permits_medical_research(mii_consent_xml: bytes, make: Builders) -> None:
    policy = read_fhir_consent_xml(mii_consent_xml)

    today = evaluate(policy, make.request(purposes=("HMB",)))
    disease = evaluate(policy, make.request(purposes=("DS:MONDO_0005148",)))
    after_first_permit_ended = evaluate(policy, make.request(at=utc("2025-09-15T00:00:00+09:00")))

    assert today.decision is Decision.PERMIT
    assert today.path == "provision.provision[1]"
    assert disease.decision is Decision.PERMIT
    assert after_first_permit_ended.decision is Decision.PERMIT


def test_mii_sample_denies_other_research(mii_consent_xml: bytes, make: Builders) -> None:
    policy = read_fhir_consent_xml(mii_consent_xml)

    ancestry = evaluate(policy, make.request(purposes=("POA",)))
    general = evaluate(policy, make.request(purposes=("GRU",)))

    assert ancestry.decision is Decision.DENY
    assert ancestry.path == "provision"
    assert general.decision is Decision.DENY


def test_mii_sample_ends_2050(mii_consent_xml: bytes, make: Builders) -> None:
    policy = read_fhir_consent_xml(mii_consent_xml)

    last_day = evaluate(policy, make.request(at=utc("2050-08-31T23:00:00+09:00")))
    after = evaluate(policy, make.request(at=utc("2050-09-01T00:00:00+09:00")))

    assert last_day.decision is Decision.PERMIT
    assert after.decision is None


def test_out_sample_opts_out_at_f001(consent_folder: Path, make: Builders) -> None:
    known = frozenset(all_institutions()) | {"f001"}
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-Out.json"), institution_ids=known)

    at_f001 = evaluate(policy, make.request(dataset=make.dataset("ds-f001", holder_id="f001")))
    at_knuh = evaluate(policy, make.request())

    assert policy.root.holder_ids == frozenset({"f001"})
    assert at_f001.decision is Decision.DENY
    assert at_knuh.decision is None
    assert "data holder knuh is not one of f001" in at_knuh.reason


def test_not_org_sample_denies_recipient_f001(consent_folder: Path, make: Builders) -> None:
    known = frozenset(all_institutions()) | {"f001"}
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-notOrg.json"), institution_ids=known)

    to_f001 = evaluate(policy, make.request(recipient_id="f001", for_profit=False))
    to_vendor = evaluate(policy, make.request())

    assert to_f001.decision is Decision.DENY
    assert to_vendor.decision is None
