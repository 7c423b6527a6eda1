"""Errors of the consent domain; each carries a stable code that the HTTP and Kafka entrypoints report."""

from enum import StrEnum

from medgov_shared.contracts.guards import redact_personal_data


class RejectionReason(StrEnum):
    """Reason code for rejecting a consent, revocation or scope from outside."""

    MALFORMED_FHIR = "malformed_fhir"
    NOT_A_CONSENT = "not_a_consent"
    NOT_ACTIVE = "consent_not_active"
    NOT_A_DATA_USE_CONSENT = "not_a_data_use_consent"
    NO_DECISION = "no_decision"
    UNKNOWN_INSTITUTION = "unknown_institution"
    UNSUPPORTED_CONDITION = "unsupported_condition"
    NO_USABLE_SCOPE = "no_usable_scope"
    CONSENT_ID_TAKEN = "consent_id_taken"
    OTHER_REGION = "subject_of_other_region"
    INSTITUTION_OF_OTHER_REGION = "institution_of_other_region"
    PERSONAL_DATA = "personal_data"


class ConsentDomainError(Exception):
    """Base of the domain's errors; `code` is a stable machine-readable name."""

    code: str = "consent_error"

    def __init__(self, message: str) -> None:
        # Messages may quote the input (a FHIR element's value or key), and they go back
        # to the sender and into dead letters and logs.
        message = redact_personal_data(message)
        super().__init__(message)
        self.message = message


class ConsentRejected(ConsentDomainError):
    """Raised when a consent, revocation or scope cannot be recorded; `path` names the offending element."""

    def __init__(self, reason: RejectionReason, message: str, *, path: str | None = None) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.reason = reason
        self.code = reason.value
        self.path = redact_personal_data(path) if path else path


class UnknownSubject(ConsentDomainError):
    code = "unknown_subject"


class UnknownExclusion(ConsentDomainError):
    code = "unknown_exclusion"


class NotAParty(ConsentDomainError):
    """Raised when an institution acknowledges an exclusion it is neither grantee nor holder of."""

    code = "not_a_party"


class NotConsentRecorder(ConsentDomainError):
    """Raised when a hospital revokes a consent that another hospital recorded."""

    code = "not_consent_recorder"


class UnknownConsent(ConsentDomainError):
    code = "unknown_consent"
