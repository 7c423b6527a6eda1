"""Snapshots of the in-memory fund, so a rebuild replays only the journal entries after the latest one.

A snapshot is the pickled `Fund` as of one journal entry, written in the
transaction that appends that entry, so it never describes an uncommitted
state. Pickle ties a snapshot to the exact classes that wrote it. The format
string therefore hashes the source of the domain package and of the shared
contracts, whose enums the fund contains, and names the Python version. A
snapshot of another format, or one that fails to load, is ignored: the next
rebuild replays the whole journal once and writes a new snapshot.

Pickle runs code while it loads, so a snapshot is read only from the grants
database, and a role that can write that database can already change the ledger.
"""

import dataclasses
import hashlib
import pickle
import sys
from functools import cache
from pathlib import Path

import medgov_shared.contracts

from medgov_grants.domain.fund import Fund, InstitutionDirectory
from medgov_grants.domain.policy import GrantsPolicy

_SOURCE_FOLDERS = (Path(__file__).resolve().parent / "domain", Path(medgov_shared.contracts.__file__).resolve().parent)
_PROTOCOL = 5
# Exceptions of pickle.loads for a snapshot whose classes moved, were renamed or changed shape.
_LOAD_ERRORS = (pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError, EOFError)


@cache
def snapshot_format() -> str:
    """Return the identifier of the snapshots this code can read: Python version and a hash of the pickled classes' source."""
    digest = hashlib.sha256()
    for folder in _SOURCE_FOLDERS:
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"pickle{_PROTOCOL}-py{version}-{digest.hexdigest()[:16]}"


def dump_fund(fund: Fund) -> bytes:
    """Serialize `fund` without its institution directory, which is code and comes from the service at load time."""
    detached = dataclasses.replace(fund, directory=None)  # type: ignore[arg-type]
    return pickle.dumps(detached, protocol=_PROTOCOL)


def load_fund(state: bytes, *, policy: GrantsPolicy, directory: InstitutionDirectory) -> Fund | None:
    """Return the fund of a snapshot, or None when it fails to load or was built under another policy."""
    try:
        fund = pickle.loads(state)  # noqa: S301 - read only from the service's own database, see the module docstring
    except _LOAD_ERRORS:
        return None
    if not isinstance(fund, Fund) or fund.policy != policy:
        return None
    fund.directory = directory
    return fund
