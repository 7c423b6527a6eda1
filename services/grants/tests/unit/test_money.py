from decimal import Decimal

import pytest

from medgov_grants.domain.errors import InvalidAmount
from medgov_grants.domain.money import MAX_KRW, require_krw


def test_whole_amount_accepted() -> None:
    assert require_krw(12_000_000_000, name="total_krw") == 12_000_000_000


def test_zero_rejected_unless_allowed() -> None:
    with pytest.raises(InvalidAmount, match="greater than zero"):
        require_krw(0, name="amount_krw")

    assert require_krw(0, name="amount_krw", allow_zero=True) == 0


def test_negative_rejected_with_value() -> None:
    with pytest.raises(InvalidAmount, match="amount_krw must not be negative, got -5 KRW"):
        require_krw(-5, name="amount_krw")


@pytest.mark.parametrize("value", [1.5, Decimal("100.25"), 0.1])
def test_fractional_rejected_as_fractional(value: object) -> None:
    with pytest.raises(InvalidAmount, match="fractional amount"):
        require_krw(value, name="amount_krw")


@pytest.mark.parametrize("value", [100.0, Decimal("100"), "100", float("nan"), float("inf"), None, [100]])
def test_non_integer_types_rejected(value: object) -> None:
    with pytest.raises(InvalidAmount, match="must be an integer number of won"):
        require_krw(value, name="amount_krw")


def test_bool_is_not_money() -> None:
    with pytest.raises(InvalidAmount, match="got bool"):
        require_krw(True, name="amount_krw")


def test_maximum_accepted_above_rejected() -> None:
    assert require_krw(MAX_KRW, name="total_krw") == MAX_KRW

    with pytest.raises(InvalidAmount, match=r"total_krw must be at most 1,000,000,000,000,000 KRW, got 9,223,372,036,854,775,808 KRW"):
        require_krw(2**63, name="total_krw")
