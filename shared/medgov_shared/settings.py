"""Typed settings shared by every service.

Each service subclasses ServiceSettings with its own env prefix
(MEDGOV_REVIEW_, MEDGOV_CATALOG_, ...). The connection settings also accept
the unprefixed names that `make up` writes to var/local.env
(KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL), so one file configures a laptop.
"""

import sys
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medgov_shared.contracts.institutions import InstitutionFileError, all_institutions
from medgov_shared.contracts.types import Region


def _env(prefix: str, name: str) -> AliasChoices:
    return AliasChoices(f"{prefix}{name}", name)


class ServiceSettings(BaseSettings):
    """Settings every service needs; validated once at start-up."""

    service_name: ClassVar[str] = "service"

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    region: Region = Field(description="Region this installation serves.")
    database_url: str = Field(
        description="PostgreSQL URL of this service's own database. A URL naming the "
        "maintenance database 'postgres' is rewritten to the service database medgov_<service>."
    )
    kafka_bootstrap_servers: str = Field(description="Comma-separated host:port list of Kafka brokers.")
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_max_message_bytes: int = Field(
        default=1_000_000, gt=1024, description="Largest serialized event accepted into the outbox, in bytes."
    )
    create_topics: bool = Field(default=True, description="Create missing topics at start (off when Strimzi owns them).")
    create_database: bool = Field(default=True, description="Create the service database at start if it is missing.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=1, le=65535)
    http_max_body_bytes: int = Field(
        # A dataset registration naming 200,000 subjects is about 15.4 MB of JSON.
        default=32 * 1024 * 1024, ge=1024,
        description="Largest request body, in bytes, of a route that takes a JSON body; larger ones get 413. "
        "A route's own max_body_size wins. Routes that stream their body (the catalog's staging upload) "
        "apply their own limit.",
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 key for bearer tokens (development).")
    jwt_public_key: str | None = Field(default=None, description="PEM public key for RS256/ES256 bearer tokens.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Handler attempts before a message is dead-lettered.")
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_fetch_min_bytes: int = Field(
        default=16 * 1024, ge=1, le=1024 * 1024,
        description="Bytes the broker gathers before it responds to a fetch, unless consumer_fetch_max_wait_ms passes first. "
        "Larger values mean fewer, fuller fetches under load (ADR 0034).",
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=20, ge=0, le=500,
        description="Maximum time, in milliseconds, the broker holds a fetch that has fewer than consumer_fetch_min_bytes.",
    )
    drain_timeout_s: float = Field(default=20.0, gt=0, description="How long SIGTERM waits for the in-flight batch.")
    relay_poll_interval_s: float = Field(default=1.0, gt=0, description="Outbox polling when no NOTIFY arrives.")
    outbox_keep_sent_days: float = Field(
        default=7.0, gt=0, le=36_500,
        description="Days an outbox row is kept after the broker acknowledged it; the topic keeps the event itself.",
    )
    outbox_prune_interval_s: float = Field(
        default=60.0, ge=0,
        description="Seconds between runs that delete sent outbox rows older than outbox_keep_sent_days, "
        "reading at most the 50,000 oldest rows a run. 0 keeps every row.",
    )
    role: Literal["all", "worker", "relay"] = Field(
        default="all",
        description="What this process runs. 'all': consumer, jobs, HTTP API and the outbox relay. 'worker': all but "
        "the relay, which then runs in a process of its own with 'relay': the relay and the health and metrics "
        "endpoints only.",
    )
    kafka_group_id: str | None = Field(default=None, description="Consumer group; defaults to medgov-<service>.")
    gc_threshold: int = Field(
        default=50_000,
        ge=0,
        description="New container objects that start a collection of Python's youngest garbage generation "
        "(Python's default is 700). 0 keeps Python's setting and does not freeze the objects made at start.",
    )
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    otel_exporter_otlp_endpoint: str | None = None

    @classmethod
    def env_prefix(cls) -> str:
        return f"MEDGOV_{cls.service_name.upper()}_"

    @classmethod
    def from_environment(cls) -> Self:
        """Read the settings from the environment; exit with status 2 and one line per problem when they are invalid.

        The institution registry is loaded here too, so that an invalid extra
        institutions file stops the service at start with the same exit status.
        """
        try:
            settings = cls()
        except ValidationError as error:
            lines = [f"medgov {cls.service_name}: invalid configuration ({cls.env_prefix()}* environment variables):"]
            for item in error.errors(include_input=False, include_url=False):
                name = ".".join(str(part) for part in item["loc"]).upper()
                if name and not name.startswith(cls.env_prefix()):
                    name = cls.env_prefix() + name
                lines.append(f"  {name or 'settings'}: {item['msg']}")
            sys.stderr.write("\n".join(lines) + "\n")
            raise SystemExit(2) from None
        try:
            all_institutions()
        except InstitutionFileError as error:
            sys.stderr.write(f"medgov {cls.service_name}: invalid institutions file: {error}\n")
            raise SystemExit(2) from None
        return settings

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Runs after pydantic collected the subclass's own fields, so the
        # rebuild below keeps them (in __init_subclass__ they would be lost).
        super().__pydantic_init_subclass__(**kwargs)
        prefix = cls.env_prefix()
        cls.model_config = SettingsConfigDict(
            **{**ServiceSettings.model_config, "env_prefix": prefix}  # type: ignore[typeddict-item]
        )
        for name in ("region", "database_url", "kafka_bootstrap_servers", "kafka_security_protocol",
                     "kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile", "jwt_secret",
                     "jwt_public_key", "otel_exporter_otlp_endpoint", "create_topics"):
            if name in cls.model_fields:
                cls.model_fields[name].validation_alias = _env(prefix, name.upper())
        cls.model_rebuild(force=True)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(
                f"database_url must start with postgresql:// (got scheme {parts.scheme!r}); "
                "run `make up` and source var/local.env, or set DATABASE_URL"
            )
        return value

    @model_validator(mode="after")
    def _check_connections(self) -> "ServiceSettings":
        parts = urlsplit(self.database_url)
        if parts.path.lstrip("/") in ("", "postgres"):
            self.database_url = urlunsplit(parts._replace(path=f"/medgov_{self.service_name}"))
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"{self.kafka_security_protocol} needs {self.env_prefix()}KAFKA_SASL_USERNAME and "
                f"{self.env_prefix()}KAFKA_SASL_PASSWORD"
            )
        if not (self.jwt_secret or self.jwt_public_key):
            raise ValueError(
                f"set {self.env_prefix()}JWT_SECRET (development) or {self.env_prefix()}JWT_PUBLIC_KEY (PEM) "
                "so the HTTP API can verify bearer tokens; for development any random string works, e.g. the key `make run` prints"
            )
        return self

    @property
    def source(self) -> str:
        return f"medgov/{self.service_name}"

    @property
    def consumer_group(self) -> str:
        return self.kafka_group_id or f"medgov-{self.service_name}"
