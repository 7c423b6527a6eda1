"""The HTTP request bodies reject text that PostgreSQL cannot store, naming the field."""

import pytest
from pydantic import ValidationError

from medgov_review.api import RevocationRequest, SubmissionRequest, VoteRequest

NUL_TEXT = "a\x00b"


@pytest.mark.parametrize("field", ["idempotency_key", "principal_investigator", "title", "purpose_text", "irb_document_ref"])
def test_submission_rejects_nul(field: str) -> None:
    body = {"application_id": "app-nul", "idempotency_key": "key-1", field: NUL_TEXT}

    with pytest.raises(ValidationError) as raised:
        SubmissionRequest.model_validate(body)

    errors = raised.value.errors()
    assert [error["loc"] for error in errors] == [(field,)]
    assert "NUL character" in errors[0]["msg"]


@pytest.mark.parametrize("field", ["comments", "conditions"])
def test_vote_rejects_nul(field: str) -> None:
    body = {"board": "IRB", "vote": "approve", field: ["fine", NUL_TEXT]}

    with pytest.raises(ValidationError) as raised:
        VoteRequest.model_validate(body)

    assert [error["loc"] for error in raised.value.errors()] == [(field, 1)]


def test_revocation_rejects_nul() -> None:
    with pytest.raises(ValidationError) as raised:
        RevocationRequest.model_validate({"reason": NUL_TEXT})

    assert [error["loc"] for error in raised.value.errors()] == [("reason",)]


def test_plain_text_accepted() -> None:
    body = SubmissionRequest.model_validate({"application_id": "app-1", "idempotency_key": "key-1", "title": "흉부 CT"})

    assert body.title == "흉부 CT"
