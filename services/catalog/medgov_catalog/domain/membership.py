"""Subject membership of a dataset version, published in chunks that fit one Kafka message.

A RegisterDataset command lists the pseudonyms of the dataset's subjects. The
catalog stores them and announces them as DatasetSubjectsAdded events of at
most MAX_SUBJECTS_PER_CHUNK pseudonyms each (about 400 KB of JSON), so that a
dataset of any size stays under the broker's 1 MB message limit.
"""

from collections.abc import Iterable

from medgov_shared.contracts.events.catalog import MAX_SUBJECTS_PER_CHUNK, DatasetSubjectsAdded


def distinct_subjects(subjects: Iterable[str]) -> tuple[str, ...]:
    """Return the pseudonyms without duplicates, sorted, so that chunks are the same on every replay."""
    return tuple(sorted(set(subjects)))


def subject_chunks(subjects: tuple[str, ...], chunk_size: int = MAX_SUBJECTS_PER_CHUNK) -> list[tuple[str, ...]]:
    if not 1 <= chunk_size <= MAX_SUBJECTS_PER_CHUNK:
        raise ValueError(f"chunk_size must be between 1 and {MAX_SUBJECTS_PER_CHUNK}, got {chunk_size}")
    return [subjects[start : start + chunk_size] for start in range(0, len(subjects), chunk_size)]


def subjects_added_events(
    dataset_id: str, version: int, institution_id: str, subjects: tuple[str, ...]
) -> list[DatasetSubjectsAdded]:
    """Build the DatasetSubjectsAdded events of one version; none if it has no subjects."""
    chunks = subject_chunks(subjects)
    return [
        DatasetSubjectsAdded(
            dataset_id=dataset_id,
            version=version,
            institution_id=institution_id,
            chunk_index=index,
            chunk_count=len(chunks),
            subjects=chunk,
        )
        for index, chunk in enumerate(chunks)
    ]
