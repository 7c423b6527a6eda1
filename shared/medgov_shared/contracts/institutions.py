"""The institutions known to the platform, loaded from institutions.yaml beside this module."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from medgov_shared.contracts.types import Region

_FILE = Path(__file__).with_name("institutions.yaml")


@dataclass(frozen=True)
class Institution:
    id: str
    region: Region
    kind: Literal["hospital", "vendor", "partner", "council"]
    name_ko: str
    name_en: str


@cache
def all_institutions() -> dict[str, Institution]:
    rows = yaml.safe_load(_FILE.read_text(encoding="utf-8"))
    return {row["id"]: Institution(**{**row, "region": Region(row["region"])}) for row in rows}


def get_institution(institution_id: str) -> Institution:
    try:
        return all_institutions()[institution_id]
    except KeyError:
        raise KeyError(f"unknown institution {institution_id!r}; known: {', '.join(sorted(all_institutions()))}") from None


def hospitals() -> list[Institution]:
    return [item for item in all_institutions().values() if item.kind == "hospital"]
