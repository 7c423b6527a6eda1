"""Settings of the hospital publisher and the analytics subscriber (env prefix MEDGOV_)."""

import base64
import binascii
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from medgov_shared.contracts.types import Region


class BrokerUnavailable(RuntimeError):
    """The Kafka broker could not be reached, or lacks the topic a command needs; the message names both."""


def environment_variable(location: str) -> str:
    """Return the environment variable behind a settings field or alias named in a validation error."""
    name = location.upper()
    return name if name.startswith("MEDGOV_") else f"MEDGOV_{name}"


class KafkaClientSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDGOV_", extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        validation_alias=AliasChoices("MEDGOV_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated host:port list of Kafka brokers.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None

    def client_options(self) -> dict:
        options: dict = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            if not (self.kafka_sasl_username and self.kafka_sasl_password):
                raise ValueError(
                    f"{self.kafka_security_protocol} needs MEDGOV_KAFKA_SASL_USERNAME and MEDGOV_KAFKA_SASL_PASSWORD"
                )
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password.get_secret_value(),
            )
        if self.kafka_security_protocol == "SASL_SSL":
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            )
        return options


class PublisherSettings(KafkaClientSettings):
    region: Region = Field(description="Region whose pseudonymization key the hospital uses.")
    pseudonym_key: SecretStr = Field(
        description="Region pseudonymization key, base64 or hex, at least 32 bytes. Issued by the region operator."
    )
    pseudonym_key_version: int = Field(default=1, ge=1)

    @field_validator("pseudonym_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        decode_key(value.get_secret_value())
        return value

    def key_bytes(self) -> bytes:
        return decode_key(self.pseudonym_key.get_secret_value())


def decode_key(text: str) -> bytes:
    """Decode a key given as hex or base64; at least 32 bytes."""
    raw: bytes | None = None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        raise ValueError(
            "MEDGOV_PSEUDONYM_KEY must be hex or standard base64 (with + and /, not the URL-safe - and _); "
            "`openssl rand -hex 32` makes a valid key"
        )
    if len(raw) < 32:
        raise ValueError(f"MEDGOV_PSEUDONYM_KEY must decode to at least 32 bytes, got {len(raw)}")
    return raw
