"""Settings of the grants service (env prefix MEDGOV_GRANTS_)."""

from pathlib import Path

from pydantic import Field, field_validator

from medgov_shared.settings import ServiceSettings


class GrantsSettings(ServiceSettings):
    service_name = "grants"

    policy_file: Path | None = Field(
        default=None,
        description="YAML grants policy (fund split, subsidy formula, milestones); the packaged defaults when unset.",
    )
    allocate_on_start: bool = Field(
        default=True, description="Allocate the policy's fund to its pools at start if it is not allocated yet."
    )
    allocation_check_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between checks that the policy's fund is allocated."
    )
    snapshot_every_inputs: int = Field(
        default=500,
        ge=1,
        description="Minimum number of journal entries between two snapshots of the fund. The interval grows to a "
        "tenth of the journal, so a restart replays at most this many entries or a tenth of the journal. Each "
        "snapshot pickles the whole fund on the event loop.",
    )

    @field_validator("policy_file")
    @classmethod
    def _policy_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"policy file {value} not found; set MEDGOV_GRANTS_POLICY_FILE to a readable YAML file or unset it")
        return value

