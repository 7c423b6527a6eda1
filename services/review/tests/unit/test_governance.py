"""Loading boards.yaml: the packaged file, and the messages for broken files."""

import copy
from importlib import resources
from typing import Any

import pytest
import yaml

from medgov_shared.contracts.types import Board, Region

from medgov_review.domain.governance import Governance, GovernanceDataError, parse_governance


def packaged_data() -> dict[str, Any]:
    text = resources.files("medgov_review").joinpath("data/boards.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def test_packaged_file_has_both_boards_in_every_region(governance: Governance) -> None:
    pairs = {(seat.region, seat.board) for seat in governance.roster.seats}

    assert pairs == {(region, board) for region in Region for board in Board}


def test_packaged_boards_use_three_of_five(governance: Governance) -> None:
    assert {(seat.quorum, len(seat.members)) for seat in governance.roster.seats} == {(3, 5)}


def test_packaged_boards_reach_quorum_after_any_recusal(governance: Governance) -> None:
    for seat in governance.roster.seats:
        for member in seat.members:
            if member.institution_id is not None:
                assert len(seat.members) - len(seat.recused_for(member.institution_id)) >= seat.quorum


def broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(packaged_data())
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data["regions"]["daegu"].pop("DRB"), "regions.daegu: the DRB is missing"),
        (lambda data: data["regions"].pop("gwangju"), "no boards for gwangju"),
        (lambda data: data["regions"].update({"busan": data["regions"]["daegu"]}), "unknown value 'busan'"),
        (
            lambda data: data["regions"]["daegu"]["IRB"]["members"][0].update({"institution": "nowhere"}),
            "unknown institution 'nowhere'",
        ),
        (
            lambda data: [item.update({"institution": "knuh"}) for item in data["regions"]["daegu"]["IRB"]["members"][:3]],
            "with the members of knuh recused only 2 remain",
        ),
        (
            lambda data: data["regions"]["daejeon"]["IRB"]["members"][4].update({"id": "dg-irb-5"}),
            "sits on the IRB of both daegu and daejeon",
        ),
        (lambda data: data["regions"]["daegu"]["IRB"].update({"quorum": 6}), "quorum 6 must be between 1"),
        (lambda data: data["regions"]["daegu"]["IRB"].pop("quorum"), "needs 'quorum'"),
        (lambda data: data["council"].pop("term_months"), "council: needs 'rotation'"),
        (lambda data: data["council"].update({"first_term_starts": "soon"}), "must be a date"),
        (lambda data: data["council"].update({"rotation": ["daegu", "daegu"]}), "names a region twice"),
        (lambda data: data.pop("council"), "top-level keys"),
    ],
)
def test_broken_data_is_rejected_with_the_entry_named(change: Any, message: str) -> None:
    with pytest.raises(GovernanceDataError, match=message):
        parse_governance(broken(change))
