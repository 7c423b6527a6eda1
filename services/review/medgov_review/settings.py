"""Settings of the review service (env prefix MEDGOV_REVIEW_)."""

from datetime import date
from pathlib import Path

from pydantic import AwareDatetime, Field, field_validator

from medgov_shared.settings import ServiceSettings

from medgov_review.domain.sla import DayCount


class ReviewSettings(ServiceSettings):
    service_name = "review"

    window_days: int = Field(
        default=20, gt=0, le=365, description="Length of the decision window, in days of `day_count`."
    )
    day_count: DayCount = Field(
        default=DayCount.BUSINESS,
        description="How window days are counted: 'business' skips weekends and Korean public holidays, "
        "'calendar' counts every day.",
    )
    extra_holidays: list[date] = Field(
        default_factory=list,
        description="More non-business days (KST dates, JSON list), e.g. a temporary public holiday that the "
        "holidays package does not list yet.",
    )
    boards_file: Path | None = Field(
        default=None,
        description="YAML file with board members and the council rotation; the packaged "
        "medgov_review/data/boards.yaml when unset.",
    )
    clock_tick_interval_s: float = Field(
        default=1.0, gt=0, description="Seconds between checks of SLA clocks and grant expiries."
    )
    clock_batch_size: int = Field(
        default=100, ge=1, le=10_000, description="Applications examined per SLA clock check."
    )
    clock_acceleration: float = Field(
        default=1.0,
        gt=0,
        description="How many times faster than real time the service clock runs; the demo uses a large "
        "factor so that a 20-day window passes in minutes.",
    )

    clock_origin: AwareDatetime | None = Field(
        default=None,
        description="Instant the service clock starts from (ISO 8601 with offset); unset means now. With "
        "clock_acceleration it lets the demo replay a scenario from a fixed date.",
    )

    @field_validator("boards_file")
    @classmethod
    def _boards_file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(
                f"boards file {value} not found; set MEDGOV_REVIEW_BOARDS_FILE to a readable YAML file or unset it"
            )
        return value

