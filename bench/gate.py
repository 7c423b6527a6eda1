"""The correctness gate: every sequence number sent must be applied exactly once."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GateResult:
    expected: int
    lost: int
    duplicated: int
    lost_sample: tuple[int, ...] = ()
    duplicated_sample: tuple[int, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.duplicated == 0

    def merge(self, other: "GateResult") -> "GateResult":
        return GateResult(
            expected=self.expected + other.expected,
            lost=self.lost + other.lost,
            duplicated=self.duplicated + other.duplicated,
            lost_sample=(self.lost_sample + other.lost_sample)[:10],
            duplicated_sample=(self.duplicated_sample + other.duplicated_sample)[:10],
            notes=self.notes + other.notes,
        )


PASSED_EMPTY = GateResult(expected=0, lost=0, duplicated=0)


def check(expected: Iterable[int], observed: Iterable[int], *, note: str | None = None) -> GateResult:
    """Compare the sequence numbers sent with those applied, counting each applied one as often as it was seen.

    An observed number that was never sent counts as a duplicate too: it can
    only come from an event applied under the wrong identity.
    """
    wanted = set(expected)
    seen = Counter(observed)
    lost = sorted(wanted - seen.keys())
    duplicated = sorted(number for number, times in seen.items() if times > 1 or number not in wanted)
    return GateResult(
        expected=len(wanted),
        lost=len(lost),
        duplicated=len(duplicated),
        lost_sample=tuple(lost[:10]),
        duplicated_sample=tuple(duplicated[:10]),
        notes=(note,) if note and (lost or duplicated) else (),
    )
