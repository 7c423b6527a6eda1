"""The status the patient dashboard shows for a consent: its own period counts, as in evaluation."""

from datetime import UTC, datetime, timedelta

import pytest

from medgov_consent.api.patient import consent_status
from medgov_consent.domain.policy import Period

GRANTED = datetime(2026, 1, 10, tzinfo=UTC)
WINDOW = Period(start=datetime(2026, 2, 1, tzinfo=UTC), end=datetime(2026, 8, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("now", "period", "withdrawn_at", "expected"),
    [
        (GRANTED - timedelta(seconds=1), None, None, "not_started"),
        (GRANTED, None, None, "in_force"),
        (datetime(2026, 1, 20, tzinfo=UTC), WINDOW, None, "not_started"),
        (WINDOW.start, WINDOW, None, "in_force"),
        (WINDOW.end - timedelta(microseconds=1), WINDOW, None, "in_force"),
        (WINDOW.end, WINDOW, None, "expired"),
        (datetime(2026, 3, 1, tzinfo=UTC), WINDOW, datetime(2026, 3, 1, tzinfo=UTC), "withdrawn"),
        (datetime(2026, 3, 1, tzinfo=UTC), WINDOW, datetime(2026, 4, 1, tzinfo=UTC), "in_force"),
        (datetime(2026, 9, 1, tzinfo=UTC), WINDOW, datetime(2026, 3, 1, tzinfo=UTC), "withdrawn"),
    ],
)
def test_status_follows_period_and_withdrawal(
    now: datetime, period: Period | None, withdrawn_at: datetime | None, expected: str
) -> None:
    assert consent_status(granted_at=GRANTED, withdrawn_at=withdrawn_at, period=period, now=now) == expected
