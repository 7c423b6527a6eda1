"""Grant policy as data: the fund split, the subsidy formula, the clawback window and the milestone table.

The defaults live in medgov_grants/data/policy.yaml. Every amount is a whole
number of won and every rule is integer arithmetic, so the same inputs give
the same amount on every machine and on every replay.
"""

from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from medgov_shared.contracts.events.grants import Pool

from medgov_grants.domain.errors import PolicyError
from medgov_grants.domain.ledger import POOLS

DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[1] / "data" / "policy.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FundSplit(_Frozen):
    """Division of one fund into pools, in whole percent."""

    fund_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    total_krw: StrictInt = Field(gt=0)
    shares_percent: dict[Pool, StrictInt]

    @field_validator("shares_percent")
    @classmethod
    def _shares_cover_every_pool(cls, shares: dict[Pool, int]) -> dict[Pool, int]:
        missing = [pool for pool in POOLS if pool not in shares]
        if missing:
            raise ValueError(f"shares_percent lacks pools {missing}; give a share (0 allowed) for each of {list(POOLS)}")
        if any(share < 0 for share in shares.values()):
            raise ValueError("shares_percent must not contain negative shares")
        if sum(shares.values()) != 100:
            raise ValueError(f"shares_percent sums to {sum(shares.values())}; the shares must sum to 100")
        return shares

    def pools_krw(self) -> dict[Pool, int]:
        """Split `total_krw` by share, rounding down; the remaining won go to the pool with the largest share.

        Ties for the largest share go to the pool listed first in the contract
        (cataloging, anonymization_tools, milestones).
        """
        amounts = {pool: self.total_krw * self.shares_percent[pool] // 100 for pool in POOLS}
        largest = max(POOLS, key=lambda pool: (self.shares_percent[pool], -POOLS.index(pool)))
        amounts[largest] += self.total_krw - sum(amounts.values())
        return amounts


class SubsidyPolicy(_Frozen):
    """Cataloging subsidy per dataset from its completeness score and record count, with a cap per hospital.

    amount = (base_krw + per_record_krw * min(record_count, max_records_counted))
             * completeness_score / 100, rounded down to a multiple of rounding_unit_krw.
    A dataset below `min_completeness` or without records earns nothing.
    """

    min_completeness: StrictInt = Field(ge=0, le=100)
    base_krw: StrictInt = Field(ge=0)
    per_record_krw: StrictInt = Field(ge=0)
    max_records_counted: StrictInt = Field(ge=0)
    rounding_unit_krw: StrictInt = Field(gt=0)
    per_hospital_cap_krw: StrictInt = Field(ge=0)
    clawback_window_days: StrictInt = Field(ge=0)

    @property
    def clawback_window(self) -> timedelta:
        return timedelta(days=self.clawback_window_days)

    def amount_for(self, completeness_score: int, record_count: int) -> int:
        if not 0 <= completeness_score <= 100:
            raise ValueError(f"completeness_score must be within 0-100, got {completeness_score}")
        if record_count < 0:
            raise ValueError(f"record_count must not be negative, got {record_count}")
        if completeness_score < self.min_completeness or record_count == 0:
            return 0

        counted = min(record_count, self.max_records_counted)
        gross = (self.base_krw + self.per_record_krw * counted) * completeness_score // 100
        return gross - gross % self.rounding_unit_krw


class Milestone(_Frozen):
    """One row of the milestone table: reaching `transactions` approved data transactions pays `amount_krw`."""

    transactions: StrictInt = Field(gt=0)
    amount_krw: StrictInt = Field(gt=0)


class MilestoneTable(_Frozen):
    """Milestones in ascending order of transaction count."""

    milestones: tuple[Milestone, ...] = Field(min_length=1)

    @field_validator("milestones")
    @classmethod
    def _ascending_and_unique(cls, milestones: tuple[Milestone, ...]) -> tuple[Milestone, ...]:
        counts = [item.transactions for item in milestones]
        if counts != sorted(set(counts)):
            raise ValueError(f"milestone transaction counts {counts} must be unique and ascending")
        return milestones

    def reached_by(self, count: int) -> tuple[Milestone, ...]:
        return tuple(item for item in self.milestones if item.transactions <= count)


class ToolGrantPolicy(_Frozen):
    """Limits on anonymization-tool grants."""

    max_award_krw: StrictInt = Field(gt=0)
    max_tranches: StrictInt = Field(gt=0)


class GrantsPolicy(_Frozen):
    """Everything configurable about how the fund pays out."""

    fund: FundSplit
    subsidy: SubsidyPolicy
    milestones: MilestoneTable
    tool_grants: ToolGrantPolicy

    @model_validator(mode="before")
    @classmethod
    def _wrap_milestone_list(cls, data: Any) -> Any:
        # The YAML file lists the milestones directly under `milestones`.
        if isinstance(data, dict) and isinstance(data.get("milestones"), list):
            return {**data, "milestones": {"milestones": data["milestones"]}}
        return data

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "policy") -> "GrantsPolicy":
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise PolicyError(f"invalid grants policy in {source}: {_describe(error)}") from error


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def load_policy(path: Path | None = None) -> GrantsPolicy:
    """Read a policy YAML file (the packaged defaults when `path` is None)."""
    source = path or DEFAULT_POLICY_FILE
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    return GrantsPolicy.from_mapping(data, source=str(source))


@cache
def default_policy() -> GrantsPolicy:
    return load_policy()
