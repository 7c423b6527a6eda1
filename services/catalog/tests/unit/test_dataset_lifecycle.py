"""Dataset lifecycle: versions are kept, a blocked version replaces nothing, withdrawal is final."""

from datetime import UTC, datetime

import pytest

from medgov_catalog.domain.dataset import DatasetHistory, DatasetRuleViolation, VersionRecord, VersionStatus

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _history(*published: bool) -> DatasetHistory:
    history = DatasetHistory("ds-knuh-ct-0001", "knuh")
    for flag in published:
        history = history.with_version(VersionRecord(history.next_version, flag, T0))
    return history


def test_new_version_supersedes_published_one():
    history = _history(True, True)

    assert history.status_of(1) == VersionStatus.SUPERSEDED
    assert history.status_of(2) == VersionStatus.PUBLISHED
    assert history.current_version.version == 2


def test_blocked_version_keeps_previous_published():
    history = _history(True, False)

    assert history.status_of(1) == VersionStatus.PUBLISHED
    assert history.status_of(2) == VersionStatus.BLOCKED
    assert history.searchable


def test_only_blocked_versions_not_searchable():
    assert not _history(False).searchable


def test_version_numbers_must_follow():
    with pytest.raises(DatasetRuleViolation, match="expects version 2, got 3"):
        _history(True).with_version(VersionRecord(3, True, T0))


def test_withdrawal_keeps_history_and_reason():
    history, event = _history(True, True).withdraw("knuh", "  Source system retired ", T0)

    assert history.withdrawal.reason == "Source system retired"
    assert [item.version for item in history.versions] == [1, 2]
    assert history.status_of(2) == VersionStatus.WITHDRAWN
    assert not history.searchable
    assert event.reason == "Source system retired"
    assert event.withdrawn_at == T0


@pytest.mark.parametrize(
    ("institution", "reason", "message"),
    [("yumc", "retired", "held by 'knuh'"), ("knuh", "   ", "needs a reason")],
)
def test_withdrawal_rules(institution, reason, message):
    with pytest.raises(DatasetRuleViolation, match=message):
        _history(True).withdraw(institution, reason, T0)


def test_withdrawn_dataset_cannot_be_withdrawn_again_or_registered():
    history, _ = _history(True).withdraw("knuh", "retired", T0)

    with pytest.raises(DatasetRuleViolation, match="already withdrawn"):
        history.withdraw("knuh", "again", T0)
    with pytest.raises(DatasetRuleViolation, match="register the data under a new dataset id"):
        history.check_can_register("knuh")


def test_other_institution_cannot_register_version():
    with pytest.raises(DatasetRuleViolation, match="'yumc' cannot register a new version"):
        _history(True).check_can_register("yumc")
