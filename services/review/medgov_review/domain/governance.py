"""Load board memberships and the council rotation from boards.yaml and check them.

The checks run at start-up, so a broken file stops the service with a message
that names the entry to fix instead of failing in the middle of a review.
"""

from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from enum import Enum
from typing import Any, TypeVar

import yaml

from medgov_shared.contracts.institutions import all_institutions
from medgov_shared.contracts.types import Board, Region

from medgov_review.domain.boards import BoardMember, BoardRoster, BoardSeat
from medgov_review.domain.council import CouncilRotation


EnumT = TypeVar("EnumT", bound=Enum)


class GovernanceDataError(ValueError):
    """Raised when boards.yaml is malformed; the message names the entry."""


@dataclass(frozen=True)
class Governance:
    roster: BoardRoster
    council: CouncilRotation


@cache
def packaged_governance() -> Governance:
    """Return the governance data shipped in medgov_review/data/boards.yaml."""
    text = resources.files("medgov_review").joinpath("data/boards.yaml").read_text(encoding="utf-8")
    return parse_governance(yaml.safe_load(text))


def load_governance(path: Path) -> Governance:
    return parse_governance(yaml.safe_load(path.read_text(encoding="utf-8")))


def parse_governance(data: Any) -> Governance:
    if not isinstance(data, dict) or "regions" not in data or "council" not in data:
        raise GovernanceDataError("boards data needs the top-level keys 'regions' and 'council'")
    roster = BoardRoster(seats=tuple(_parse_seats(data["regions"])))
    _check_roster(roster)
    return Governance(roster=roster, council=_parse_council(data["council"]))


def _parse_seats(regions: Any) -> list[BoardSeat]:
    if not isinstance(regions, dict):
        raise GovernanceDataError("'regions' must map each region to its boards")
    seats = []
    for region_name, boards in regions.items():
        region = _enum(Region, region_name, "regions")
        for board in Board:
            entry = (boards or {}).get(str(board))
            if entry is None:
                raise GovernanceDataError(
                    f"regions.{region}: the {board} is missing; every region needs an IRB and a DRB"
                )
            seats.append(_parse_seat(region, board, entry))
    missing = set(Region) - {seat.region for seat in seats}
    if missing:
        raise GovernanceDataError(f"regions: no boards for {', '.join(sorted(missing))}")
    return seats


def _parse_seat(region: Region, board: Board, entry: Any) -> BoardSeat:
    where = f"regions.{region}.{board}"
    try:
        members = tuple(_parse_member(item, where) for item in entry["members"])
        return BoardSeat(region=region, board=board, quorum=int(entry["quorum"]), members=members)
    except (KeyError, TypeError) as error:
        raise GovernanceDataError(f"{where}: needs 'quorum' and a list of 'members' ({error})") from error
    except GovernanceDataError:
        raise
    except ValueError as error:
        raise GovernanceDataError(f"{where}: {error}") from error


def _parse_member(item: Any, where: str) -> BoardMember:
    institution = item.get("institution")
    if institution is not None and institution not in all_institutions():
        raise GovernanceDataError(
            f"{where}: member {item.get('id')!r} names unknown institution {institution!r}; "
            "use a registered institution id or null for an independent member"
        )
    return BoardMember(
        member_id=str(item["id"]),
        name_ko=str(item["name_ko"]),
        name_en=str(item["name_en"]),
        institution_id=institution,
    )


def _check_roster(roster: BoardRoster) -> None:
    for board in Board:
        seen: dict[str, Region] = {}
        for seat in (item for item in roster.seats if item.board == board):
            for member in seat.members:
                if member.member_id in seen:
                    raise GovernanceDataError(
                        f"member {member.member_id!r} sits on the {board} of both {seen[member.member_id]} "
                        f"and {seat.region}; a member id may appear on one {board} only"
                    )
                seen[member.member_id] = seat.region
    for seat in roster.seats:
        _check_quorum_after_recusal(seat)


def _check_quorum_after_recusal(seat: BoardSeat) -> None:
    institutions = {item.institution_id for item in seat.members if item.institution_id is not None}
    for institution in sorted(institutions):
        eligible = len(seat.members) - len(seat.recused_for(institution))
        if eligible < seat.quorum:
            raise GovernanceDataError(
                f"regions.{seat.region}.{seat.board}: with the members of {institution} recused only "
                f"{eligible} remain, fewer than the quorum {seat.quorum}; add members from other institutions"
            )


def _parse_council(entry: Any) -> CouncilRotation:
    try:
        rotation = tuple(_enum(Region, name, "council.rotation") for name in entry["rotation"])
        first = entry["first_term_starts"]
        if not isinstance(first, date):
            raise GovernanceDataError(f"council.first_term_starts must be a date (YYYY-MM-DD), got {first!r}")
        return CouncilRotation(rotation=rotation, first_term_starts=first, term_months=int(entry["term_months"]))
    except (KeyError, TypeError) as error:
        raise GovernanceDataError(
            f"council: needs 'rotation', 'first_term_starts' and 'term_months' ({error})"
        ) from error
    except GovernanceDataError:
        raise
    except ValueError as error:
        raise GovernanceDataError(f"council: {error}") from error


def _enum(kind: type[EnumT], value: Any, where: str) -> EnumT:
    try:
        return kind(value)
    except ValueError:
        raise GovernanceDataError(f"{where}: unknown value {value!r}") from None
