"""Settings of the consent service (env prefix MEDGOV_CONSENT_)."""

from datetime import timedelta

from pydantic import Field

from medgov_shared.settings import ServiceSettings


class ConsentSettings(ServiceSettings):
    service_name = "consent"

    acknowledge_within_hours: float = Field(
        default=72.0, gt=0, description="Hours the grantee and the data holder have to acknowledge an exclusion."
    )
    overdue_check_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between checks for exclusions past their acknowledgement deadline."
    )
    due_revocation_check_interval_s: float = Field(
        default=30.0, gt=0, description="Seconds between checks for revocations whose effective time has come."
    )
    # A FHIR Consent is a few kilobytes and a revocation less, so the consent
    # routes need far less than the catalog's dataset registrations.
    http_max_body_bytes: int = Field(
        default=1_048_576, ge=1024,
        description="Largest request body, in bytes, of a JSON route; larger ones get 413. The XML route keeps its own 1 MiB.",
    )
    opt_out_minimum_cell: int = Field(
        default=5, ge=1, description="Minimum number of subjects in a hospital-month for the public page to show its opt-out rate."
    )

    @property
    def acknowledge_within(self) -> timedelta:
        return timedelta(hours=self.acknowledge_within_hours)
