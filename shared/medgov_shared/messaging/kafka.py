"""Kafka client options built from settings (plaintext locally, SASL/SCRAM over TLS in production)."""

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context

from medgov_shared.settings import ServiceSettings


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "client_id": f"medgov-{settings.service_name}",
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        assert settings.kafka_sasl_password is not None
        options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_security_protocol in ("SASL_SSL", "SSL"):
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        options["ssl_context"] = context
    return options


def producer_options(settings: ServiceSettings) -> dict[str, Any]:
    # Idempotence with acks=all keeps per-partition order across retries and
    # stops the broker from writing a retried batch twice. No linger: the
    # relay hands over a whole pass of rows before the sender runs, so they
    # are batched anyway, and a lone event (a revocation's fan-out at light
    # load) should not wait.
    return {
        **client_options(settings),
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 0,
        "max_request_size": settings.kafka_max_message_bytes + 64 * 1024,
        "request_timeout_ms": 30_000,
    }


def consumer_options(settings: ServiceSettings) -> dict[str, Any]:
    return {
        **client_options(settings),
        "group_id": settings.consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        # Short timeouts so a restarted consumer rejoins its group in about a second.
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
        "rebalance_timeout_ms": 30_000,
        "max_poll_interval_ms": 300_000,
        "metadata_max_age_ms": 5_000,
        "fetch_max_wait_ms": 100,
    }
