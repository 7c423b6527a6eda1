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
