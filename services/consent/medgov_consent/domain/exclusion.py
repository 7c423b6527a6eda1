"""The life of one exclusion: requested, acknowledged by the grantee and by the data holder, or overdue.

Both parties must confirm that the subject's data left the grant. An
acknowledgement after the deadline is still recorded, but the exclusion was
overdue by then and stays flagged; the overdue flag is raised once.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from medgov_consent.domain.errors import NotAParty
from medgov_consent.domain.fanout import PlannedExclusion


class Party(StrEnum):
    GRANTEE = "grantee"
    HOLDER = "holder"


# The role a signed-in user needs to acknowledge for each party.
ROLE_OF_PARTY = {Party.GRANTEE: "applicant", Party.HOLDER: "hospital"}


@dataclass(frozen=True)
class Exclusion:
    exclusion_id: str
    grant_id: str
    dataset_id: str
    subject: str
    consent_id: str
    grantee_id: str
    holder_id: str
    requested_at: datetime
    acknowledge_by: datetime
    grantee_acknowledged_at: datetime | None = None
    holder_acknowledged_at: datetime | None = None
    overdue_at: datetime | None = None

    @classmethod
    def requested(cls, plan: PlannedExclusion) -> "Exclusion":
        return cls(
            exclusion_id=plan.exclusion_id,
            grant_id=plan.grant_id,
            dataset_id=plan.dataset_id,
            subject=plan.subject,
            consent_id=plan.consent_id,
            grantee_id=plan.grantee_id,
            holder_id=plan.holder_id,
            requested_at=plan.requested_at,
            acknowledge_by=plan.acknowledge_by,
        )

    @property
    def complete(self) -> bool:
        return self.grantee_acknowledged_at is not None and self.holder_acknowledged_at is not None

    def institution_of(self, party: Party) -> str:
        return self.grantee_id if party is Party.GRANTEE else self.holder_id

    def acknowledged_at(self, party: Party) -> datetime | None:
        return self.grantee_acknowledged_at if party is Party.GRANTEE else self.holder_acknowledged_at

    def missing_parties(self) -> tuple[Party, ...]:
        return tuple(party for party in Party if self.acknowledged_at(party) is None)

    def party_of(self, role: str, institution_id: str) -> Party:
        """Return the party a user with `role` at `institution_id` acknowledges for; raise NotAParty otherwise."""
        for party, needed_role in ROLE_OF_PARTY.items():
            if role == needed_role and institution_id == self.institution_of(party):
                return party
        raise NotAParty(
            f"{role} of {institution_id} cannot acknowledge exclusion {self.exclusion_id}: the grantee "
            f"{self.grantee_id} acknowledges as applicant, the holder {self.holder_id} as hospital"
        )

    def acknowledge(self, party: Party, at: datetime) -> tuple["Exclusion", bool]:
        """Record `party`'s acknowledgement; return the exclusion and whether anything changed."""
        if self.acknowledged_at(party) is not None:
            return self, False
        if party is Party.GRANTEE:
            return replace(self, grantee_acknowledged_at=at), True
        return replace(self, holder_acknowledged_at=at), True

    def is_overdue(self, now: datetime) -> bool:
        """Tell whether the overdue flag is due now: the deadline passed, a party is missing, and no flag was raised."""
        return self.overdue_at is None and not self.complete and now >= self.acknowledge_by

    def mark_overdue(self, now: datetime) -> "Exclusion":
        return replace(self, overdue_at=now)
