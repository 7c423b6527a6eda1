"""Reading rules of the FHIR Consent reader, each on a small hand-made Consent."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from medgov_consent.domain.errors import ConsentRejected, RejectionReason
from medgov_consent.domain.evaluate import evaluate
from medgov_consent.domain.fhir_consent import read_fhir_consent
from medgov_consent.domain.policy import DatasetContent, DatasetTerms, Decision

from .conftest import Builders, load_json

SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
DUO = "http://purl.obolibrary.org/obo/duo"


def consent(provision: dict[str, Any] | None = None, *, policy_rule: str | None = "OPTIN", **top: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": SCOPE_SYSTEM, "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "dateTime": "2026-11-02",
    }
    if policy_rule:
        resource["policyRule"] = {"coding": [{"system": ACT_CODE, "code": policy_rule}]}
    if provision is not None:
        resource["provision"] = provision
    resource.update(top)
    return resource


def actor(role: str, reference: dict[str, Any]) -> dict[str, Any]:
    return {"role": {"coding": [{"system": PARTICIPATION, "code": role}]}, "reference": reference}


def rejection(resource: Any) -> ConsentRejected:
    with pytest.raises(ConsentRejected) as caught:
        read_fhir_consent(resource)
    return caught.value


def test_reader_rejects_non_object() -> None:
    error = rejection(["Consent"])

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert "expected a JSON object" in error.message


def test_reader_rejects_invalid_fhir() -> None:
    resource = consent({"type": "permit"})
    del resource["status"]
    resource["colour"] = "blue"

    error = rejection(resource)

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert "invalid FHIR R4 Consent" in error.message


def test_reader_rejects_bad_provision_type() -> None:
    error = rejection(consent({"type": "maybe"}))

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert error.path is not None
    assert "provision" in error.path


@pytest.mark.parametrize("status", ["draft", "proposed", "rejected", "entered-in-error"])
def test_reader_rejects_status(status: str) -> None:
    error = rejection(consent(status=status))

    assert error.reason is RejectionReason.NOT_ACTIVE
    assert error.path == "status"


def test_reader_inactive_hints_revocation() -> None:
    error = rejection(consent(status="inactive"))

    assert error.reason is RejectionReason.NOT_ACTIVE
    assert "RevokeConsent" in error.message


@pytest.mark.parametrize("scope", ["treatment", "adr"])
def test_reader_rejects_non_data_use_scope(scope: str) -> None:
    error = rejection(consent(scope={"coding": [{"system": SCOPE_SYSTEM, "code": scope}]}))

    assert error.reason is RejectionReason.NOT_A_DATA_USE_CONSENT
    assert scope in error.message


def test_reader_needs_a_decision() -> None:
    error = rejection(consent({"period": {"start": "2026-01-01"}}, policy_rule=None))

    assert error.reason is RejectionReason.NO_DECISION
    assert error.path == "provision"


def test_reader_needs_nested_type() -> None:
    error = rejection(consent({"provision": [{"period": {"start": "2026-01-01"}}]}))

    assert error.reason is RejectionReason.NO_DECISION
    assert error.path == "provision.provision[0].type"


def test_reader_without_provision_permits_all(make: Builders) -> None:
    policy = read_fhir_consent(consent(None))

    assert policy.root.decision is Decision.PERMIT
    assert policy.root.provisions == ()
    assert evaluate(policy, make.request(purposes=("POA",))).decision is Decision.PERMIT


def test_reader_opt_out_policy_rule(make: Builders) -> None:
    policy = read_fhir_consent(consent({"period": {"start": "2026-01-01"}}, policy_rule="OPTOUT"))

    assert policy.root.decision is Decision.DENY
    assert evaluate(policy, make.request()).decision is Decision.DENY


def test_reader_explicit_type_beats_policy_rule() -> None:
    policy = read_fhir_consent(consent({"type": "deny"}, policy_rule="OPTIN"))

    assert policy.root.decision is Decision.DENY


def test_reader_duo_purposes() -> None:
    purposes = [{"system": DUO, "code": "DUO:0000006"}, {"system": DUO, "code": "NCU"}]
    policy = read_fhir_consent(consent({"purpose": purposes}))

    assert policy.root.purposes is not None
    assert policy.root.purposes.purposes == frozenset({"HMB"})
    assert policy.root.purposes.excludes_for_profit is True


def test_reader_unknown_duo_code() -> None:
    error = rejection(consent({"purpose": [{"system": DUO, "code": "DUO:0009999"}]}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert error.path == "provision.purpose[0]"


def test_reader_healthcare_research_reason(make: Builders) -> None:
    policy = read_fhir_consent(consent({"purpose": [{"system": ACT_REASON, "code": "HRESCH"}]}))

    assert policy.root.purposes is not None
    assert policy.root.purposes.purposes == frozenset({"HMB", "POA"})
    assert evaluate(policy, make.request(purposes=("POA",))).decision is Decision.PERMIT
    assert evaluate(policy, make.request(purposes=("GRU",))).decision is None


def test_reader_treatment_purpose_is_unusable() -> None:
    error = rejection(consent({"purpose": [{"system": ACT_REASON, "code": "TREAT"}]}))

    assert error.reason is RejectionReason.NO_USABLE_SCOPE
    assert "TREAT are not research purposes" in error.message


def test_reader_unknown_purpose_system_in_deny() -> None:
    error = rejection(consent({"type": "deny", "purpose": [{"system": "urn:example:purposes", "code": "x"}]}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert "unknown code system" in error.message


def test_reader_modifier_in_deny() -> None:
    deny = {"type": "deny", "purpose": [{"system": DUO, "code": "NCU"}]}

    error = rejection(consent({"provision": [deny]}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert error.path == "provision.provision[0].purpose"


def test_reader_actor_by_reference_and_identifier() -> None:
    actors = [
        actor("CST", {"reference": "Organization/knuh"}),
        actor("PRCP", {"identifier": {"system": "urn:medgov:institution", "value": "vendor-lunapath"}}),
        actor("IRCP", {"reference": "https://fhir.knuh.example/fhir/Organization/vendor-medvision/_history/2"}),
    ]

    policy = read_fhir_consent(consent({"actor": actors}))

    assert policy.root.holder_ids == frozenset({"knuh"})
    assert policy.root.recipient_ids == frozenset({"vendor-lunapath", "vendor-medvision"})


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "Organization/f001"},
        {"identifier": {"system": "urn:medgov:institution", "value": "nowhere"}},
        {"display": "Good Health Clinic"},
        {"reference": "#org1"},
    ],
)
def test_reader_unknown_institution(reference: dict[str, Any]) -> None:
    error = rejection(consent({"actor": [actor("CST", reference)]}))

    assert error.reason is RejectionReason.UNKNOWN_INSTITUTION
    assert error.path == "provision.actor[0].reference"


def test_reader_person_in_nested_deny() -> None:
    deny = {"type": "deny", "actor": [actor("PRCP", {"reference": "Practitioner/13"})]}

    error = rejection(consent({"provision": [deny]}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert error.path == "provision.provision[0]"
    assert "Practitioner/13" in error.message


def test_reader_person_in_nested_permit(make: Builders) -> None:
    permit = {"type": "permit", "actor": [actor("PRCP", {"reference": "RelatedPerson/peter"})]}

    policy = read_fhir_consent(consent({"provision": [permit]}, policy_rule="OPTOUT"))

    assert policy.root.provisions[0].inapplicable is not None
    assert policy.notes == (f"provision.provision[0] never applies: {policy.root.provisions[0].inapplicable}",)
    assert evaluate(policy, make.request()).decision is Decision.DENY


def test_reader_unevaluated_role_in_permit() -> None:
    permit = {"type": "permit", "actor": [actor("AUT", {"reference": "Organization/knuh"})]}

    policy = read_fhir_consent(consent({"provision": [permit]}))

    assert policy.root.provisions[0].inapplicable is not None
    assert "role AUT" in policy.root.provisions[0].inapplicable


@pytest.mark.parametrize(
    ("role", "described"),
    [
        ({"coding": []}, "role without coding"),
        ({"text": "Auditor"}, "role without coding"),
        ({"coding": [{"system": PARTICIPATION}]}, f"role a coding without code ({PARTICIPATION})"),
    ],
)
def test_reader_describes_role_without_code(role: dict[str, Any], described: str) -> None:
    permit = {"type": "permit", "actor": [{"role": role, "reference": {"reference": "Organization/knuh"}}]}

    policy = read_fhir_consent(consent({"provision": [permit]}))

    assert described in policy.root.provisions[0].inapplicable
    assert "None" not in policy.root.provisions[0].inapplicable


def test_reader_describes_scope_coding_without_code() -> None:
    error = rejection(consent(scope={"coding": [{"system": SCOPE_SYSTEM}]}))

    assert error.reason is RejectionReason.NOT_A_DATA_USE_CONSENT
    assert f"scope is a coding without code ({SCOPE_SYSTEM})" in error.message


def test_reader_collect_action_is_unusable() -> None:
    action = [{"coding": [{"system": ACTION, "code": "collect"}]}]

    error = rejection(consent({"action": action}))

    assert error.reason is RejectionReason.NO_USABLE_SCOPE
    assert "do not include access, use or disclose" in error.message


def test_reader_use_action_applies(make: Builders) -> None:
    action = [{"coding": [{"system": ACTION, "code": "correct"}]}, {"coding": [{"system": ACTION, "code": "use"}]}]

    policy = read_fhir_consent(consent({"action": action}))

    assert evaluate(policy, make.request()).decision is Decision.PERMIT


def test_reader_security_label_in_deny() -> None:
    deny = {"type": "deny", "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}

    error = rejection(consent({"provision": [deny]}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert "security labels" in error.message


def test_reader_dataset_reference(make: Builders) -> None:
    data = [{"meaning": "instance", "reference": {"identifier": {"system": "urn:medgov:dataset", "value": "ds-knuh-ct-0001"}}}]

    policy = read_fhir_consent(consent({"data": data}))

    assert policy.root.dataset_ids == frozenset({"ds-knuh-ct-0001"})
    assert evaluate(policy, make.request()).decision is Decision.PERMIT
    assert evaluate(policy, make.request(dataset=make.dataset("ds-other"))).decision is None


def test_reader_class_from_unknown_system_in_deny() -> None:
    deny = {"type": "deny", "class": [{"system": "urn:example:classes", "code": "lab"}]}

    error = rejection(consent({"provision": [deny]}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert "urn:example:classes|lab" in error.message


def test_reader_content_code_deny(make: Builders) -> None:
    hiv = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}
    deny = {"type": "deny", "code": [hiv]}
    policy = read_fhir_consent(consent({"provision": [deny]}))
    with_hiv = DatasetTerms("ds-hiv", "knuh", content=DatasetContent(content_codes=frozenset({"http://snomed.info/sct|86406008"})))
    without = DatasetTerms("ds-ct", "knuh", content=DatasetContent(content_codes=frozenset({"http://loinc.org|8302-2"})))
    unknown = DatasetTerms("ds-new", "knuh")

    assert evaluate(policy, make.request(dataset=with_hiv)).decision is Decision.DENY
    assert evaluate(policy, make.request(dataset=without)).decision is Decision.PERMIT
    assert evaluate(policy, make.request(dataset=unknown)).decision is Decision.DENY


def test_reader_data_period(make: Builders) -> None:
    permit = consent({"dataPeriod": {"start": "2019-01-01", "end": "2024-12-31"}})
    policy = read_fhir_consent(permit)
    inside = DatasetTerms("ds-a", "knuh", content=DatasetContent(date_start=datetime(2019, 3, 1).date(), date_end=datetime(2024, 11, 30).date()))
    later = DatasetTerms("ds-b", "knuh", content=DatasetContent(date_start=datetime(2019, 3, 1).date(), date_end=datetime(2025, 6, 1).date()))

    assert evaluate(policy, make.request(dataset=inside)).decision is Decision.PERMIT
    assert evaluate(policy, make.request(dataset=later)).decision is None


def test_reader_rejects_modifier_extension() -> None:
    extension = [{"url": "http://example.org/fhir/StructureDefinition/only-on-sundays", "valueBoolean": True}]

    error = rejection(consent({"modifierExtension": extension}))

    assert error.reason is RejectionReason.UNSUPPORTED_CONDITION
    assert error.path == "provision.modifierExtension"


def test_reader_rejects_reversed_period() -> None:
    error = rejection(consent({"period": {"start": "2027-01-01", "end": "2026-01-01"}}))

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert error.path == "provision.period"


def test_reader_partial_dates() -> None:
    year = read_fhir_consent(consent({"period": {"start": "2027", "end": "2027"}}))
    month = read_fhir_consent(consent({"period": {"start": "2027-02", "end": "2027-12"}}))

    assert year.root.period is not None
    assert year.root.period.start == datetime(2026, 12, 31, 15, tzinfo=UTC)
    assert year.root.period.end == datetime(2027, 12, 31, 15, tzinfo=UTC)
    assert month.root.period is not None
    assert month.root.period.start == datetime(2027, 1, 31, 15, tzinfo=UTC)
    assert month.root.period.end == datetime(2027, 12, 31, 15, tzinfo=UTC)


def test_reader_date_time_given_at() -> None:
    policy = read_fhir_consent(consent(None, dateTime="2026-11-02T10:30:00+09:00"))

    assert policy.given_at == datetime(2026, 11, 2, 1, 30, tzinfo=UTC)


def test_reader_leap_second() -> None:
    # fhir.resources keeps a dateTime in a leap second as text; it is read
    # as the instant after second 59, and an end bound includes it.
    policy = read_fhir_consent(
        consent({"period": {"start": "2016-12-31T23:59:60Z", "end": "2017-01-01T08:59:60.5+09:00"}}, dateTime="2016-12-31T23:59:60Z")
    )

    assert policy.given_at == datetime(2017, 1, 1, tzinfo=UTC)
    assert policy.root.period is not None
    assert policy.root.period.start == datetime(2017, 1, 1, tzinfo=UTC)
    assert policy.root.period.end == datetime(2017, 1, 1, 0, 0, 0, 500001, tzinfo=UTC)


def nested_provisions(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {"type": "permit"}
    provision = root
    for _ in range(levels):
        provision["provision"] = [{"type": "permit"}]
        provision = provision["provision"][0]
    return root


def test_reader_reads_nested_provisions() -> None:
    policy = read_fhir_consent(consent(nested_provisions(20)))

    assert policy.root.provisions


def test_reader_rejects_deep_nesting() -> None:
    error = rejection(consent(nested_provisions(40)))

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert "nests deeper than 64 levels" in error.message
    assert error.path is not None
    assert error.path.startswith("Consent.provision.provision[0]")


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"provision": {"period": {"start": "0001-01-01"}}}, "provision.period.start"),
        ({"provision": {"period": {"end": "9999-12-31"}}}, "provision.period.end"),
        ({"provision": {"period": {"end": "9999"}}}, "provision.period.end"),
        ({"provision": {"dataPeriod": {"end": "9999-12"}}}, "provision.dataPeriod.end"),
        ({"dateTime": "0001-01-01T00:00:00+14:00"}, "dateTime"),
        # The ends themselves: the database would store them as -infinity and infinity.
        ({"dateTime": "0001-01-01T00:00:00Z"}, "dateTime"),
        ({"provision": {"period": {"end": "9999-12-31T23:59:59.999998Z"}}}, "provision.period.end"),
    ],
)
def test_reader_rejects_dates_beyond_range(changes: dict[str, Any], path: str) -> None:
    error = rejection(consent(changes.get("provision"), **{key: value for key, value in changes.items() if key != "provision"}))

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert error.path == path
    assert "years 1 to 9999" in error.message


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (consent({"period": {"start": 2016}}), "provision.period.start"),
        (consent(None, dateTime=1700000000), "dateTime"),
        # valueTime is outside the narrower model, so fhir.resources reads this one.
        (consent(None, extension=[{"url": "https://example.org/time-of-signing", "valueTime": 3600}]), "extension[0].valueTime"),
    ],
)
def test_reader_rejects_number_for_date(resource: dict[str, Any], path: str) -> None:
    error = rejection(resource)

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert error.path == path
    assert "a date or time is a string" in error.message


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (consent({"actor": [{"role": {"coding": [{"system": PARTICIPATION, "code": "CST"}]}, "reference": None}]}),
         "provision.actor[0].reference"),
        (consent({"actor": [{"role": None, "reference": {"reference": "Organization/knuh"}}]}), "provision.actor[0].role"),
        (consent({"data": [{"meaning": "instance", "reference": None}]}), "provision.data[0].reference"),
        (consent(None, scope=None), "scope"),
    ],
)
def test_reader_rejects_null_required_element(resource: dict[str, Any], path: str) -> None:
    error = rejection(resource)

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert error.path == path


def test_reader_rejects_validator_failure() -> None:
    # fhir.resources' primitive extension check raises AttributeError on a string for `_status`.
    error = rejection(consent(None, _status="2016"))

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert "AttributeError" in error.message


def test_reader_keeps_no_patient_identity(consent_folder: Path) -> None:
    policy = read_fhir_consent(load_json(consent_folder / "Consent-consent-example-basic.json"))

    text = repr(policy)

    assert "Patient/f001" not in text
    assert "van de Heuvel" not in text


def test_reader_string_for_object_named() -> None:
    resource = consent({"type": "permit"})
    resource["scope"] = "research"

    error = rejection(resource)

    assert error.reason is RejectionReason.MALFORMED_FHIR
    assert error.path == "scope"
    assert "expected a JSON object, got the string 'research'" in error.message
    assert "Invalid JSON" not in error.message
