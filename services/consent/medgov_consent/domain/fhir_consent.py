"""Reading a FHIR R4 Consent into a ConsentPolicy, or rejecting it with a specific reason.

The resource is validated with fhir.resources' R4B model, whose Consent has the
same elements as R4's. Reading rules:

- Only active Consents with scope `research` or `patient-privacy` are read.
- A root provision without `type` takes its decision from `policyRule`
  (OPTIN, OPTINR: permit; OPTOUT, OPTOUTE: deny). Nested provisions must
  carry a type.
- Dates without a time zone are read in Korea Standard Time, the zone of the
  platform's hospitals, and an end bound includes the whole of its last day
  (FHIR Period.end includes any time that matches it at its precision).
- Actors with role CST restrict the data holder, actors with role PRCP or IRCP
  the recipient. Both must name a platform institution, as
  `Organization/<institution id>` or by identifier system
  urn:medgov:institution; any other Organization is rejected as unknown.
- A condition the platform cannot evaluate (a person as actor, a single
  record as data, a security label ...) makes a permit never apply, and
  rejects a deny, because ignoring a deny would release data the patient
  withheld.
- A Consent whose root provision can never apply to research use on the
  platform has no usable scope and is rejected.

`Consent.patient`, `performer` and the narrative are never read, because the
platform identifies the subject only by the pseudonym sent with the Consent.
"""

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from fhir.resources.R4B.consent import Consent, ConsentProvision
from fhir.resources.R4B.period import Period as FhirPeriod
from fhir.resources.R4B.reference import Reference
from pydantic import ValidationError

from medgov_shared.contracts.guards import PersonalDataError, reject_personal_data
from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.types import storable_instant
from medgov_shared.fhir_json import find_number_for_time

from medgov_consent.domain import duo, fhir_consent_model
from medgov_consent.domain import fhir_codes as codes
from medgov_consent.domain.errors import ConsentRejected, RejectionReason
from medgov_consent.domain.fhir_xml import FhirXmlError, parse_fhir_xml
from medgov_consent.domain.policy import KOREA_STANDARD_TIME, ConsentPolicy, DataClass, Decision, Period, Provision

# A validated resource comes from fhir.resources or from the narrower model of
# fhir_consent_model, whose classes have the same attribute names.
AnyConsent = Consent | fhir_consent_model.Consent
AnyProvision = ConsentProvision | fhir_consent_model.ConsentProvision
AnyPeriod = FhirPeriod | fhir_consent_model.Period
AnyReference = Reference | fhir_consent_model.Reference


def read_fhir_consent(
    resource: Mapping[str, Any],
    *,
    institution_ids: Collection[str] | None = None,
    local_zone: tzinfo = KOREA_STANDARD_TIME,
) -> ConsentPolicy:
    """Read a FHIR R4 Consent given as parsed JSON; raise ConsentRejected if it cannot be used."""
    return _read_validated(_validate(resource), institution_ids=institution_ids, local_zone=local_zone)


def _read_validated(consent: AnyConsent, *, institution_ids: Collection[str] | None, local_zone: tzinfo) -> ConsentPolicy:
    _reject_modifier_extensions(consent.modifierExtension, "Consent")
    _require_active(consent)
    _require_data_use_scope(consent)

    known = frozenset(institution_ids) if institution_ids is not None else frozenset(all_institutions())
    reader = _ProvisionReader(known, local_zone)
    root = reader.read_root(consent.provision, _policy_rule_decision(consent))
    if root.inapplicable:
        raise ConsentRejected(
            RejectionReason.NO_USABLE_SCOPE,
            f"the Consent never applies to research use on this platform: {root.inapplicable}",
            path=root.path,
        )

    given_at = _instant(consent.dateTime, local_zone, end=False, path="dateTime") if consent.dateTime else None
    return ConsentPolicy(root=root, source="fhir", fhir_id=consent.id, given_at=given_at, notes=tuple(reader.notes))


def read_fhir_consent_xml(
    document: bytes | str,
    *,
    institution_ids: Collection[str] | None = None,
    local_zone: tzinfo = KOREA_STANDARD_TIME,
) -> ConsentPolicy:
    """Read a FHIR R4 Consent given as FHIR XML; raise ConsentRejected if it cannot be used."""
    return read_fhir_consent(parse_fhir_consent_xml(document), institution_ids=institution_ids, local_zone=local_zone)


