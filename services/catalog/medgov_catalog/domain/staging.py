"""The staging area: where a hospital puts the files of a dataset before registering it.

A RegisterDataset command names files relative to the institution's staging
area. Each deployment configures one root directory. With the per-institution
layout the area of institution `knuh` is `<root>/knuh/`. With the shared
layout every institution reads from the root itself, which suits the demo,
where the root is the sample-data folder. A path that leaves the area,
directly or through a symbolic link, is rejected.
"""

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medgov_catalog.domain.rejection import FileRejected, RejectionReason

_MAX_RELATIVE_PATH_CHARS = 1024

# Folders created for uploads are private to the service's user, because
# staged files hold patient data before the PIPA scan has run.
FOLDER_MODE = 0o700

# An institution id becomes one folder name, so it may hold no separator and cannot be '.' or '..'.
_FOLDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class StagingArea:
    """The configured staging root and whether it has one folder per institution."""

    root: Path
    per_institution: bool = True

    def area_of(self, institution_id: str) -> Path:
        base = self.root / institution_id if self.per_institution else self.root
        return base.resolve()

    def resolve(self, institution_id: str, relative: str) -> Path:
        """Return the real path of a staged regular file, or raise FileRejected."""
        return resolve_inside(self.area_of(institution_id), relative)

    def create_area_of(self, institution_id: str, created_folders: list[Path]) -> Path:
        """Return the institution's area, creating its folder with FOLDER_MODE if it does not exist yet.

        The folder is appended to `created_folders` only if this call created it.
        """
        if not self.per_institution:
            return self.area_of(institution_id)
        if not _FOLDER_NAME.fullmatch(institution_id):
            raise FileRejected(
                RejectionReason.INVALID_PATH,
                f"institution id {institution_id!r} cannot name a staging folder; expected letters, digits, '.', '_' or '-'",
            )
        try:
            (self.root / institution_id).mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            pass
        else:
            created_folders.append(self.area_of(institution_id))
        area = self.area_of(institution_id)
        if not area.is_dir():
            raise FileRejected(RejectionReason.INVALID_PATH, f"the staging area of {institution_id} is not a folder")
        return area


def create_parent_folders(area: Path, destination: Path, created_folders: list[Path]) -> None:
    """Create the missing folders between `area` and `destination`, each with FOLDER_MODE.

    Each folder that this call creates is appended to `created_folders` at
    once, so the list is complete even when a later mkdir raises. A folder
    that a concurrent upload creates first is not appended. FileNotFoundError
    means that `area` or a folder inside it was removed meanwhile.
    The caller has checked that the deepest existing folder lies inside `area`.
    """
    missing = []
    folder = destination.parent
    while folder != area and not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue
        created_folders.append(folder)


def remove_empty_folders(folders: list[Path]) -> None:
    """Remove each of `folders` that is empty, in reverse order, so that the last created goes first.

    rmdir removes only empty folders, so a folder that contains anything, such as
    the partial file of a concurrent upload, stays. So do its parents. A
    folder that is gone already is skipped. Other OSErrors are raised.
    """
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError as error:
            # POSIX allows EEXIST as well as ENOTEMPTY for a folder that is not empty.
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise


def os_error_reason(error: OSError) -> str:
    """Return the operating system's reason for `error`, such as "file name too long", without any path.

    str(error) contains the absolute path, which would show a client where
    the staging root lies on the server.
    """
    if not error.strerror:
        return type(error).__name__
    return error.strerror[0].lower() + error.strerror[1:]


def resolve_inside(area: Path, relative: str) -> Path:
    """Resolve `relative` under `area` and raise FileRejected unless it is a regular file there.

    Absolute paths, `..` components, back slashes and NUL characters are
    rejected before the file system is touched. Symbolic links are followed,
    and the target must still lie inside `area`.
    """
    area = area.resolve()
    parts = _checked_parts(relative)
    candidate = area.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise FileRejected(RejectionReason.NOT_FOUND, f"no file at '{relative}' in the staging area") from None
    except OSError as error:
        # The reason is, for example, "file name too long", or "not a directory" for a path through a file.
        raise FileRejected(
            RejectionReason.INVALID_PATH, f"cannot resolve '{relative}': {os_error_reason(error)}"
        ) from None
    except RuntimeError:
        # pathlib raises RuntimeError for a symbolic link loop on Python 3.11. Its
        # message contains the absolute path, so it is not passed on.
        raise FileRejected(RejectionReason.INVALID_PATH, f"cannot resolve '{relative}': symbolic link loop") from None

    if not real.is_relative_to(area):
        raise FileRejected(
            RejectionReason.PATH_OUTSIDE_STAGING_AREA,
            f"'{relative}' leads outside the staging area (through a symbolic link)",
        )
    if not stat.S_ISREG(os.stat(real).st_mode):
        raise FileRejected(RejectionReason.NOT_A_REGULAR_FILE, f"'{relative}' is not a regular file")
    return real


def check_upload_name(relative: str) -> None:
    """Raise FileRejected for a name an upload may not take: one with an empty folder name, a part starting with '.', or U+FFFD.

    Reading a staged file allows the first two, but an upload under such a
    name is a mistake or an attempt to hide a file, and names starting with
    '.' are reserved for the partial files of uploads in progress. U+FFFD is
    what a URL's percent-encoded bytes that are not UTF-8 decode to, so two
    different names could end up as one file.
    """
    if "\ufffd" in relative:
        raise FileRejected(
            RejectionReason.INVALID_PATH,
            f"'{relative}' contains U+FFFD, which stands for bytes that are not UTF-8; percent-encode the name's UTF-8 bytes",
        )
    for part in relative.split("/"):
        if part == "":
            raise FileRejected(
                RejectionReason.INVALID_PATH, f"'{relative}' has an empty folder name; separate folders with a single '/'"
            )
        if part.startswith("."):
            raise FileRejected(
                RejectionReason.INVALID_PATH,
                f"'{relative}' has a name starting with '.', which staging keeps for uploads in progress; rename it",
            )


def _checked_parts(relative: str) -> tuple[str, ...]:
    if not relative or not relative.strip():
        raise FileRejected(RejectionReason.INVALID_PATH, "empty file path")
    if len(relative) > _MAX_RELATIVE_PATH_CHARS:
        raise FileRejected(RejectionReason.INVALID_PATH, f"file path longer than {_MAX_RELATIVE_PATH_CHARS} characters")
    if "\x00" in relative or "\\" in relative:
        raise FileRejected(
            RejectionReason.INVALID_PATH, f"'{relative}' contains a NUL or back slash; use '/' between folders"
        )

    path = PurePosixPath(relative)
    if path.is_absolute():
        raise FileRejected(
            RejectionReason.PATH_OUTSIDE_STAGING_AREA,
            f"'{relative}' is absolute; give a path relative to the staging area",
        )
    if ".." in path.parts:
        raise FileRejected(RejectionReason.PATH_OUTSIDE_STAGING_AREA, f"'{relative}' contains '..'")
    return tuple(part for part in path.parts if part != ".")
