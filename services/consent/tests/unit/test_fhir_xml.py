"""FHIR XML to the FHIR JSON structure, on the MII sample and on small documents."""

import pytest

from medgov_consent.domain.errors import ConsentRejected, RejectionReason
from medgov_consent.domain.fhir_consent import read_fhir_consent_xml
from medgov_consent.domain.fhir_xml import FhirXmlError, parse_fhir_xml


def consent_xml(body: str) -> str:
    return f'<Consent xmlns="http://hl7.org/fhir">{body}</Consent>'


def test_mii_sample_structure(mii_consent_xml: bytes) -> None:
    resource = parse_fhir_xml(mii_consent_xml)

    provision = resource["provision"]

    assert resource["resourceType"] == "Consent"
    assert resource["dateTime"] == "2020-09-01"
    assert resource["meta"]["profile"] == [
        "https://www.medizininformatik-initiative.de/fhir/modul-consent/StructureDefinition/mii-pr-consent-einwilligung"
    ]
    assert len(resource["category"]) == 4
    assert resource["policyRule"]["extension"][0]["valueBase64Binary"] == "TUlJIEJDIEV4YW1wbGUgWEFDTUw="
    assert resource["extension"][0]["extension"][0]["url"] == "domain"
    assert provision["type"] == "deny"
    assert [item["type"] for item in provision["provision"]] == ["permit", "permit", "permit"]
    assert [len(item["code"]) for item in provision["provision"]] == [3, 1, 2]
    assert provision["provision"][1]["code"][0]["coding"][0]["display"] == "MDAT_wissenschaftlich_nutzen_EU_DSGVO_NIVEAU"


def test_xml_primitive_types() -> None:
    document = (
        '<Observation xmlns="http://hl7.org/fhir"><status value="final"/>'
        '<code><text value="x"/></code><valueBoolean value="true"/>'
        '<component><code><text value="n"/></code><valueInteger value="42"/></component></Observation>'
    )

    resource = parse_fhir_xml(document)

    assert resource["valueBoolean"] is True
    assert resource["component"][0]["valueInteger"] == 42


def test_xml_primitive_extension() -> None:
    document = consent_xml(
        '<status value="active"><extension url="http://example.org/note"><valueString value="checked"/></extension></status>'
    )

    resource = parse_fhir_xml(document)

    assert resource["status"] == "active"
    assert resource["_status"] == {"extension": [{"url": "http://example.org/note", "valueString": "checked"}]}


def test_xml_narrative_div() -> None:
    document = consent_xml(
        '<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>동의서</p></div></text>'
    )

    resource = parse_fhir_xml(document)

    assert resource["text"]["div"] == '<div xmlns="http://www.w3.org/1999/xhtml"><p>동의서</p></div>'


def test_xml_contained_resource() -> None:
    document = consent_xml('<contained><Organization><id value="org1"/><name value="경북대학교병원"/></Organization></contained>')

    resource = parse_fhir_xml(document)

    assert resource["contained"] == [{"resourceType": "Organization", "id": "org1", "name": "경북대학교병원"}]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('<!DOCTYPE x [<!ENTITY a "b">]><Consent xmlns="http://hl7.org/fhir"/>', "DTD"),
        ("<Consent/>", "not in the FHIR namespace"),
        ('<Consent xmlns="http://hl7.org/fhir"><colour value="blue"/></Consent>', "Consent.colour"),
        ('<Consent xmlns="http://hl7.org/fhir"><status value="active"/><status value="draft"/></Consent>', "more than once"),
        ('<Consent xmlns="http://hl7.org/fhir"><status/></Consent>', "needs a value attribute"),
        ('<Consent xmlns="http://hl7.org/fhir"><status value="active" colour="x"/></Consent>', "colour"),
        ('<Consent xmlns="http://hl7.org/fhir"><status value="active">', "not well-formed"),
        ('<Spaceship xmlns="http://hl7.org/fhir"/>', "not a FHIR R4 resource type"),
        (
            '<Consent xmlns="http://hl7.org/fhir"><text><status value="generated"/>'
            '<div xmlns="http://www.w3.org/1999/xhtml"><p xmlns="">x</p></div></text></Consent>',
            "Consent.text.div: the narrative cannot be written as XHTML",
        ),
        (
            '<Consent xmlns="http://hl7.org/fhir">' + "<provision>" * 120 + "</provision>" * 120 + "</Consent>",
            "nests elements 121 levels deep; at most 100 are read",
        ),
    ],
)
def test_xml_rejects(document: str, message: str) -> None:
    with pytest.raises(FhirXmlError) as caught:
        parse_fhir_xml(document)

    assert message in str(caught.value)


def test_xml_rejects_non_utf8() -> None:
    document = consent_xml('<status value="active"/>').encode("utf-16")

    with pytest.raises(FhirXmlError) as caught:
        parse_fhir_xml(document)

    assert "not UTF-8" in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_xml_rejects_dtd_without_bom(encoding: str) -> None:
    # Without a byte-order mark, ASCII text in these encodings is valid UTF-8, and
    # expat would read the DTD in that encoding and expand the entity.
    document = '<?xml version="1.0"?><!DOCTYPE Consent [<!ENTITY b "expanded">]>' + consent_xml('<status value="&b;"/>')

    with pytest.raises(FhirXmlError) as caught:
        parse_fhir_xml(document.encode(encoding))

    assert "NUL bytes" in str(caught.value)
    assert "must be UTF-8" in str(caught.value)


def test_xml_boolean_must_be_literal() -> None:
    document = '<Observation xmlns="http://hl7.org/fhir"><valueBoolean value="yes"/></Observation>'

    with pytest.raises(FhirXmlError) as caught:
        parse_fhir_xml(document)

    assert "Observation.valueBoolean" in str(caught.value)


def test_xml_consent_reader_reports_malformed() -> None:
    with pytest.raises(ConsentRejected) as caught:
        read_fhir_consent_xml("<Consent/>")

    assert caught.value.reason is RejectionReason.MALFORMED_FHIR


def test_xml_consent_reader_not_a_consent() -> None:
    with pytest.raises(ConsentRejected) as caught:
        read_fhir_consent_xml('<Contract xmlns="http://hl7.org/fhir"><status value="executed"/></Contract>')

    assert caught.value.reason is RejectionReason.NOT_A_CONSENT
