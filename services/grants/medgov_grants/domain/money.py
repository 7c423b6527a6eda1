"""Validation of KRW amounts: money is always a whole number of won held in a Python int."""

from decimal import Decimal
from numbers import Number

from medgov_grants.domain.errors import InvalidAmount


# One quadrillion won, more than the whole Korean state budget and so far above
# any research fund. The ledger stores amounts and their sums as PostgreSQL
# bigint (below 9.2 * 10**18), so 9,000 amounts of this size still fit.
MAX_KRW = 10**15


def require_krw(value: object, *, name: str, allow_zero: bool = False) -> int:
    """Return `value` as a whole number of won from 0 to MAX_KRW, or raise InvalidAmount naming `name`.

    Floats and Decimals are rejected even when integral, because a float amount
    has already lost precision above 2**53 won and the contracts define integer amounts.
    """
    if isinstance(value, bool) or not isinstance(value, Number | str):
        raise InvalidAmount(f"{name} must be an integer number of won, got {type(value).__name__}")
    if not isinstance(value, int):
        raise InvalidAmount(_non_integer_message(value, name))
    if value < 0:
        raise InvalidAmount(f"{name} must not be negative, got {value:,} KRW")
    if value == 0 and not allow_zero:
        raise InvalidAmount(f"{name} must be greater than zero, got 0 KRW")
    if value > MAX_KRW:
        raise InvalidAmount(f"{name} must be at most {MAX_KRW:,} KRW, got {value:,} KRW")
    return value


def _non_integer_message(value: object, name: str) -> str:
    if isinstance(value, float | Decimal) and _is_fractional(value):
        return f"{name} must be a whole number of won; fractional amount {value} is not allowed"
    return f"{name} must be an integer number of won, got {value!r} ({type(value).__name__})"


def _is_fractional(value: float | Decimal) -> bool:
    try:
        return value != int(value)
    except (ValueError, OverflowError):
        # NaN and infinities have no integer part; they get the generic message.
        return False
