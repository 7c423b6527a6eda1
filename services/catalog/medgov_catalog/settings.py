"""Settings of the catalog service (env prefix MEDGOV_CATALOG_)."""

from pathlib import Path

from pydantic import Field, field_validator

from medgov_shared.settings import ServiceSettings

from medgov_catalog.domain.files import FileLimits
from medgov_catalog.domain.staging import StagingArea


class CatalogSettings(ServiceSettings):
    service_name = "catalog"

    staging_root: Path = Field(
        description="Directory of the hospitals' staging areas. File paths in RegisterDataset are relative to it."
    )
    staging_per_institution: bool = Field(
        default=True,
        description="Give each institution the folder <staging_root>/<institution_id>; false lets every "
        "institution read the whole root (the demo, where the root is the sample-data folder).",
    )
    max_file_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="Largest staged or uploaded file, in bytes; uploads stop at this size."
    )
    max_json_document_bytes: int = Field(
        default=64 * 1024**2, gt=0, description="Largest FHIR JSON document (one resource or Bundle) read into memory, in bytes."
    )
    max_ndjson_line_bytes: int = Field(default=16 * 1024**2, gt=0, description="Largest NDJSON line, in bytes.")
    search_page_max: int = Field(default=100, ge=1, le=1000, description="Largest page size of a search.")

    @field_validator("staging_root")
    @classmethod
    def _staging_root_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(
                f"staging root {value} not found or not a directory; set MEDGOV_CATALOG_STAGING_ROOT to the folder "
                "of the hospitals' staging areas"
            )
        return value.resolve()

    @property
    def staging(self) -> StagingArea:
        return StagingArea(self.staging_root, per_institution=self.staging_per_institution)

    @property
    def file_limits(self) -> FileLimits:
        return FileLimits(
            max_file_bytes=self.max_file_bytes,
            max_json_document_bytes=self.max_json_document_bytes,
            max_ndjson_line_bytes=self.max_ndjson_line_bytes,
        )

