"""Log lines below the configured level are dropped, for structlog and stdlib loggers alike.

Each case runs in a child process, because logging is configured once per process.
"""

import json
import subprocess
import sys

import pytest

LOG_AT_EACH_LEVEL = """
import logging
import sys
import structlog
from medgov_shared.observability.logging import configure_logging

configure_logging(level=sys.argv[1])
structlog.get_logger("medgov.test").debug("structlog debug", consent_id="c-1")
structlog.get_logger("medgov.test").info("structlog info", consent_id="c-2")
logging.getLogger("medgov.stdlib").debug("stdlib debug")
logging.getLogger("medgov.stdlib").warning("stdlib warning")

# A consumed event's logger, bound lazily to the record and the event's ids.
from aiokafka.structs import ConsumerRecord
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.consent import ConsentScope, ConsentRevoked
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.messaging.consumer import EventLog
from datetime import UTC, datetime

payload = ConsentRevoked(subject=pseudonymize("p-1", region="daegu", key=b"k" * 32), consent_id="c-3",
                         institution_id="knuh", region="daegu", scope=ConsentScope(),
                         channel="dashboard", effective_at=datetime(2026, 12, 6, tzinfo=UTC))
envelope = wrap(payload, source="medgov/consent", region="daegu")
record = ConsumerRecord("medgov.consent.v1", 2, 41, 0, 0, None, None, None, 0, 0, [])
event_log = EventLog(record, envelope)
event_log.debug("event debug", consent_id="c-3")
bound_for_debug = event_log._bound is not None  # a dropped debug line binds nothing
event_log.warning("event warning", consent_id="c-3")
print(bound_for_debug, str(envelope.id))
"""


def _events_logged(level: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", LOG_AT_EACH_LEVEL, level], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    bound_for_debug, event_id = result.stdout.split()
    assert bound_for_debug == str(level == "DEBUG")
    for event in events:
        if event["event"].startswith("event "):
            assert event["event_id"] == event_id
    return events


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("INFO", ["structlog info", "stdlib warning", "event warning"]),
        ("DEBUG", ["structlog debug", "structlog info", "stdlib debug", "stdlib warning", "event debug", "event warning"]),
    ],
)
def test_lines_below_level_dropped(level: str, expected: list[str]) -> None:
    events = _events_logged(level)

    assert [event["event"] for event in events] == expected
    assert all("timestamp" in event and "level" in event for event in events)


def test_structlog_line_keeps_bound_fields() -> None:
    (info,) = [event for event in _events_logged("INFO") if event["event"] == "structlog info"]

    assert info["consent_id"] == "c-2"
    assert info["level"] == "info"


def test_event_log_binds_record_ids() -> None:
    (warning,) = [event for event in _events_logged("INFO") if event["event"] == "event warning"]

    assert (warning["topic"], warning["partition"], warning["offset"]) == ("medgov.consent.v1", 2, 41)
    assert warning["event_type"] == "ConsentRevoked"
    assert warning["correlation_id"] == warning["event_id"]
    assert warning["consent_id"] == "c-3"