def parse_fhir_consent_xml(document: bytes | str) -> dict[str, Any]:
    """Return the FHIR JSON form of a resource given as FHIR XML; raise ConsentRejected when the XML is malformed."""
    try:
        return parse_fhir_xml(document)
    except FhirXmlError as error:
        raise ConsentRejected(RejectionReason.MALFORMED_FHIR, str(error)) from error


def reject_direct_identifiers(resource: Mapping[str, Any]) -> None:
    """Raise ConsentRejected if the resource contains a resident registration number or a raw patient identifier field.

    A RecordConsent from Kafka gets this check from its payload model, so
    only the HTTP routes call it.
    """
    try:
        reject_personal_data(resource, "fhir_consent")
    except PersonalDataError as error:
        raise ConsentRejected(RejectionReason.PERSONAL_DATA, str(error)) from error


def _validate(resource: Mapping[str, Any]) -> AnyConsent:
    if not isinstance(resource, Mapping):
        raise ConsentRejected(RejectionReason.MALFORMED_FHIR, f"expected a JSON object, got {type(resource).__name__}")
    resource_type = resource.get("resourceType")
    if resource_type != "Consent":
        raise ConsentRejected(
            RejectionReason.NOT_A_CONSENT, f"resourceType is {resource_type!r}; expected 'Consent'", path="resourceType"
        )
    _check_raw_shape(resource)
    try:
        return fhir_consent_model.Consent.model_validate(resource)
    except ValidationError:
        pass  # not covered by the narrower model, so fhir.resources decides and names the problem
    try:
        validated = Consent.model_validate(dict(resource))
    except (AttributeError, TypeError, KeyError) as error:
        # Some of fhir.resources' own validators fail this way on odd input, such as a string for `_status`.
        raise ConsentRejected(
            RejectionReason.MALFORMED_FHIR, f"invalid FHIR R4 Consent: its validation failed with {type(error).__name__}: {error}"
        ) from error
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "Consent"
        problem = first["msg"]
        if first["type"] == "json_invalid" and isinstance(first.get("input"), str):
            # fhir.resources tries to parse a string given for a complex element as JSON,
            # and pydantic's "Invalid JSON" would send the sender looking at the file's syntax.
            problem = f"expected a JSON object, got the string {first['input'][:60]!r}"
        raise ConsentRejected(
            RejectionReason.MALFORMED_FHIR,
            f"invalid FHIR R4 Consent ({error.error_count()} errors), first: {problem}",
            path=location,
        ) from error
    # The narrower model reads dates as strings only, so a number reaches fhir.resources, which takes it as Unix time.
    number = find_number_for_time(validated, resource)
    if number is not None:
        raise ConsentRejected(RejectionReason.MALFORMED_FHIR, number.message, path=number.path)
    return validated


# A real Consent nests a few levels (the MII broad consent 8). fhir.resources
# fails with RecursionError from about 120 nested provisions, and storing a
# deep document fails too, so deeper resources are rejected before either.
MAX_NESTING = 64


def _check_raw_shape(resource: Mapping[str, Any]) -> None:
    """Raise ConsentRejected for nesting deeper than MAX_NESTING."""
    _check_raw_node(resource, ["Consent"], 1)


def _check_raw_node(value: Any, trail: list[str | int], depth: int) -> None:
    # `trail` is the path to `value`, extended and shortened in place, because
    # this walk runs on every consent and the path is needed only for an error.
    if depth > MAX_NESTING:
        raise ConsentRejected(
            RejectionReason.MALFORMED_FHIR, f"the resource nests deeper than {MAX_NESTING} levels", path=_trail_path(trail)
        )
    if isinstance(value, Mapping):
        children: Iterable[tuple[str | int, Any]] = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return
    for segment, item in children:
        if type(item) is str:
            continue
        trail.append(segment)
        _check_raw_node(item, trail, depth + 1)
        trail.pop()


def _trail_path(trail: list[str | int]) -> str:
    return "".join(f"[{segment}]" if isinstance(segment, int) else f".{segment}" for segment in trail).lstrip(".")


