"""How many examples each fuzz target runs.

The default keeps the whole fuzz suite inside the normal test run (about a
minute). MEDGOV_FUZZ_EXAMPLES sets the total for one dedicated run, for
example `MEDGOV_FUZZ_EXAMPLES=100000 pytest -m fuzz tests/fuzz`; each target
then gets its share of that total.
"""

import os
from collections import Counter

from hypothesis import HealthCheck, settings

ENV_VAR = "MEDGOV_FUZZ_EXAMPLES"

# Cases actually run in this session, per kind, including hypothesis's shrinking and replays; conftest.py
# prints them at the end of the run.
CASES_RUN: Counter[str] = Counter()


def requested_total() -> int | None:
    """Return the total from MEDGOV_FUZZ_EXAMPLES, or None for the quick default."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{ENV_VAR} must be a positive whole number of examples, got {raw!r}")
    return int(raw)


def examples_for(quick: int, share: float) -> int:
    """Return the examples of one target: `quick` by default, else `share` of the requested total."""
    total = requested_total()
    if total is None:
        return quick
    return max(quick, round(total * share))


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings for a fuzz target: no deadline, because a request may wait for the database."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )
