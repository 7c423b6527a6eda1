"""Code systems and codes the FHIR Consent reader understands, and what each means on this platform.

Research purposes of HL7 v3 ActReason are those under HRESCH (healthcare
research) in THO's v3-ActReason code system. MII policy codes are from the
German Medical Informatics Initiative consent module (code system OID
2.16.840.1.113883.3.1937.777.24.5.3), in which code .8
(MDAT_wissenschaftlich_nutzen_EU_DSGVO_NIVEAU) permits handing recoded
medical data to researchers for medical research.
"""

from medgov_consent.domain.duo import DISEASE_SPECIFIC, HEALTH_MEDICAL_BIOMEDICAL, POPULATION_ORIGINS
from medgov_consent.domain.policy import DataClassKind, Decision

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
# Privacy consent directives govern collection, use and disclosure of data,
# research use included; treatment and advance-directive consents do not.
DATA_USE_SCOPES = frozenset({"research", "patient-privacy"})

ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
POLICY_RULE_DECISIONS = {
    "OPTIN": Decision.PERMIT,
    "OPTINR": Decision.PERMIT,
    "OPTOUT": Decision.DENY,
    "OPTOUTE": Decision.DENY,
}

ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# HRESCH spans health research including population origins research (its
# child POARCH), which DUO's HMB excludes, so it maps to both purposes.
RESEARCH_REASONS: dict[str, tuple[str, ...]] = {
    "HRESCH": (HEALTH_MEDICAL_BIOMEDICAL, POPULATION_ORIGINS),
    "BIORCH": (HEALTH_MEDICAL_BIOMEDICAL,),
    "CLINTRCH": (HEALTH_MEDICAL_BIOMEDICAL,),
    "CLINTRCHNPC": (HEALTH_MEDICAL_BIOMEDICAL,),
    "CLINTRCHPC": (HEALTH_MEDICAL_BIOMEDICAL,),
    "PRECLINTRCH": (HEALTH_MEDICAL_BIOMEDICAL,),
    "TRANSRCH": (HEALTH_MEDICAL_BIOMEDICAL,),
    "DSRCH": (DISEASE_SPECIFIC,),
    "POARCH": (POPULATION_ORIGINS,),
}

# DUO has no FHIR code system URI of its own; these are its OBO PURLs.
DUO_SYSTEMS = frozenset({"http://purl.obolibrary.org/obo/duo", "http://purl.obolibrary.org/obo/duo.owl"})

PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CUSTODIAN_ROLES = frozenset({"CST"})
RECIPIENT_ROLES = frozenset({"PRCP", "IRCP"})

CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
# Research use under a grant retrieves (access), uses and, for extracts,
# transfers (disclose) data; collect and correct are other acts.
RESEARCH_ACTIONS = frozenset({"access", "use", "disclose"})

DATA_CLASS_SYSTEMS = {
    "http://hl7.org/fhir/resource-types": DataClassKind.RESOURCE_TYPE,
    "urn:ietf:bcp:13": DataClassKind.MEDIA_TYPE,
}

MII_POLICY_SYSTEM = "urn:oid:2.16.840.1.113883.3.1937.777.24.5.3"
MII_SCIENTIFIC_USE_OF_MEDICAL_DATA = "2.16.840.1.113883.3.1937.777.24.5.3.8"
# Collecting (.6), storing and processing (.7) and scientific use (.8) of
# medical data: refusing any of them refuses research use of that data.
MII_MEDICAL_DATA_CODES = frozenset(
    {
        "2.16.840.1.113883.3.1937.777.24.5.3.6",
        "2.16.840.1.113883.3.1937.777.24.5.3.7",
        MII_SCIENTIFIC_USE_OF_MEDICAL_DATA,
    }
)

# Identifier systems a hospital uses to name platform parties inside a Consent.
INSTITUTION_SYSTEM = "urn:medgov:institution"
DATASET_SYSTEM = "urn:medgov:dataset"

NON_INSTITUTION_ACTORS = frozenset(
    {"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Group", "CareTeam", "Device"}
)
