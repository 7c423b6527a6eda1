"""Keyed pseudonyms for data subjects (HMAC-SHA256 under a per-region key).

A hospital turns its local patient identifier into a pseudonym before anything
leaves the hospital. The pseudonym names the region and key version so that a
key can be rotated without two subjects colliding across versions.
"""

import hashlib
import hmac
import re
from typing import Annotated

from pydantic import StringConstraints

PSEUDONYM_PATTERN = r"^[a-z]{2,16}\.k[0-9]{1,3}\.[0-9a-f]{64}$"

Pseudonym = Annotated[str, StringConstraints(pattern=PSEUDONYM_PATTERN)]

_MIN_KEY_BYTES = 32


def pseudonymize(local_identifier: str, *, region: str, key: bytes, key_version: int = 1) -> str:
    """Return the pseudonym of `local_identifier` under the region's key.

    The input is normalized (surrounding whitespace removed) so that the same
    patient always maps to the same pseudonym inside one region and key version.
    """
    if len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"pseudonymization key must be at least {_MIN_KEY_BYTES} bytes, got {len(key)}")
    if not re.fullmatch(r"[a-z]{2,16}", region):
        raise ValueError(f"invalid region {region!r}: expected lower-case letters, e.g. 'daegu'")
    normalized = local_identifier.strip()
    if not normalized:
        raise ValueError("cannot pseudonymize an empty identifier")
    digest = hmac.new(key, normalized.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{region}.k{key_version}.{digest}"


def is_pseudonym(value: str) -> bool:
    return re.fullmatch(PSEUDONYM_PATTERN, value) is not None
