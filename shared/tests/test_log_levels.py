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
"""


def _events_logged(level: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-c", LOG_AT_EACH_LEVEL, level], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stderr.splitlines()]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("INFO", ["structlog info", "stdlib warning"]),
        ("DEBUG", ["structlog debug", "structlog info", "stdlib debug", "stdlib warning"]),
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
