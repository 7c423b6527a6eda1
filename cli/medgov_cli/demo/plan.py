"""What the regional scenario does, as data: hospitals' datasets, applications and revocations.

Dataset files are real samples from the shared data folder. The legal basis
and data-use terms are the scenario's choices; the catalog reads the files
and decides by itself which datasets pass the PIPA scan.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetPlan:
    institution: str
    dataset_id: str
    title: str
    description: str
    files: tuple[str, ...]
    legal_basis: str = "pseudonymized_research"
    duo_codes: tuple[str, ...] = ("HMB",)
    keywords: tuple[str, ...] = ()


DATASETS: tuple[DatasetPlan, ...] = (
    DatasetPlan(
        "knuh", "ds-knuh-immunization", "예방접종 이력 코호트",
        "Synthea 대량 내보내기(Bulk Data) 예방접종 기록 / Immunization history from a FHIR bulk export",
        ("synthea/bulk-export-10-patients/Immunization.000.ndjson",), keywords=("Immunization", "FHIR", "예방접종"),
    ),
    DatasetPlan(
        "knuch", "ds-knuch-allergy", "알레르기 기록",
        "알레르기·과민반응 기록 / AllergyIntolerance records from a FHIR bulk export",
        ("synthea/bulk-export-10-patients/AllergyIntolerance.000.ndjson",), duo_codes=("GRU",),
        keywords=("AllergyIntolerance", "알레르기"),
    ),
    DatasetPlan(
        "dsmc", "ds-dsmc-dicom-fileset", "CR·CT·MR 영상 파일셋",
        "DICOMDIR 파일셋: 두 환자의 CR, CT, MR 검사 / DICOM file-set with CR, CT and MR studies",
        ("dicom/fileset/DICOMDIR",), keywords=("DICOM", "CT", "MR", "영상"),
    ),
    DatasetPlan(
        "yumc", "ds-yumc-imaging", "영상검사 메타데이터와 문서",
        "ImagingStudy, Media, DocumentReference 예제 / imaging study, X-ray media and a clinical document",
        ("fhir/hl7-r4-examples/imaging/ImagingStudy-example.json", "fhir/hl7-r4-examples/imaging/Media-xray.json",
         "fhir/hl7-r4-examples/other/DocumentReference-example.json"),
        duo_codes=("HMB", "NCU"), keywords=("ImagingStudy", "X-ray", "영상"),
    ),
    DatasetPlan(
        "dcmc", "ds-dcmc-medication", "처방과 연구 대상자",
        "처방 번들, 연구 대상자, 관찰 값 / medication bundle, research subject and an observation",
        ("fhir/hl7-r4-examples/bundle/Bundle-bundle-example.json",
         "fhir/hl7-r4-examples/research/ResearchSubject-example.json",
         "fhir/invalid-and-corner-cases/observation_decimal_corner_cases.json"),
        duo_codes=("GRU",), keywords=("MedicationRequest", "ResearchSubject", "처방"),
    ),
    DatasetPlan(
        "cnuh", "ds-cnuh-devices", "이식형 의료기기 기록",
        "이식형 의료기기(UDI) 기록 / implantable device records from a FHIR bulk export",
        ("synthea/bulk-export-10-patients/Device.000.ndjson",), keywords=("Device", "UDI", "의료기기"),
    ),
    DatasetPlan(
        "jnuh", "ds-jnuh-korean-cr", "흉부 CR (한글 문자셋)",
        "ISO 2022 IR 149 한글 환자명이 든 흉부 CR / chest CR with a Hangul patient name",
        ("dicom/charset/chrKoreanMulti.dcm",), legal_basis="anonymous", keywords=("CR", "CHEST", "흉부"),
    ),
)


@dataclass(frozen=True)
class ApplicationPlan:
    application_id: str
    applicant: str
    title: str
    dataset_ids: tuple[str, ...]
    purpose_codes: tuple[str, ...] = ("HMB",)
    data_environment: str = "secure_enclave"
    # Per board, the vote every voting member casts in the first round.
    first_round: dict[str, str] = field(default_factory=lambda: {"IRB": "approve", "DRB": "approve"})


VENDORS = ("vendor-medvision", "vendor-lunapath", "vendor-gwangai")
MILESTONE_APPLICATIONS = 10  # the first milestone in the grants policy is the 10th data transaction

HL7_CONSENTS = (
    "Consent-consent-example-basic.json",
    "Consent-consent-example-notTime.json",
    "Consent-consent-example-smartonfhir.json",
    "Consent-consent-example-Emergency.json",
    "Consent-consent-example-Out.json",
    "Consent-consent-example-grantor.json",
    "Consent-consent-example-notOrg.json",
    "Consent-consent-example-notThis.json",
    "Consent-consent-example-signature.json",
)
MII_CONSENT = "fhir/mii-consent-xml/Example_MII_Consent_Einwilligung_2.xml"
REVOKING_PATIENTS = 3

BOARD_PREFIX = {"daegu": "dg", "daejeon": "dj", "gwangju": "gj"}
QUORUM = 3


def voters(region: str, board: str) -> list[str]:
    """Board members who vote in the scenario; none of them works for a vendor, so none is recused."""
    prefix = BOARD_PREFIX[region]
    return [f"{prefix}-{board.lower()}-{number}" for number in range(1, QUORUM + 1)]
