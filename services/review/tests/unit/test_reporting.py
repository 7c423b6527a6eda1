"""Decision-time figures for the dashboard."""

import pytest

from medgov_review.domain.reporting import nearest_rank_percentile, summarize_decision_times


def test_p90_of_ten_values_is_ninth() -> None:
    assert nearest_rank_percentile([float(value) for value in range(10, 0, -1)], 90) == 9.0


def test_p90_of_single_value_is_that_value() -> None:
    assert nearest_rank_percentile([7.5], 90) == 7.5


def test_summary_of_decisions() -> None:
    summary = summarize_decision_times([4.0, 12.5, 8.0, 19.0])

    assert summary is not None
    assert summary.count == 4
    assert summary.mean_days == pytest.approx(10.875)
    assert summary.p90_days == 19.0


def test_summary_of_nothing_is_none() -> None:
    assert summarize_decision_times([]) is None


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_percent_outside_range_is_rejected(percent: float) -> None:
    with pytest.raises(ValueError, match="percent must be in"):
        nearest_rank_percentile([1.0], percent)
