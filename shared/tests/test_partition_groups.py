"""How a poll's partition batches are split into transactions."""

from types import SimpleNamespace

from aiokafka import TopicPartition

from medgov_shared.messaging.consumer import group_partitions, split_urgent


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


def parsed_types(*types: str | None) -> list[tuple]:
    """Parse results as the consumer makes them; None stands for a record that is not a CloudEvent."""
    return [(None if kind is None else SimpleNamespace(type=kind), None, None) for kind in types]


def split(polled: dict[TopicPartition, list[str | None]]):
    batches = {partition: list(range(len(types))) for partition, types in polled.items()}
    parsed = {partition: parsed_types(*types) for partition, types in polled.items()}
    return split_urgent(batches, parsed, frozenset({"RevokeConsent"}))


P0, P1, P2 = (TopicPartition("medgov.inbound.dcmc.v1", partition) for partition in range(3))


def test_urgent_part_ends_at_last_urgent():
    urgent, rest = split({
        P0: ["RecordConsent", "RevokeConsent", "RecordConsent", "RevokeConsent", "RecordConsent"],
        P1: ["RecordConsent", "RecordConsent"],
        P2: ["RevokeConsent", None],
    })
    assert urgent.batches == {P0: [0, 1, 2, 3], P2: [0]}
    assert rest.batches == {P0: [4], P1: [0, 1], P2: [1]}
    assert [envelope.type for envelope, _, _ in urgent.parsed[P0]] == ["RecordConsent", "RevokeConsent"] * 2
    assert rest.parsed[P2] == [(None, None, None)]


def test_poll_without_urgent_events_is_one_part():
    urgent, rest = split({P0: ["RecordConsent", None], P1: ["RecordConsent"]})
    assert urgent.batches == {}
    assert rest.batches == {P0: [0, 1], P1: [0]}


def test_poll_of_urgent_events_only_leaves_no_rest():
    urgent, rest = split({P0: ["RevokeConsent", "RevokeConsent"], P1: ["RecordConsent", "RevokeConsent"]})
    assert urgent.batches == {P0: [0, 1], P1: [0, 1]}
    assert rest.batches == {}


def test_no_urgent_types_means_no_urgent_part():
    batches = {P0: [0]}
    urgent, rest = split_urgent(batches, {P0: parsed_types("RevokeConsent")}, frozenset())
    assert urgent.batches == {}
    assert rest.batches == batches
