"""Paths in a RegisterDataset command must stay inside the institution's staging area."""

import errno
import os

import pytest

from medgov_catalog.domain.rejection import FileRejected, RejectionReason
from medgov_catalog.domain.staging import StagingArea, create_parent_folders, remove_empty_folders, resolve_inside


@pytest.fixture
def area(tmp_path):
    root = tmp_path / "staging"
    (root / "knuh" / "ct").mkdir(parents=True)
    (root / "knuh" / "ct" / "a.dcm").write_bytes(b"x")
    (root / "yumc").mkdir()
    (root / "yumc" / "secret.json").write_text("{}")
    (tmp_path / "outside.json").write_text("{}")
    return root


def _reason(callable_, *args) -> RejectionReason:
    with pytest.raises(FileRejected) as raised:
        callable_(*args)
    return raised.value.reason


def test_resolves_file_in_own_area(area):
    staging = StagingArea(area)

    resolved = staging.resolve("knuh", "ct/a.dcm")

    assert resolved == (area / "knuh" / "ct" / "a.dcm").resolve()


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("../yumc/secret.json", RejectionReason.PATH_OUTSIDE_STAGING_AREA),
        ("ct/../../yumc/secret.json", RejectionReason.PATH_OUTSIDE_STAGING_AREA),
        ("/etc/passwd", RejectionReason.PATH_OUTSIDE_STAGING_AREA),
        ("", RejectionReason.INVALID_PATH),
        ("ct\\a.dcm", RejectionReason.INVALID_PATH),
        ("ct/a.dcm\x00.json", RejectionReason.INVALID_PATH),
        ("ct/missing.dcm", RejectionReason.NOT_FOUND),
        ("ct", RejectionReason.NOT_A_REGULAR_FILE),
    ],
)
def test_rejects_bad_relative_path(area, relative, reason):
    assert _reason(StagingArea(area).resolve, "knuh", relative) == reason


def test_symlink_out_of_area_rejected(area, tmp_path):
    os.symlink(tmp_path / "outside.json", area / "knuh" / "link.json")

    assert _reason(StagingArea(area).resolve, "knuh", "link.json") == RejectionReason.PATH_OUTSIDE_STAGING_AREA


def test_symlink_to_other_institution_rejected(area):
    os.symlink(area / "yumc", area / "knuh" / "neighbour")

    assert _reason(StagingArea(area).resolve, "knuh", "neighbour/secret.json") == RejectionReason.PATH_OUTSIDE_STAGING_AREA


def test_symlink_inside_area_followed(area):
    os.symlink(area / "knuh" / "ct" / "a.dcm", area / "knuh" / "alias.dcm")

    assert StagingArea(area).resolve("knuh", "alias.dcm") == (area / "knuh" / "ct" / "a.dcm").resolve()


def test_symlink_loop_rejected(area):
    os.symlink(area / "knuh" / "loop", area / "knuh" / "loop")

    assert _reason(StagingArea(area).resolve, "knuh", "loop") in {RejectionReason.INVALID_PATH, RejectionReason.NOT_FOUND}


def test_shared_layout_reads_from_root(area):
    staging = StagingArea(area, per_institution=False)

    assert staging.resolve("knuh", "yumc/secret.json") == (area / "yumc" / "secret.json").resolve()
    assert _reason(staging.resolve, "knuh", "../outside.json") == RejectionReason.PATH_OUTSIDE_STAGING_AREA


def test_message_names_path(area):
    with pytest.raises(FileRejected) as raised:
        resolve_inside(area.resolve(), "knuh/ct/nothing.dcm")

    assert "knuh/ct/nothing.dcm" in raised.value.detail


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        (f"ct/{'n' * 300}.dcm", "file name too long"),
        ("ct/a.dcm/b.dcm", "not a directory"),
        ("loop/a.dcm", "symbolic link loop"),
    ],
)
def test_os_error_message_hides_root(area, relative, reason):
    os.symlink(area / "knuh" / "loop", area / "knuh" / "loop")

    with pytest.raises(FileRejected) as raised:
        resolve_inside(area / "knuh", relative)

    assert raised.value.reason is RejectionReason.INVALID_PATH
    assert raised.value.detail == f"cannot resolve '{relative}': {reason}"


