"""Snapshots of the in-memory fund, so a rebuild replays only the journal entries after the latest one.

A snapshot is the pickled `Fund` as of one journal entry, written in the
transaction that appends that entry, so it never describes an uncommitted
state. Pickle ties a snapshot to the exact classes that wrote it. The format
string therefore hashes the source of the domain package and of the shared
contracts, whose enums the fund contains, and names the Python version. A
snapshot of another format, or one that fails to load, is ignored: the next
rebuild replays the whole journal once and writes a new snapshot.

Pickling the whole fund at once made the pickler remember every object it
had written, about 31 MB beside a fund of 47,000 datasets, on top of the
pickled bytes. So a snapshot is a zlib stream of several pickles: first the
fund without its hospitals' dataset subsidies, then those subsidies
`_CHUNK` datasets at a time, each pickle with a memory of its own. The
subsidies of a dataset share no object with the rest of the fund, so
pickling them apart restores an equal fund.

Pickle runs code while it loads, so a snapshot is read only from the grants
database, and a role that can write that database can already change the ledger.
"""

import dataclasses
import hashlib
import io
import itertools
import pickle
import sys
import zlib
from functools import cache
from pathlib import Path

import medgov_shared.contracts

from medgov_grants.domain.fund import Fund, InstitutionDirectory
from medgov_grants.domain.policy import GrantsPolicy

_SOURCE_FOLDERS = (Path(__file__).resolve().parent / "domain", Path(medgov_shared.contracts.__file__).resolve().parent)
_PROTOCOL = 5
# Dataset subsidies per pickle: the pickler's memory of written objects stays near 1 MB.
_CHUNK = 2000
# zlib's fastest level: the pickles shrink about fifteenfold at 1 and hardly more at 6.
_COMPRESSION = 1
# Exceptions of loading a snapshot whose classes moved, were renamed or changed shape, or whose stream is cut short.
_LOAD_ERRORS = (pickle.UnpicklingError, zlib.error, AttributeError, ImportError, TypeError, ValueError, EOFError, KeyError)


@cache
def snapshot_format() -> str:
    """Return the identifier of the snapshots this code can read: Python version and a hash of the pickled classes' source."""
    digest = hashlib.sha256()
    for folder in _SOURCE_FOLDERS:
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"pickle{_PROTOCOL}z-py{version}-{digest.hexdigest()[:16]}"


def dump_fund(fund: Fund) -> bytes:
    """Serialize `fund` without its institution directory, which is code and comes from the service at load time."""
    hospitals = {
        institution_id: dataclasses.replace(hospital, datasets={}) for institution_id, hospital in fund.subsidies.items()
    }
    detached = dataclasses.replace(fund, directory=None, subsidies=hospitals)  # type: ignore[arg-type]
    counts = {institution_id: len(hospital.datasets) for institution_id, hospital in fund.subsidies.items()}
    sink = _CompressedSink()
    pickle.dump((detached, counts), sink, protocol=_PROTOCOL)
    for hospital in fund.subsidies.values():
        items = iter(hospital.datasets.values())
        while chunk := list(itertools.islice(items, _CHUNK)):
            pickle.dump(chunk, sink, protocol=_PROTOCOL)
    return sink.finish()


def load_fund(state: bytes, *, policy: GrantsPolicy, directory: InstitutionDirectory) -> Fund | None:
    """Return the fund of a snapshot, or None when it fails to load or was built under another policy."""
    try:
        fund = _load(state)
    except _LOAD_ERRORS:
        return None
    if not isinstance(fund, Fund) or fund.policy != policy:
        return None
    fund.directory = directory
    return fund


def _load(state: bytes) -> object:
    stream = io.BytesIO(zlib.decompress(state))
    # Read only from the service's own database, see the module docstring.
    fund, counts = pickle.load(stream)  # noqa: S301
    if not isinstance(fund, Fund):
        return fund
    # Each hospital's chunks follow one another, in the order of `counts`.
    for institution_id, count in counts.items():
        datasets = fund.subsidies[institution_id].datasets
        while len(datasets) < count:
            for dataset in pickle.load(stream):  # noqa: S301
                datasets[dataset.dataset_id] = dataset
    if stream.read(1):
        raise ValueError("snapshot contains data after the fund it describes")
    return fund


class _CompressedSink:
    """A file-like target for pickle.dump that compresses what it is given and keeps only the compressed bytes."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(_COMPRESSION)
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        compressed = self._compressor.compress(data)
        if compressed:
            self._parts.append(compressed)
        return len(data)

    def finish(self) -> bytes:
        self._parts.append(self._compressor.flush())
        return b"".join(self._parts)
