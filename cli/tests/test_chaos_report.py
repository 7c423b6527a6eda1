"""The chaos run's checks table, printed where no terminal sets the width."""

from types import SimpleNamespace

from medgov_cli.chaos.driver import ChaosConfig, ChaosReport, print_report
from medgov_cli.output import report_console


def test_table_whole_without_terminal(capsys):
    # Names as long as the longest a run prints, about 30 characters in each column.
    check = SimpleNamespace(store="consent revocations (applied or parked)", event="events from medgov.catalog.v1",
                            expected=2250341, found=2250341, missing_count=0, doubled_count=0, passed=True,
                            missing=[], doubled=[])
    report = SimpleNamespace(
        seed=889360851, duration_s=425.3, faults_done=[], phase_ends_s={},
        verification=SimpleNamespace(checks=[check], dead_letter_reasons={}),
        unexpected_exits=[], liveness_restarts=[], start_failures=[], unconfirmed=0, sequence_gaps=[], resends=0,
    )
    console = report_console()  # pytest captures standard error, so it is no terminal here

    print_report(report, console)

    text = capsys.readouterr().err
    assert "…" not in text
    assert "2250341" in text
    assert "consent revocations (applied or parked)" in text


def test_summary_line_starts_with_outcome():
    config = ChaosConfig(events=10, kills=0)
    passed = ChaosReport(config=config, seed=1)
    aborted = ChaosReport(config=config, seed=1, aborted="review exited during start 8 times in a row")

    assert passed.summary_line().startswith("result=passed events=10 ")
    assert aborted.summary_line().startswith("result=aborted events=10 ")
    assert aborted.summary_line().endswith("lost=0 duplicated=0")
