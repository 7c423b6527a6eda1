"""Errors the grants domain raises; each carries a stable `code` for HTTP and dead-letter headers."""


class GrantsError(Exception):
    """Base of every grants domain error; no money moves when one is raised."""

    code = "grants_error"


class InvalidAmount(GrantsError):
    """Raised for an amount that is not a whole, positive number of won (or not allowed as zero)."""

    code = "invalid_amount"


class UnknownInstitution(GrantsError):
    """Raised for an institution id that institutions.yaml does not list."""

    code = "unknown_institution"


class IneligibleInstitution(GrantsError):
    """Raised when an institution of the wrong kind requests money from a pool (e.g. a hospital for a tool grant)."""

    code = "ineligible_institution"


class NotAuthorized(GrantsError):
    """Raised when the caller lacks the role or the institution that the action needs."""

    code = "not_authorized"


class AwardExceedsPool(GrantsError):
    """Raised when an award is larger than the uncommitted money left in its pool."""

    code = "award_exceeds_pool"


class InvalidTranches(GrantsError):
    """Raised when tool-grant tranches do not add up to the award or a tranche is empty."""

    code = "invalid_tranches"


class NotFound(GrantsError):
    """Raised for an application, award or tranche id that does not exist."""

    code = "not_found"


class InvalidState(GrantsError):
    """Raised for an action that the current state forbids, e.g. awarding an application twice."""

    code = "invalid_state"


class InvalidInput(GrantsError):
    """Raised for a missing or malformed field other than an amount, e.g. an empty title."""

    code = "invalid_input"


class PolicyError(GrantsError):
    """Raised for an invalid policy configuration; the message names the setting and how to fix it."""

    code = "invalid_policy"


class UnbalancedPosting(GrantsError):
    """Raised when a posting's legs do not sum to zero or a leg is malformed."""

    code = "unbalanced_posting"


class ConflictingPosting(GrantsError):
    """Raised when a posting id is reused with different legs; postings are never edited."""

    code = "conflicting_posting"


class PoolExhausted(GrantsError):
    """Raised when a posting would take a pool below zero; the ledger is left unchanged."""

    code = "pool_exhausted"

    def __init__(self, pool: str, requested_krw: int, available_krw: int) -> None:
        super().__init__(
            f"pool {pool!r} has {available_krw:,} KRW available, {requested_krw:,} KRW requested; "
            "the payout stays pending until money returns to the pool"
        )
        self.pool = pool
        self.requested_krw = requested_krw
        self.available_krw = available_krw


class LedgerInvariantViolated(GrantsError):
    """Raised by an invariant check that finds the ledger inconsistent; this is a bug, never user input."""

    code = "ledger_invariant_violated"
