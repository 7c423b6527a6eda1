"""Deterministic ids for awards, payouts and postings, so a replay reproduces them exactly."""

import hashlib

# The contracts' EntityId allows at most 128 characters.
MAX_ID_LENGTH = 128
_HASH_LENGTH = 16


def derived_id(*parts: object) -> str:
    """Join `parts` with '-'; an id longer than 128 characters is cut and ends with a hash of the full id."""
    full = "-".join(str(part) for part in parts)
    if len(full) <= MAX_ID_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:_HASH_LENGTH]
    return f"{full[: MAX_ID_LENGTH - _HASH_LENGTH - 1]}-{digest}"
