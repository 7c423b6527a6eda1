"""Where the scenario writes its files: var/ in the checkout, or MEDGOV_LOCAL_VAR_DIR as for the launcher."""

from pathlib import Path

import pytest

from medgov_cli.demo.stack import Stack, local_state_dir


def test_state_in_checkout_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDGOV_LOCAL_VAR_DIR", raising=False)

    assert local_state_dir(tmp_path) == tmp_path / "var"
    assert Stack(root=tmp_path, sample_data=tmp_path).log_path("consent") == tmp_path / "var" / "log" / "consent.log"


def test_state_follows_launcher_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("MEDGOV_LOCAL_VAR_DIR", str(elsewhere))

    assert local_state_dir(tmp_path / "checkout") == elsewhere
    assert Stack(root=tmp_path / "checkout", sample_data=tmp_path).log_path("review") == elsewhere / "log" / "review.log"
