"""Figures for the review dashboard: how long decisions take."""

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DecisionTimes:
    """Time to decision over decided applications, in days of the configured calendar."""

    count: int
    mean_days: float
    p90_days: float


def nearest_rank_percentile(values: Sequence[float], percent: float) -> float:
    """Return the smallest value with at least `percent` of the values at or below it (nearest-rank method)."""
    if not values:
        raise ValueError("cannot take a percentile of no values")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    ordered = sorted(values)
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[rank - 1]


def summarize_decision_times(days: Sequence[float]) -> DecisionTimes | None:
    """Return count, mean and 90th percentile, or None when nothing has been decided yet."""
    if not days:
        return None
    return DecisionTimes(
        count=len(days),
        mean_days=sum(days) / len(days),
        p90_days=nearest_rank_percentile(days, 90),
    )
