"""`make demo` end to end: the scenario's summary against figures derived from the sample data."""

import os
import signal
import time

import httpx
import pytest

from medgov_cli.demo import plan
from medgov_cli.subjects import local_patient_ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Datasets whose files hold direct identifiers (names, patient ids) under the
# declared legal basis: the DICOM file-set and the Korean CR image.
FLAGGED = {"ds-dsmc-dicom-fileset", "ds-jnuh-korean-cr"}
FUND_KRW = 12_000_000_000
FIRST_MILESTONE_KRW = 50_000_000


def test_datasets_published_and_flagged(summary):
    every = {dataset.dataset_id for dataset in plan.DATASETS}

    assert summary["datasets"]["registered"] == len(plan.DATASETS)
    assert set(summary["datasets"]["flagged"]) == FLAGGED
    assert set(summary["datasets"]["published"]) == every - FLAGGED


def test_region_keys_written_for_the_cli(summary, demo_output):
    files = sorted(demo_output.with_name("demo-keys").glob("*.env"))

    assert [path.stem for path in files] == sorted(plan.BOARD_PREFIX)
    for path in files:
        settings = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
        assert settings["MEDGOV_REGION"] == path.stem
        assert len(bytes.fromhex(settings["MEDGOV_PSEUDONYM_KEY"])) == 32
        assert path.stat().st_mode & 0o077 == 0


def test_subjects_match_sample_files(summary, sample_data):
    expected = 0
    for dataset in plan.DATASETS:
        if dataset.dataset_id in FLAGGED:
            continue
        patients = set()
        for name in dataset.files:
            patients |= local_patient_ids(sample_data / name)
        expected += len(patients)

    assert summary["datasets"]["subjects_published"] == expected


def test_decisions_taken(summary):
    outcomes = [item["outcome"] for item in summary["decisions"].values()]

    assert outcomes.count("ApplicationApproved") == plan.MILESTONE_APPLICATIONS + 1
    assert outcomes.count("ApplicationRejected") == 1
    assert summary["decisions"]["app-demo-ncu"]["outcome"] == "ApplicationRejected"
    assert all(item["days_used"] < 20 for item in summary["decisions"].values())


def test_breach_and_warnings_fired_once(summary):
    counts = summary["event_counts"]

    assert counts["ReviewSlaBreached"] == 1
    assert counts["ReviewSlaWarning"] == 3


def test_every_exclusion_acknowledged(summary):
    grants_on_immunization = plan.MILESTONE_APPLICATIONS
    expected = grants_on_immunization * plan.REVOKING_PATIENTS

    assert summary["exclusions"]["requested"] == expected
    assert summary["exclusions"]["acknowledged"] == 2 * expected
    assert summary["exclusions"]["complete"] == expected


def test_pools_add_up_to_the_fund(summary):
    pools = {pool["pool"]: pool for pool in summary["pools"]}

    assert summary["pool_total_krw"] == FUND_KRW
    for pool in pools.values():
        assert pool["available_krw"] == pool["allocated_krw"] - pool["disbursed_krw"] + pool["clawed_back_krw"]
    assert pools["milestones"]["disbursed_krw"] == FIRST_MILESTONE_KRW
    assert pools["anonymization_tools"]["disbursed_krw"] == 100_000_000
    assert pools["cataloging"]["disbursed_krw"] > 0


def test_progress_plain_without_terminal(summary, demo_output):
    text = demo_output.read_text(encoding="utf-8")

    assert "\x1b[" not in text
    assert "\r" not in text
    assert f"데이터셋 등록 / datasets registered: {len(plan.DATASETS)}/{len(plan.DATASETS)}" in text


def test_killed_service_restarted(summary, demo_output):
    before = summary["services"]["review"]
    os.kill(before["pid"], signal.SIGKILL)

    deadline = time.monotonic() + 120
    while True:
        services = httpx.get(summary["urls"]["console"] + "api/services", timeout=10).json()["services"]
        review = services["review"]
        if review["restarts"] >= 1 and review["status"] == "running" and review["ready"]:
            break
        assert time.monotonic() < deadline, review
        time.sleep(1)

    assert review["pid"] != before["pid"]
    assert review["last_exit_code"] == -signal.SIGKILL
    assert httpx.get(summary["urls"]["review"] + "/readyz", timeout=10).status_code == 200
    assert "supervisor: review exited unexpectedly (killed by SIGKILL)" in demo_output.read_text(encoding="utf-8")
