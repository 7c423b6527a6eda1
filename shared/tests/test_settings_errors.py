"""A service started with bad settings names each problem on one line and exits 2, without a traceback."""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("service", ["review", "catalog", "consent", "grants"])
def test_bad_settings_exit_with_named_problems(service: str) -> None:
    prefix = f"MEDGOV_{service.upper()}_"
    env = {"PATH": os.environ.get("PATH", ""), f"{prefix}HTTP_PORT": "eighty"}

    result = subprocess.run(
        [sys.executable, "-m", f"medgov_{service}"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"medgov {service}: invalid configuration" in result.stderr
    assert f"  {prefix}HTTP_PORT: Input should be a valid integer" in result.stderr
    assert f"  {prefix}DATABASE_URL: Field required" in result.stderr


@pytest.mark.parametrize("days", ["inf", "1e10", "100000000"])
def test_outbox_keep_days_beyond_range_rejected(days: str) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "MEDGOV_CONSENT_OUTBOX_KEEP_SENT_DAYS": days}

    result = subprocess.run([sys.executable, "-m", "medgov_consent"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "  MEDGOV_CONSENT_OUTBOX_KEEP_SENT_DAYS: Input should be less than or equal to 36500" in result.stderr
