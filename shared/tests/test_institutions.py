"""The institution registry: the packaged list, the extra file named by MEDGOV_EXTRA_INSTITUTIONS_FILE, and its errors."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medgov_shared.contracts.institutions import (
    EXTRA_INSTITUTIONS_ENV,
    InstitutionFileError,
    all_institutions,
    load_institutions_file,
    write_institutions_file,
)
from medgov_shared.contracts.registry import inbound_topics
from medgov_shared.contracts.types import Region
from medgov_shared.testing.institutions import throwaway_hospital

ROW = "- {id: %s, region: daegu, kind: hospital, name_ko: 시험 병원, name_en: Test Hospital}\n"


@pytest.fixture
def extra_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An extra institutions file that the registry reads; the cache is cleared before and after the test."""
    path = tmp_path / "extra-institutions.yaml"
    monkeypatch.setenv(EXTRA_INSTITUTIONS_ENV, str(path))
    all_institutions.cache_clear()
    yield path
    monkeypatch.delenv(EXTRA_INSTITUTIONS_ENV)
    all_institutions.cache_clear()


def test_packaged_institutions_load() -> None:
    institutions = all_institutions()

    assert institutions["knuh"].kind == "hospital"
    assert institutions["knuh"].region == Region.DAEGU
    assert institutions["vendor-medvision"].kind == "vendor"


def test_extra_institutions_merged(extra_file: Path) -> None:
    extra_file.write_text(ROW % "t-onboarded", encoding="utf-8")

    institutions = all_institutions()

    assert institutions["t-onboarded"].kind == "hospital"
    assert institutions["t-onboarded"].name_en == "Test Hospital"
    assert "knuh" in institutions
    assert "medgov.inbound.t-onboarded.v1" in {topic.name for topic in inbound_topics()}


def test_registry_cached_until_cleared(extra_file: Path) -> None:
    extra_file.write_text(ROW % "t-first", encoding="utf-8")
    first = all_institutions()
    extra_file.write_text(ROW % "t-first" + ROW % "t-second", encoding="utf-8")

    cached = all_institutions()
    all_institutions.cache_clear()
    reloaded = all_institutions()

    assert cached is first
    assert "t-second" not in cached
    assert "t-second" in reloaded


def test_clash_with_packaged_id_rejected(extra_file: Path) -> None:
    extra_file.write_text(ROW % "t-new" + ROW % "knuh", encoding="utf-8")

    with pytest.raises(InstitutionFileError) as raised:
        all_institutions()

    message = str(raised.value)
    assert str(extra_file) in message
    assert EXTRA_INSTITUTIONS_ENV in message
    assert "knuh, which the packaged institutions.yaml already contains" in message


def test_missing_extra_file_rejected(extra_file: Path) -> None:
    with pytest.raises(InstitutionFileError, match="cannot read institutions file"):
        all_institutions()


def test_empty_extra_file_adds_nothing(extra_file: Path) -> None:
    extra_file.write_text("# no institutions yet\n", encoding="utf-8")

    assert set(all_institutions()) == set(load_institutions_file(Path(__file__).parents[1] / "medgov_shared" / "contracts" / "institutions.yaml"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (ROW % "t-twice" + ROW % "t-twice", "row 2: institution id 't-twice' is listed twice"),
        (ROW % "T-Upper", "row 1: invalid id 'T-Upper'"),
        (ROW % ("t" + "x" * 40), "row 1: invalid id"),
        (ROW.replace("daegu", "seoul") % "t-seoul", "row 1: unknown region 'seoul'"),
        (ROW.replace("hospital", "clinic") % "t-clinic", "row 1: unknown kind 'clinic'"),
        ("- {id: t-short, region: daegu, kind: hospital, name_ko: 병원}\n", "row 1: missing fields ['name_en']. Expected the fields id, region"),
        (ROW.replace("}", ", beds: 300}") % "t-beds", "unknown fields ['beds']"),
        (ROW.replace("name_en: Test Hospital", "name_en: ''") % "t-blank", "field 'name_en' must be a non-empty string"),
        ("- t-plain\n", "row 1: expected a mapping"),
        ("{id: t-mapping}\n", "must contain a YAML list of rows, not dict"),
        ("- {id: [unclosed\n", "is not valid YAML, line 2 column 1"),
        ("- !!python/object:os.system {id: t-tag}\n", "is not valid YAML, line 1 column 3"),
    ],
)
def test_invalid_rows_rejected(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "extra-institutions.yaml"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(InstitutionFileError) as raised:
        load_institutions_file(path)

    assert expected in str(raised.value)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_written_file_reads_back(tmp_path: Path) -> None:
    hospitals = [throwaway_hospital("t-written"), throwaway_hospital("t-gwangju", Region.GWANGJU)]

    path = write_institutions_file(tmp_path / "extra-institutions.yaml", hospitals)

    assert list(load_institutions_file(path).values()) == hospitals


def test_service_with_clashing_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "extra-institutions.yaml"
    path.write_text(ROW % "knuh", encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", ""),
        EXTRA_INSTITUTIONS_ENV: str(path),
        "MEDGOV_CATALOG_DATABASE_URL": "postgresql://medgov@127.0.0.1:1/unused",
        "MEDGOV_CATALOG_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "MEDGOV_CATALOG_JWT_SECRET": "x" * 32,
        "MEDGOV_CATALOG_REGION": "daegu",
        "MEDGOV_CATALOG_STAGING_ROOT": str(tmp_path),
    }

    result = subprocess.run([sys.executable, "-m", "medgov_catalog"], env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "medgov catalog: invalid institutions file:" in result.stderr
    assert "knuh, which the packaged institutions.yaml already contains" in result.stderr
