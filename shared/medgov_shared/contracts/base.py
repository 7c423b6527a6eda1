"""Base class of every event payload."""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

from medgov_shared.contracts.guards import reject_personal_data

# Validation context key set by parse_payload for data parsed from JSON text.
FROM_JSON = "medgov_from_json"


class EventPayload(BaseModel):
    """The `data` of a CloudEvent: frozen, validated, free of direct identifiers.

    Subclasses set `event_type` (the CloudEvents `type`), `schema_version` and
    `key_field` (the payload field whose value is the Kafka key and the
    CloudEvents `subject`). Unknown fields are ignored so that an additive
    change by a producer never breaks an older consumer.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    key_field: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _reject_direct_identifiers(cls, data: Any, info: ValidationInfo) -> Any:
        # Data parsed from JSON text contain strings, never datetime objects, and
        # the payload's own datetime fields reject a time without a zone.
        reject_personal_data(data, naive_datetimes=not (info.context or {}).get(FROM_JSON))
        return data

    @classmethod
    def dataschema(cls) -> str:
        return f"urn:medgov:events:{cls.event_type}:v{cls.schema_version}"

    @property
    def key(self) -> str:
        return str(getattr(self, self.key_field))
