"""GA4GH Data Use Ontology (DUO) codes and how one research purpose covers another.

Ids, shorthands and meanings follow duo.csv of EBISPOT/DUO. DUO splits codes
into data use permissions (the research purposes NRES, GRU, HMB, DS, POA) and
data use modifiers (conditions such as NCU, non-commercial use only).

The purposes form a hierarchy: NRES covers everything, GRU covers every
research purpose, HMB covers disease-specific research (DS:<disease>) but not
population origins or ancestry research (POA).

Grants and dataset terms reach this service from other services, whose
contracts accept any well-formed DUO id (`DUO:` and seven digits). An id this
module does not list is kept as it is, as an unlisted code, and read
conservatively: it may name a purpose that no listed purpose covers, so only
NRES or a condition without purposes permits it, and every deny or revocation
with purposes reaches it. Consents themselves must use listed codes.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass

NO_RESTRICTION = "NRES"
GENERAL_RESEARCH = "GRU"
HEALTH_MEDICAL_BIOMEDICAL = "HMB"
DISEASE_SPECIFIC = "DS"
POPULATION_ORIGINS = "POA"

PURPOSES = frozenset({NO_RESTRICTION, GENERAL_RESEARCH, HEALTH_MEDICAL_BIOMEDICAL, DISEASE_SPECIFIC, POPULATION_ORIGINS})

MODIFIERS = frozenset(
    {"IRB", "PUB", "US", "NPOA", "COL", "NCU", "NPUNCU", "RS", "TS", "NPU", "MOR", "GSO", "RTN", "CC", "NMDS", "IS", "GS", "PS"}
)

# Modifiers whose condition the platform can check itself, because its
# institution register records whether a grantee is a for-profit company. The other modifiers are obligations (ethics
# approval, publication, collaboration ...) that the joint IRB/DRB review
# enforces before a grant exists.
FOR_PROFIT_EXCLUDING_MODIFIERS = frozenset({"NCU", "NPU", "NPUNCU"})

_SHORTHAND_BY_ID = {
    "DUO:0000004": "NRES",
    "DUO:0000042": "GRU",
    "DUO:0000006": "HMB",
    "DUO:0000007": "DS",
    "DUO:0000011": "POA",
    "DUO:0000021": "IRB",
    "DUO:0000019": "PUB",
    "DUO:0000026": "US",
    "DUO:0000044": "NPOA",
    "DUO:0000020": "COL",
    "DUO:0000046": "NCU",
    "DUO:0000018": "NPUNCU",
    "DUO:0000012": "RS",
    "DUO:0000025": "TS",
    "DUO:0000045": "NPU",
    "DUO:0000024": "MOR",
    "DUO:0000016": "GSO",
    "DUO:0000029": "RTN",
    "DUO:0000043": "CC",
    "DUO:0000015": "NMDS",
    "DUO:0000028": "IS",
    "DUO:0000022": "GS",
    "DUO:0000027": "PS",
}


_DUO_ID = re.compile(r"DUO:\d{7}")


class UnknownDuoCode(ValueError):
    """Raised for a code that is neither a DUO shorthand nor a known DUO id."""


def normalize(code: str) -> str:
    """Return the shorthand of a DUO code given as shorthand, `DUO:0000042` or `DUO_0000042`.

    A disease-specific purpose keeps its disease suffix (`DS:MONDO_0005148`).
    """
    text = code.strip()
    if text.upper().startswith("DUO_"):
        text = "DUO:" + text[4:]
    if text.upper().startswith("DUO:"):
        try:
            return _SHORTHAND_BY_ID[text.upper()]
        except KeyError:
            raise UnknownDuoCode(f"unknown DUO id {code!r}") from None
    head, separator, disease = text.partition(":")
    shorthand = head.upper()
    if separator and shorthand in {DISEASE_SPECIFIC, "RS"} and disease:
        return f"{shorthand}:{disease}"
    if not separator and (shorthand in PURPOSES or shorthand in MODIFIERS):
        return shorthand
    raise UnknownDuoCode(f"unknown DUO code {code!r}; expected a shorthand such as GRU or HMB, or an id such as DUO:0000042")


def normalize_decided(code: str) -> str:
    """Return the shorthand of a code from a grant or a dataset's terms, keeping a well-formed unlisted DUO id.

    Review and catalog already decided on these codes, so an id missing from
    this module is no reason to drop the grant or the terms.
    """
    try:
        return normalize(code)
    except UnknownDuoCode:
        text = code.strip().upper().replace("DUO_", "DUO:", 1)
        if _DUO_ID.fullmatch(text):
            return text
        raise


def is_unlisted(code: str) -> bool:
    """Tell whether a normalized code is a DUO id that this module does not list."""
    return code.startswith("DUO:")


def is_purpose(code: str) -> bool:
    """Tell whether a normalized code is a research purpose; an unlisted id counts as one, to be safe."""
    return is_unlisted(code) or code.split(":", 1)[0] in PURPOSES


def split_codes(codes: Iterable[str], *, keep_unlisted: bool = False) -> tuple[frozenset[str], frozenset[str]]:
    """Split codes into normalized (purposes, modifiers).

    Raises UnknownDuoCode for an unlisted DUO id unless `keep_unlisted` is set,
    as it is for the codes of grants and dataset terms.
    """
    read = normalize_decided if keep_unlisted else normalize
    normalized = [read(code) for code in codes]
    purposes = frozenset(code for code in normalized if is_purpose(code))
    modifiers = frozenset(code for code in normalized if not is_purpose(code))
    return purposes, modifiers


def covers(permitted: str, requested: str) -> bool:
    """Tell whether research permitted under `permitted` includes research done for `requested`."""
    if permitted == requested or permitted == NO_RESTRICTION:
        return True
    if is_unlisted(permitted) or is_unlisted(requested):
        return False
    if permitted == GENERAL_RESEARCH:
        return requested != NO_RESTRICTION
    if permitted == HEALTH_MEDICAL_BIOMEDICAL:
        return requested.startswith(f"{DISEASE_SPECIFIC}:") or requested == DISEASE_SPECIFIC
    return False


def overlaps(first: str, second: str) -> bool:
    """Tell whether some research could be done under both purposes; an unlisted id may overlap anything."""
    if is_unlisted(first) or is_unlisted(second):
        return True
    return covers(first, second) or covers(second, first)


def requested_purposes(codes: Iterable[str]) -> frozenset[str]:
    """Return the research purposes of a request, reading a request that names none as GRU.

    A grant that states only modifiers leaves its research topic open, so it
    is treated as the broadest research purpose. Unlisted DUO ids are kept as
    purposes.
    """
    purposes, _ = split_codes(codes, keep_unlisted=True)
    return purposes or frozenset({GENERAL_RESEARCH})


@dataclass(frozen=True)
class PurposeCondition:
    """The purpose part of a permit or deny: DUO purposes, and whether for-profit use is excluded.

    `purposes` is None when any research purpose qualifies.
    """

    purposes: frozenset[str] | None = None
    excludes_for_profit: bool = False

    @classmethod
    def from_codes(cls, codes: Iterable[str]) -> "PurposeCondition":
        """Build the condition of codes already validated, such as a dataset's terms; unlisted DUO ids are kept."""
        purposes, modifiers = split_codes(codes, keep_unlisted=True)
        return cls(purposes=purposes or None, excludes_for_profit=bool(modifiers & FOR_PROFIT_EXCLUDING_MODIFIERS))

    def permits(self, requested: frozenset[str], *, for_profit: bool) -> bool:
        """Tell whether a permit with this condition covers every requested purpose."""
        if self.excludes_for_profit and for_profit:
            return False
        if self.purposes is None:
            return True
        return all(any(covers(permitted, purpose) for permitted in self.purposes) for purpose in requested)

    def denies(self, requested: frozenset[str]) -> bool:
        """Tell whether a deny with this condition reaches any requested purpose."""
        if self.purposes is None:
            return True
        return any(overlaps(denied, purpose) for denied in self.purposes for purpose in requested)

    def describe(self) -> str:
        names = "any research purpose" if self.purposes is None else ", ".join(sorted(self.purposes))
        return f"{names} (not for-profit)" if self.excludes_for_profit else names


def intersect(first: frozenset[str] | None, second: frozenset[str] | None) -> frozenset[str] | None:
    """Return the purposes allowed under both sets (None means any purpose).

    The purposes form a tree, so research allowed under both is the narrower
    purpose of every pair in which one covers the other.
    """
    if first is None:
        return second
    if second is None:
        return first
    narrower = set()
    for left in first:
        for right in second:
            if covers(left, right):
                narrower.add(right)
            elif covers(right, left):
                narrower.add(left)
    return frozenset(narrower)
