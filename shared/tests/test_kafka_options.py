"""Kafka client options: the producer's choice of partition, which must stay aiokafka's default for every key, and the consumer's fetch settings."""

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from medgov_shared.messaging.kafka import consumer_options, key_partitioner, murmur2
from medgov_shared.settings import ServiceSettings


def test_key_partitioner_agrees_with_the_default() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randint(0, 80)) for _ in range(500)] + [b"daegu.k1." + b"ab" * 32]
    for partitions in (1, 3, 6, 12):
        all_partitions = list(range(partitions))
        # Twice: the second pass reads the remembered hashes.
        for _ in range(2):
            chosen = [key_partitioner(key, all_partitions, all_partitions) for key in keys]
            assert chosen == [DefaultPartitioner()(key, all_partitions, all_partitions) for key in keys]


def test_murmur2_equals_aiokafka() -> None:
    rng = random.Random(11)
    # Every length up to 80 covers each remainder of the 4-byte words, and bytes over 0x7F their sign.
    keys = [rng.randbytes(length) for length in range(81) for _ in range(20)]
    for key in keys:
        assert murmur2(key) == aiokafka_murmur2(key), key


def test_event_without_key_goes_to_an_available_partition() -> None:
    assert all(key_partitioner(None, [0, 1, 2, 3], [2, 3]) in (2, 3) for _ in range(50))


class _FetchSettings(ServiceSettings):
    service_name = "review"


def test_consumer_fetch_options_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    required = {
        "database_url": "postgresql://medgov@127.0.0.1:1/review", "kafka_bootstrap_servers": "127.0.0.1:1",
        "region": "daegu", "jwt_secret": "test-secret",
    }

    defaults = consumer_options(_FetchSettings(**required))
    monkeypatch.setenv("MEDGOV_REVIEW_CONSUMER_FETCH_MIN_BYTES", "1")
    monkeypatch.setenv("MEDGOV_REVIEW_CONSUMER_FETCH_MAX_WAIT_MS", "100")
    changed = consumer_options(_FetchSettings(**required))

    assert (defaults["fetch_min_bytes"], defaults["fetch_max_wait_ms"]) == (16 * 1024, 20)
    assert (changed["fetch_min_bytes"], changed["fetch_max_wait_ms"]) == (1, 100)