def _reject_modifier_extensions(extensions: list[Any] | None, path: str) -> None:
    """Reject modifier extensions: FHIR forbids processing an element whose modifier extension is not understood."""
    if extensions:
        urls = ", ".join(extension.url for extension in extensions)
        raise ConsentRejected(
            RejectionReason.UNSUPPORTED_CONDITION, f"modifier extensions {urls} change its meaning and are not understood", path=f"{path}.modifierExtension"
        )


def _require_active(consent: AnyConsent) -> None:
    if consent.status == "active":
        return
    hint = "; to withdraw a recorded consent, send RevokeConsent" if consent.status == "inactive" else ""
    raise ConsentRejected(
        RejectionReason.NOT_ACTIVE, f"status is {consent.status!r}; only active Consents are recorded{hint}", path="status"
    )


def _required(value: Any, path: str) -> Any:
    # fhir.resources accepts null for a required complex element; the reader cannot.
    if value is None:
        raise ConsentRejected(RejectionReason.MALFORMED_FHIR, "the element is required but missing or null", path=path)
    return value


def _require_data_use_scope(consent: AnyConsent) -> None:
    _required(consent.scope, "scope")
    scope_codes = _codes(consent.scope.coding or [], codes.CONSENT_SCOPE_SYSTEM)
    if scope_codes & codes.DATA_USE_SCOPES:
        return
    found = ", ".join(sorted(_describe_codings(consent.scope.coding or []))) or "no coding"
    raise ConsentRejected(
        RejectionReason.NOT_A_DATA_USE_CONSENT,
        f"scope is {found}; only research and patient-privacy Consents govern data use",
        path="scope",
    )


def _policy_rule_decision(consent: AnyConsent) -> Decision | None:
    if consent.policyRule is None:
        return None
    for code in _codes(consent.policyRule.coding or [], codes.ACT_CODE_SYSTEM):
        if code in codes.POLICY_RULE_DECISIONS:
            return codes.POLICY_RULE_DECISIONS[code]
    return None


@dataclass
class _Conditions:
    """Conditions of one provision while it is read, and why it can never apply, if so."""

    decision: Decision
    path: str
    inapplicable: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)

    def cannot_evaluate(self, condition: str) -> None:
        """Record a condition the platform cannot evaluate: a permit never applies, a deny is rejected."""
        if self.decision is Decision.DENY:
            raise ConsentRejected(
                RejectionReason.UNSUPPORTED_CONDITION,
                f"{condition}; the platform cannot enforce this deny, so the Consent is rejected",
                path=self.path,
            )
        self.inapplicable.append(f"{condition}, so this permit never applies")


