"""How a poll's partition batches are split into transactions."""

from aiokafka import TopicPartition

from medgov_shared.messaging.consumer import group_partitions


def poll(*sizes: int) -> dict[TopicPartition, list[int]]:
    return {TopicPartition("medgov.inbound.dcmc.v1", partition): list(range(size)) for partition, size in enumerate(sizes)}


def sizes_of(groups) -> list[list[int]]:
    return [[len(records) for _, records in group] for group in groups]


def test_small_poll_takes_one_transaction():
    assert sizes_of(group_partitions(poll(3, 2, 4, 1, 2, 3), max_groups=8)) == [[4, 3, 3, 2, 2, 1]]


def test_full_poll_split_evenly():
    groups = group_partitions(poll(90, 80, 85, 80, 85, 80), max_groups=8)
    assert len(groups) == 5
    assert sorted(sum(group) for group in sizes_of(groups)) == [80, 85, 85, 90, 80 + 80]
    assert len(group_partitions(poll(90, 80, 85, 80, 85, 80), max_groups=2)) == 2


def test_every_record_lands_in_exactly_one_group():
    batches = poll(250, 3, 120, 0, 77)
    groups = group_partitions(batches, max_groups=3)
    seen = [partition for group in groups for partition, _ in group]
    assert sorted(seen, key=lambda partition: partition.partition) == list(batches)
    assert len(groups) == 3


def test_one_partition_is_one_group_however_large():
    assert sizes_of(group_partitions(poll(500), max_groups=8)) == [[500]]
