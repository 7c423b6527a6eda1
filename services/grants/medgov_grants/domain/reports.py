"""Reports derived from the ledger: pool balances, disbursements by institution and by region, CSV export.

Every figure is a sum over postings (or over pending payouts for the pending
column), so a report cannot disagree with the ledger it is built from.
"""

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields

from medgov_shared.contracts.institutions import Institution

from medgov_grants.domain.ledger import POOLS, AccountKind, Ledger, PostingKind


@dataclass(frozen=True)
class PoolBalance:
    pool: str
    allocated_krw: int
    disbursed_krw: int
    clawed_back_krw: int
    available_krw: int
    pending_krw: int


@dataclass(frozen=True)
class InstitutionDisbursement:
    institution_id: str
    region: str
    pool: str
    disbursed_krw: int
    clawed_back_krw: int
    net_krw: int


@dataclass(frozen=True)
class RegionDisbursement:
    region: str
    pool: str
    disbursed_krw: int
    clawed_back_krw: int
    net_krw: int


def pool_balances(ledger: Ledger) -> list[PoolBalance]:
    """Return one row per pool; allocated - disbursed + clawed back = available."""
    moved: dict[tuple[str, PostingKind], int] = defaultdict(int)
    for posting in ledger.postings:
        for leg in posting.legs:
            if leg.account.kind is AccountKind.POOL:
                moved[(leg.account.name, posting.kind)] += abs(leg.amount_krw)
    return [
        PoolBalance(
            pool=pool,
            allocated_krw=moved[(pool, PostingKind.ALLOCATION)],
            disbursed_krw=moved[(pool, PostingKind.DISBURSEMENT)],
            clawed_back_krw=moved[(pool, PostingKind.CLAWBACK)],
            available_krw=ledger.available(pool),
            pending_krw=ledger.pending_krw(pool),
        )
        for pool in POOLS
    ]


def disbursements_by_institution(
    ledger: Ledger, directory: Callable[[str], Institution]
) -> list[InstitutionDisbursement]:
    """Return one row per (institution, pool) that received money, sorted by institution then pool."""
    totals: dict[tuple[str, str], dict[PostingKind, int]] = defaultdict(lambda: defaultdict(int))
    for posting in ledger.postings:
        for leg in posting.legs:
            if leg.account.kind is AccountKind.GRANTEE:
                key = (leg.account.institution_id or "", leg.account.pool_name or "")
                totals[key][posting.kind] += abs(leg.amount_krw)

    rows = []
    for (institution_id, pool), by_kind in sorted(totals.items()):
        disbursed = by_kind[PostingKind.DISBURSEMENT]
        clawed_back = by_kind[PostingKind.CLAWBACK]
        region = str(directory(institution_id).region)
        rows.append(InstitutionDisbursement(institution_id, region, pool, disbursed, clawed_back, disbursed - clawed_back))
    return rows


def disbursements_by_region(rows: Iterable[InstitutionDisbursement]) -> list[RegionDisbursement]:
    """Sum institution rows per (region, pool)."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        pair = totals[(row.region, row.pool)]
        pair[0] += row.disbursed_krw
        pair[1] += row.clawed_back_krw
    return [
        RegionDisbursement(region, pool, disbursed, clawed_back, disbursed - clawed_back)
        for (region, pool), (disbursed, clawed_back) in sorted(totals.items())
    ]


def to_csv(rows: Sequence[object], row_type: type) -> str:
    """Render report rows as CSV with a header named after the dataclass fields; amounts stay whole won."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[item.name for item in fields(row_type)], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))  # type: ignore[call-overload]
    return buffer.getvalue()