class _ProvisionReader:
    def __init__(self, institution_ids: frozenset[str], local_zone: tzinfo) -> None:
        self.institution_ids = institution_ids
        self.local_zone = local_zone
        self.notes: list[str] = []

    def read_root(self, element: AnyProvision | None, policy_decision: Decision | None) -> Provision:
        declared = _decision(element.type, "provision.type") if element is not None and element.type else None
        decision = declared or policy_decision
        if decision is None:
            raise ConsentRejected(
                RejectionReason.NO_DECISION,
                "the root provision has no type and policyRule is not one of OPTIN, OPTINR, OPTOUT, OPTOUTE",
                path="provision",
            )
        if element is None:
            return Provision(decision=decision)
        return self.read(element, "provision", decision)

    def read(self, element: AnyProvision, path: str, decision: Decision) -> Provision:
        _reject_modifier_extensions(element.modifierExtension, path)
        conditions = _Conditions(decision, path)
        self._read_period(element, conditions)
        self._read_purposes(element, conditions)
        self._read_actors(element, conditions)
        self._read_actions(element, conditions)
        self._read_security_labels(element, conditions)
        self._read_data_classes(element, conditions)
        self._read_codes(element, conditions)
        self._read_data(element, conditions)
        self._read_data_period(element, conditions)

        children = tuple(self._read_child(child, f"{path}.provision[{index}]") for index, child in enumerate(element.provision or []))
        inapplicable = "; ".join(conditions.inapplicable) or None
        if inapplicable and path != "provision":
            self.notes.append(f"{path} never applies: {inapplicable}")
        return Provision(decision=decision, path=path, inapplicable=inapplicable, provisions=children, **conditions.fields)

    def _read_child(self, element: AnyProvision, path: str) -> Provision:
        if not element.type:
            raise ConsentRejected(
                RejectionReason.NO_DECISION, "a nested provision must have type permit or deny", path=f"{path}.type"
            )
        return self.read(element, path, _decision(element.type, f"{path}.type"))

    def _read_period(self, element: AnyProvision, conditions: _Conditions) -> None:
        if element.period is not None:
            conditions.fields["period"] = self._period(element.period, f"{conditions.path}.period")

    def _read_data_period(self, element: AnyProvision, conditions: _Conditions) -> None:
        if element.dataPeriod is not None:
            conditions.fields["data_period"] = self._period(element.dataPeriod, f"{conditions.path}.dataPeriod")

    def _period(self, period: AnyPeriod, path: str) -> Period:
        start = _instant(period.start, self.local_zone, end=False, path=f"{path}.start") if period.start else None
        end = _instant(period.end, self.local_zone, end=True, path=f"{path}.end") if period.end else None
        try:
            return Period(start=start, end=end)
        except ValueError as error:
            raise ConsentRejected(RejectionReason.MALFORMED_FHIR, str(error), path=path) from error

    def _read_purposes(self, element: AnyProvision, conditions: _Conditions) -> None:
        if not element.purpose:
            return
        research: list[str] = []
        other: list[str] = []
        for index, coding in enumerate(element.purpose):
            where = f"{conditions.path}.purpose[{index}]"
            if coding.system in codes.DUO_SYSTEMS:
                research.append(_duo_code(coding.code, where))
            elif coding.system == codes.ACT_REASON_SYSTEM and coding.code in codes.RESEARCH_REASONS:
                research.extend(codes.RESEARCH_REASONS[coding.code])
            elif coding.system == codes.ACT_REASON_SYSTEM:
                other.append(coding.code or "")
            else:
                conditions.cannot_evaluate(f"purpose {coding.system}|{coding.code} is from an unknown code system")

        if not research:
            conditions.inapplicable.append(f"its purposes {', '.join(other)} are not research purposes")
            return
        purposes, modifiers = duo.split_codes(research)
        if modifiers and conditions.decision is Decision.DENY:
            raise ConsentRejected(
                RejectionReason.UNSUPPORTED_CONDITION,
                f"DUO modifiers {', '.join(sorted(modifiers))} restrict a permit and have no meaning in a deny",
                path=f"{conditions.path}.purpose",
            )
        conditions.fields["purposes"] = duo.PurposeCondition.from_codes(research)

    def _read_actors(self, element: AnyProvision, conditions: _Conditions) -> None:
        holders: set[str] = set()
        recipients: set[str] = set()
        for index, actor in enumerate(element.actor or []):
            where = f"{conditions.path}.actor[{index}]"
            _required(actor.role, f"{where}.role")
            institution = self._institution(_required(actor.reference, f"{where}.reference"), f"{where}.reference")
            roles = _codes(actor.role.coding or [], codes.PARTICIPATION_SYSTEM)
            role_names = ", ".join(sorted(_describe_codings(actor.role.coding or []))) or "without coding"
            target = _describe_reference(actor.reference)

            if institution is None:
                conditions.cannot_evaluate(f"{where} names {target}, which is not an institution; the platform grants access only to institutions")
            elif roles & codes.CUSTODIAN_ROLES:
                holders.add(institution)
            elif roles & codes.RECIPIENT_ROLES:
                recipients.add(institution)
            else:
                conditions.cannot_evaluate(f"{where} has role {role_names}; only CST (data holder) and PRCP or IRCP (recipient) are evaluated")

        if holders:
            conditions.fields["holder_ids"] = frozenset(holders)
        if recipients:
            conditions.fields["recipient_ids"] = frozenset(recipients)

    def _institution(self, reference: AnyReference, path: str) -> str | None:
        """Return the institution id a reference names, None for a person or device; raise for an unknown organization."""
        identifier = reference.identifier
        if identifier is not None and identifier.system == codes.INSTITUTION_SYSTEM:
            return self._known_institution(identifier.value or "", f"identifier {identifier.value!r}", path)

        resource_type, local_id = _split_reference(reference.reference or "")
        resource_type = reference.type or resource_type
        if resource_type in codes.NON_INSTITUTION_ACTORS:
            return None
        return self._known_institution(local_id, _describe_reference(reference), path)

    def _known_institution(self, candidate: str, described: str, path: str) -> str:
        if candidate in self.institution_ids:
            return candidate
        raise ConsentRejected(
            RejectionReason.UNKNOWN_INSTITUTION,
            f"{described} is not a platform institution; name it as Organization/<institution id> "
            f"or with identifier system {codes.INSTITUTION_SYSTEM}",
            path=path,
        )

    def _read_actions(self, element: AnyProvision, conditions: _Conditions) -> None:
        if not element.action:
            return
        codings = [coding for concept in element.action for coding in concept.coding or []]
        unknown = [coding for coding in codings if coding.system != codes.CONSENT_ACTION_SYSTEM]
        if unknown:
            conditions.cannot_evaluate(f"actions {', '.join(_describe_codings(unknown))} are from an unknown code system")
        actions = _codes(codings, codes.CONSENT_ACTION_SYSTEM)
        if not actions & codes.RESEARCH_ACTIONS:
            conditions.inapplicable.append(f"its actions {', '.join(sorted(actions))} do not include access, use or disclose")

    def _read_security_labels(self, element: AnyProvision, conditions: _Conditions) -> None:
        if element.securityLabel:
            labels = ", ".join(_describe_codings(element.securityLabel))
            conditions.cannot_evaluate(f"security labels {labels} are not recorded on platform datasets")

    def _read_data_classes(self, element: AnyProvision, conditions: _Conditions) -> None:
        if not element.class_fhir:
            return
        classes: set[DataClass] = set()
        for coding in element.class_fhir:
            kind = codes.DATA_CLASS_SYSTEMS.get(coding.system or "")
            if kind is None or not coding.code:
                conditions.cannot_evaluate(f"data class {coding.system}|{coding.code} is from an unknown code system")
                continue
            classes.add(DataClass(kind, coding.code))
        conditions.fields["data_classes"] = frozenset(classes)

    def _read_codes(self, element: AnyProvision, conditions: _Conditions) -> None:
        if not element.code:
            return
        codings = [coding for concept in element.code for coding in concept.coding or []]
        policy_codes = _codes(codings, codes.MII_POLICY_SYSTEM)
        if policy_codes:
            self._read_mii_policy(policy_codes, conditions)
            return
        conditions.fields["content_codes"] = frozenset(f"{coding.system}|{coding.code}" for coding in codings)

    def _read_mii_policy(self, policy_codes: frozenset[str], conditions: _Conditions) -> None:
        """Read MII policy codes, which state what is permitted or denied rather than what the data contains."""
        relevant = (
            {codes.MII_SCIENTIFIC_USE_OF_MEDICAL_DATA}
            if conditions.decision is Decision.PERMIT
            else codes.MII_MEDICAL_DATA_CODES
        )
        if not policy_codes & relevant:
            listed = ", ".join(sorted(policy_codes))
            conditions.inapplicable.append(f"its MII policy codes {listed} concern other processing than research use of medical data")
            return
        research = frozenset({duo.HEALTH_MEDICAL_BIOMEDICAL})
        existing = conditions.fields.get("purposes")
        if existing is None:
            conditions.fields["purposes"] = duo.PurposeCondition(purposes=research)
            return
        narrowed = duo.intersect(existing.purposes, research)
        if narrowed == frozenset():
            conditions.inapplicable.append("its purposes and its MII policy codes share no research purpose")
            return
        conditions.fields["purposes"] = duo.PurposeCondition(purposes=narrowed, excludes_for_profit=existing.excludes_for_profit)

    def _read_data(self, element: AnyProvision, conditions: _Conditions) -> None:
        if not element.data:
            return
        datasets: set[str] = set()
        for index, item in enumerate(element.data):
            identifier = _required(item.reference, f"{conditions.path}.data[{index}].reference").identifier
            if identifier is not None and identifier.system == codes.DATASET_SYSTEM and identifier.value:
                datasets.add(identifier.value)
                continue
            conditions.cannot_evaluate(
                f"data[{index}] refers to {_describe_reference(item.reference)}, a single record; the platform applies "
                f"consent per dataset (identifier system {codes.DATASET_SYSTEM})"
            )
        conditions.fields["dataset_ids"] = frozenset(datasets)


