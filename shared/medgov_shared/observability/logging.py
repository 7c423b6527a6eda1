"""Structured logging with structlog on top of the standard library.

Services bind ids (event id, type, topic, partition, offset, correlation id)
per message with `structlog.contextvars`; payloads are never logged because
consent and review payloads are personal data.
"""

import logging
import sys

import structlog


def configure_logging(*, level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and stdlib logs to stderr as JSON lines (or readable text)."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance and reconnect at INFO; keep its warnings only.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
