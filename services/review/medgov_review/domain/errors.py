"""Domain errors of the review service.

Each error carries a `kind` that the HTTP entrypoint maps to a status code once
(invalid 422, not_found 404, forbidden 403, conflict 409) and a stable `code`
that clients can branch on. A command that raises changes nothing.
"""

from enum import StrEnum
from typing import Any, ClassVar

from medgov_shared.contracts.guards import PersonalDataError, reject_personal_data


class ErrorKind(StrEnum):
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"


class ReviewError(Exception):
    """Base of every rejected command; `details` names the values involved."""

    kind: ClassVar[ErrorKind]
    code: ClassVar[str]

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidApplication(ReviewError):
    kind = ErrorKind.INVALID
    code = "invalid_application"


class InvalidPeriod(InvalidApplication):
    code = "invalid_period"


class UnknownDataset(InvalidApplication):
    code = "unknown_dataset"


class DatasetWithdrawn(InvalidApplication):
    code = "dataset_withdrawn"


class UnknownInstitution(InvalidApplication):
    code = "unknown_institution"


class PersonalDataInText(InvalidApplication):
    code = "personal_data_in_text"


class InvalidVote(ReviewError):
    kind = ErrorKind.INVALID
    code = "invalid_vote"


class ApplicationNotFound(ReviewError):
    kind = ErrorKind.NOT_FOUND
    code = "application_not_found"


class GrantNotFound(ReviewError):
    kind = ErrorKind.NOT_FOUND
    code = "grant_not_found"


class NotBoardMember(ReviewError):
    kind = ErrorKind.FORBIDDEN
    code = "not_board_member"


class MemberRecused(ReviewError):
    kind = ErrorKind.FORBIDDEN
    code = "member_recused"


class WrongApplicant(ReviewError):
    kind = ErrorKind.FORBIDDEN
    code = "wrong_applicant"


class DecisionAlreadyMade(ReviewError):
    kind = ErrorKind.CONFLICT
    code = "decision_already_made"


class DuplicateVote(ReviewError):
    kind = ErrorKind.CONFLICT
    code = "duplicate_vote"


class NotUnderReview(ReviewError):
    kind = ErrorKind.CONFLICT
    code = "not_under_review"


class InvalidTransition(ReviewError):
    kind = ErrorKind.CONFLICT
    code = "invalid_transition"


class GrantNotActive(ReviewError):
    kind = ErrorKind.CONFLICT
    code = "grant_not_active"


class IdempotencyKeyReused(ReviewError):
    kind = ErrorKind.CONFLICT
    code = "idempotency_key_reused"


def reject_personal_data_in(texts: dict[str, object]) -> None:
    """Raise PersonalDataInText if a free-text field contains what looks like a resident registration number.

    Free text ends up in events on the bus, whose contracts reject such
    payloads, so the check runs before any state changes.
    """
    try:
        reject_personal_data(texts)
    except PersonalDataError as error:
        raise PersonalDataInText(str(error)) from None
