import csv
import io
from datetime import UTC, datetime, timedelta

from medgov_grants.domain.fund import Fund
from medgov_grants.domain.reports import (
    InstitutionDisbursement,
    PoolBalance,
    RegionDisbursement,
    disbursements_by_institution,
    disbursements_by_region,
    pool_balances,
    to_csv,
)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _funded_scenario(fund, build, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    fund.apply(build.published_sample("ds-knuh-bulk", sample_datasets["synthea-bulk-export"]), at=T0)
    fund.apply(build.published_sample("ds-knuh-dicom", sample_datasets["dicom-fileset"], completeness_score=73), at=T0)
    fund.apply(build.published_sample("ds-cnuh-bulk", sample_datasets["synthea-bulk-export"], institution_id="cnuh"), at=T0)
    fund.apply(build.withdrawn("ds-knuh-dicom", at=T0 + timedelta(days=3)), at=T0 + timedelta(days=3))
    for number in range(10):
        fund.apply(build.access_granted(f"app-{number}", holder="jnuh", grantee="vendor-gwangai"), at=T0)


def test_pool_balances_add_up(fund, build, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    _funded_scenario(fund, build, sample_datasets)

    rows = {row.pool: row for row in pool_balances(fund.ledger)}

    assert rows["cataloging"] == PoolBalance("cataloging", 4_800_000_000, 25_318_000, 4_102_000, 4_778_784_000, 0)
    assert rows["milestones"].disbursed_krw == 50_000_000
    for row in rows.values():
        assert row.allocated_krw - row.disbursed_krw + row.clawed_back_krw == row.available_krw


def test_disbursements_by_institution_and_region(fund, build, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    _funded_scenario(fund, build, sample_datasets)

    rows = disbursements_by_institution(fund.ledger, fund.directory)
    regions = disbursements_by_region(rows)

    assert rows == [
        InstitutionDisbursement("cnuh", "daejeon", "cataloging", 10_608_000, 0, 10_608_000),
        InstitutionDisbursement("jnuh", "gwangju", "milestones", 50_000_000, 0, 50_000_000),
        InstitutionDisbursement("knuh", "daegu", "cataloging", 14_710_000, 4_102_000, 10_608_000),
    ]
    assert regions == [
        RegionDisbursement("daegu", "cataloging", 14_710_000, 4_102_000, 10_608_000),
        RegionDisbursement("daejeon", "cataloging", 10_608_000, 0, 10_608_000),
        RegionDisbursement("gwangju", "milestones", 50_000_000, 0, 50_000_000),
    ]


def test_csv_export_round_trips(fund, build, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    _funded_scenario(fund, build, sample_datasets)
    rows = disbursements_by_institution(fund.ledger, fund.directory)

    text = to_csv(rows, InstitutionDisbursement)
    parsed = list(csv.DictReader(io.StringIO(text)))

    assert text.splitlines()[0] == "institution_id,region,pool,disbursed_krw,clawed_back_krw,net_krw"
    assert [row["institution_id"] for row in parsed] == ["cnuh", "jnuh", "knuh"]
    assert parsed[2]["net_krw"] == "10608000"


def test_empty_ledger_reports_zero_pools(policy) -> None:  # type: ignore[no-untyped-def]
    rows = pool_balances(Fund(policy).ledger)

    assert [row.available_krw for row in rows] == [0, 0, 0]
    assert to_csv([], PoolBalance) == "pool,allocated_krw,disbursed_krw,clawed_back_krw,available_krw,pending_krw\n"
