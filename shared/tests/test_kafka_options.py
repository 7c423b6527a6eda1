"""The producer's choice of partition, which must stay aiokafka's default for every key."""

import random

from aiokafka.partitioner import DefaultPartitioner

from medgov_shared.messaging.kafka import key_partitioner


def test_key_partitioner_agrees_with_the_default() -> None:
    rng = random.Random(7)
    keys = [rng.randbytes(rng.randint(0, 80)) for _ in range(500)] + [b"daegu.k1." + b"ab" * 32]
    for partitions in (1, 3, 6, 12):
        all_partitions = list(range(partitions))
        # Twice: the second pass reads the remembered hashes.
        for _ in range(2):
            chosen = [key_partitioner(key, all_partitions, all_partitions) for key in keys]
            assert chosen == [DefaultPartitioner()(key, all_partitions, all_partitions) for key in keys]


def test_event_without_key_goes_to_an_available_partition() -> None:
    assert all(key_partitioner(None, [0, 1, 2, 3], [2, 3]) in (2, 3) for _ in range(50))