def test_create_area_makes_private_folder(tmp_path):
    staging = StagingArea(tmp_path)

    created: list = []

    area = staging.create_area_of("dsmc", created)

    assert area == (tmp_path / "dsmc").resolve()
    assert area.is_dir()
    assert area.stat().st_mode & 0o777 == 0o700
    assert created == [area]


def test_create_area_keeps_existing_folder(area):
    staging = StagingArea(area)

    created: list = []

    knuh = staging.create_area_of("knuh", created)

    assert knuh == (area / "knuh").resolve()
    assert (knuh / "ct" / "a.dcm").read_bytes() == b"x"
    assert created == []


@pytest.mark.parametrize("institution_id", ["..", ".", "a/b", "../outside", "", "x\x00"])
def test_create_area_rejects_unsafe_institution(tmp_path, institution_id):
    staging = StagingArea(tmp_path / "staging")
    (tmp_path / "staging").mkdir()

    assert _reason(staging.create_area_of, institution_id, []) is RejectionReason.INVALID_PATH
    assert [path.name for path in tmp_path.iterdir()] == ["staging"]
    assert list((tmp_path / "staging").iterdir()) == []


def test_create_area_shared_layout_creates_nothing(tmp_path):
    staging = StagingArea(tmp_path, per_institution=False)

    created: list = []

    area = staging.create_area_of("dsmc", created)

    assert area == tmp_path.resolve()
    assert list(tmp_path.iterdir()) == []
    assert created == []


def test_parent_folders_are_private(tmp_path):
    area = tmp_path / "knuh"
    area.mkdir()

    create_parent_folders(area, area / "ct" / "series-1" / "a.dcm", [])

    assert (area / "ct").stat().st_mode & 0o777 == 0o700
    assert (area / "ct" / "series-1").stat().st_mode & 0o777 == 0o700


def test_parent_folders_lists_only_created(tmp_path):
    area = tmp_path / "knuh"
    (area / "ct").mkdir(parents=True)
    created: list = []

    create_parent_folders(area, area / "ct" / "series-1" / "a" / "a.dcm", created)

    assert created == [area / "ct" / "series-1", area / "ct" / "series-1" / "a"]


def test_parent_folders_lists_created_before_error(tmp_path):
    area = tmp_path / "knuh"
    area.mkdir()
    created: list = []

    with pytest.raises(OSError) as raised:
        create_parent_folders(area, area / "ct" / ("f" * 300) / "a.dcm", created)

    assert raised.value.errno == errno.ENAMETOOLONG
    assert created == [area / "ct"]


def test_parent_folders_missing_area_raises(tmp_path):
    area = tmp_path / "knuh"
    created: list = []

    with pytest.raises(FileNotFoundError):
        create_parent_folders(area, area / "ct" / "a.dcm", created)

    assert created == []
    assert list(tmp_path.iterdir()) == []


def test_remove_empty_folders_deepest_first(tmp_path):
    folders = [tmp_path / "knuh", tmp_path / "knuh" / "ct", tmp_path / "knuh" / "ct" / "series-1"]
    for folder in folders:
        folder.mkdir()

    remove_empty_folders(folders)

    assert list(tmp_path.iterdir()) == []


def test_remove_empty_folders_keeps_other_files(tmp_path):
    # Another upload put its partial file into a folder that this upload created.
    folders = [tmp_path / "knuh", tmp_path / "knuh" / "ct", tmp_path / "knuh" / "ct" / "series-1"]
    for folder in folders:
        folder.mkdir()
    (tmp_path / "knuh" / "ct" / ".other.part").write_bytes(b"x")

    remove_empty_folders(folders)

    assert (tmp_path / "knuh" / "ct" / ".other.part").read_bytes() == b"x"
    assert not (tmp_path / "knuh" / "ct" / "series-1").exists()


def test_remove_empty_folders_skips_missing(tmp_path):
    folders = [tmp_path / "knuh", tmp_path / "knuh" / "ct"]
    (tmp_path / "knuh").mkdir()

    remove_empty_folders(folders)

    assert list(tmp_path.iterdir()) == []
