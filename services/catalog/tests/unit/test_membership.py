"""Subject membership events stay under the broker's message limit, even for 200,000 subjects."""

import pytest
from medgov_shared.contracts.envelope import wrap
from medgov_shared.contracts.events.catalog import MAX_SUBJECTS_PER_CHUNK
from medgov_shared.contracts.pseudonym import pseudonymize

from medgov_catalog.domain.membership import distinct_subjects, subject_chunks, subjects_added_events

KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
KEY = b"region-key-for-tests-0123456789ab"


def _pseudonyms(count: int) -> list[str]:
    return [pseudonymize(f"MRN{index:07d}", region="daegu", key=KEY) for index in range(count)]


def test_chunks_cover_every_subject_once():
    subjects = distinct_subjects([f"s{index:06d}" for index in range(12_345)] * 2)

    chunks = subject_chunks(subjects)

    assert [len(chunk) for chunk in chunks] == [5000, 5000, 2345]
    assert tuple(item for chunk in chunks for item in chunk) == subjects


def test_chunk_size_bounded_by_contract():
    with pytest.raises(ValueError, match="between 1 and 5000"):
        subject_chunks(("a",), chunk_size=MAX_SUBJECTS_PER_CHUNK + 1)


def test_no_subjects_no_events():
    assert subjects_added_events("ds-1", 1, "knuh", ()) == []


def test_200k_subjects_fit_kafka_messages():
    subjects = distinct_subjects(_pseudonyms(200_000))

    events = subjects_added_events("ds-knuh-ct-0001", 1, "knuh", subjects)
    sizes = [len(wrap(event, source="medgov/catalog", region="daegu").to_json()) for event in events]

    assert len(events) == -(-len(subjects) // MAX_SUBJECTS_PER_CHUNK)
    assert {event.chunk_count for event in events} == {len(events)}
    assert [event.chunk_index for event in events] == list(range(len(events)))
    assert sum(len(event.subjects) for event in events) == len(subjects)
    assert max(sizes) < KAFKA_DEFAULT_MAX_MESSAGE_BYTES // 2


def test_200k_real_pseudonyms_pass_contract_guard():
    subjects = distinct_subjects(_pseudonyms(200_000))

    events = subjects_added_events("ds-knuh-ct-0001", 1, "knuh", subjects)

    assert sum(len(event.subjects) for event in events) == 200_000