def _decision(value: str, path: str) -> Decision:
    # fhir.resources does not check the values of required code bindings.
    try:
        return Decision(value)
    except ValueError:
        raise ConsentRejected(RejectionReason.MALFORMED_FHIR, f"type {value!r} is not permit or deny", path=path) from None


def _duo_code(code: str | None, path: str) -> str:
    try:
        return duo.normalize(code or "")
    except duo.UnknownDuoCode as error:
        raise ConsentRejected(RejectionReason.UNSUPPORTED_CONDITION, str(error), path=path) from error


def _instant(value: datetime | date | str, zone: tzinfo, *, end: bool, path: str) -> datetime:
    """Return a FHIR date or dateTime as a UTC instant: its start, or for `end` the first instant after it.

    Raise ConsentRejected for a date whose instant falls outside years 1 to 9999 in UTC.
    """
    try:
        return storable_instant(_utc_instant(value, zone, end=end))
    except (OverflowError, ValueError):
        raise ConsentRejected(
            RejectionReason.MALFORMED_FHIR, f"{value} is outside the dates the platform can store (years 1 to 9999 in UTC)", path=path
        ) from None


def _utc_instant(value: datetime | date | str, zone: tzinfo, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        # Python datetimes resolve microseconds, so one microsecond later is
        # the first instant after an end given to the second.
        return (aware + timedelta(microseconds=1) if end else aware).astimezone(UTC)
    if isinstance(value, date):
        day = value + timedelta(days=1) if end else value
        return datetime.combine(day, time(), zone).astimezone(UTC)
    if "T" in value:
        return _utc_instant(_leap_second(value), zone, end=end)
    return _partial_date_instant(value, zone, end=end)


def _leap_second(value: str) -> datetime:
    """Return the instant after second 59 of a dateTime in a leap second (`23:59:60Z`), which fhir.resources leaves as text."""
    date_part, _, time_part = value.partition("T")
    second_59 = datetime.fromisoformat(f"{date_part}T{time_part[:6]}59{time_part[8:]}")
    return second_59 + timedelta(seconds=1)


def _partial_date_instant(value: str, zone: tzinfo, *, end: bool) -> datetime:
    """Return the start of a FHIR year (`2016`) or year-month (`2016-05`), or the start of the next one."""
    parts = [int(part) for part in value.split("-")]
    year, month = parts[0], parts[1] if len(parts) > 1 else None
    if month is None:
        first = date(year + 1 if end else year, 1, 1)
    elif end:
        first = date(year + month // 12, month % 12 + 1, 1)
    else:
        first = date(year, month, 1)
    return datetime.combine(first, time(), zone).astimezone(UTC)


def _codes(codings: Iterable[Any], system: str) -> frozenset[str]:
    return frozenset(coding.code for coding in codings if coding.system == system and coding.code)


def _describe_codings(codings: Iterable[Any]) -> list[str]:
    """Describe each coding as its code and system for a message; a coding without code is named as such."""
    described = []
    for coding in codings:
        code = coding.code or "a coding without code"
        described.append(code if coding.system is None else f"{code} ({coding.system})")
    return described


def _split_reference(reference: str) -> tuple[str, str]:
    """Return (resource type, id) of a relative or absolute literal reference."""
    segments = [segment for segment in reference.split("/") if segment]
    if "_history" in segments:
        segments = segments[: segments.index("_history")]
    if len(segments) < 2:
        return "", reference
    return segments[-2], segments[-1]


def _describe_reference(reference: AnyReference) -> str:
    if reference.reference:
        return reference.reference
    if reference.identifier is not None:
        return f"identifier {reference.identifier.system}|{reference.identifier.value}"
    return f"a reference with only the display {reference.display!r}"
