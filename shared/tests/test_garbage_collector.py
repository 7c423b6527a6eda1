"""Service start-up tunes Python's garbage collector from the gc_threshold setting."""

import gc
from collections.abc import Iterator

import pytest

from medgov_shared.service import tune_garbage_collector

from .toy import ToySettings


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_threshold_raised_and_start_frozen(restored_collector: None) -> None:
    _, older, oldest = gc.get_threshold()
    made_at_start = [[index] for index in range(100)]

    tune_garbage_collector(25_000)

    assert gc.get_threshold() == (25_000, older, oldest)
    assert gc.get_freeze_count() >= len(made_at_start)
    assert not any(item is made_at_start for item in gc.get_objects())  # frozen objects belong to no generation


def test_zero_threshold_changes_nothing(restored_collector: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()

    tune_garbage_collector(0)

    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_threshold_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGOV_CONSENT_REGION", "daegu")
    monkeypatch.setenv("MEDGOV_CONSENT_DATABASE_URL", "postgresql://medgov@127.0.0.1:1/toy")
    monkeypatch.setenv("MEDGOV_CONSENT_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("MEDGOV_CONSENT_JWT_SECRET", "test-only-secret")
    monkeypatch.delenv("MEDGOV_CONSENT_GC_THRESHOLD", raising=False)
    assert ToySettings().gc_threshold == 50_000

    monkeypatch.setenv("MEDGOV_CONSENT_GC_THRESHOLD", "0")
    assert ToySettings().gc_threshold == 0

    monkeypatch.setenv("MEDGOV_CONSENT_GC_THRESHOLD", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        ToySettings()
