"""Throwaway institutions for tests and the benchmark, registered through the extra institutions file."""

from medgov_shared.contracts.institutions import Institution
from medgov_shared.contracts.types import Region


def throwaway_hospital(institution_id: str, region: Region = Region.DAEGU) -> Institution:
    """Build a hospital that exists only for one test or benchmark run, with its own inbound topic."""
    return Institution(
        id=institution_id,
        region=region,
        kind="hospital",
        name_ko=f"시험 병원 {institution_id}",
        name_en=f"Test hospital {institution_id}",
    )
