"""The fund is snapshotted at least every snapshot_every entries, and less often as the journal grows."""

from medgov_grants.domain.policy import default_policy
from medgov_grants.fund_service import FundService


def test_interval_grows_to_a_tenth_of_the_journal() -> None:
    service = FundService(default_policy(), region="daegu", snapshot_every=500)

    assert service.snapshot_interval(0) == 500
    assert service.snapshot_interval(5_000) == 500
    assert service.snapshot_interval(5_010) == 501
    assert service.snapshot_interval(105_000) == 10_500
