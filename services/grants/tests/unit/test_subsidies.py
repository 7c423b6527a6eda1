from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from medgov_grants.domain.policy import GrantsPolicy, default_policy
from medgov_grants.domain.subsidies import HospitalSubsidies

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _capped(cap_krw: int) -> GrantsPolicy:
    data = default_policy().model_dump()
    data["subsidy"]["per_hospital_cap_krw"] = cap_krw
    return GrantsPolicy.from_mapping(data)


def test_award_follows_formula(build, policy, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    sample = sample_datasets["synthea-bulk-export"]

    changes = book.publish(build.published_sample("ds-bulk", sample), policy.subsidy)

    assert [(c.award_id, c.amount_krw, c.record_count) for c in changes] == [("sub-ds-bulk-1", 10_608_000, 374)]


def test_recomputing_gives_same_amount(build, policy, sample_datasets) -> None:  # type: ignore[no-untyped-def]
    event = build.published_sample("ds-dicom", sample_datasets["dicom-fileset"], completeness_score=73)
    first, second = HospitalSubsidies("knuh"), HospitalSubsidies("knuh")

    assert first.publish(event, policy.subsidy) == second.publish(event, policy.subsidy)
    assert first.awarded_krw == 4_102_000


def test_repeated_publication_awards_nothing(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    event = build.published("ds-1")
    book.publish(event, policy.subsidy)

    assert book.publish(event, policy.subsidy) == []
    assert book.awarded_krw == 10_608_000


def test_better_version_awards_difference(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1", version=1, completeness_score=60), policy.subsidy)

    changes = book.publish(build.published("ds-1", version=2, completeness_score=90), policy.subsidy)

    assert [(c.award_id, c.completeness_score) for c in changes] == [("sub-ds-1-2", 90)]
    assert book.awarded_krw == policy.subsidy.amount_for(90, 374)


def test_worse_version_keeps_subsidy(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1", version=1, completeness_score=90), policy.subsidy)

    changes = book.publish(build.published("ds-1", version=2, completeness_score=55), policy.subsidy)

    assert changes == []
    assert book.awarded_krw == policy.subsidy.amount_for(90, 374)


def test_cap_limits_hospital_total(build) -> None:  # type: ignore[no-untyped-def]
    policy = _capped(15_000_000)
    book = HospitalSubsidies("knuh")

    first = book.publish(build.published("ds-1"), policy.subsidy)
    second = book.publish(build.published("ds-2", at=T0 + timedelta(hours=1)), policy.subsidy)
    third = book.publish(build.published("ds-3", at=T0 + timedelta(hours=2)), policy.subsidy)

    assert [c.amount_krw for c in first] == [10_608_000]
    assert [c.amount_krw for c in second] == [4_392_000]
    assert third == []
    assert book.awarded_krw == 15_000_000


def test_withdrawal_within_window_claws_back(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1"), policy.subsidy)
    inside = T0 + policy.subsidy.clawback_window

    changes = book.withdraw(build.withdrawn("ds-1", at=inside), policy.subsidy)

    assert [(c.award_id, c.amount_krw, c.is_clawback) for c in changes] == [("sub-ds-1-clawback", -10_608_000, True)]
    assert book.awarded_krw == 0


def test_withdrawal_after_window_keeps_subsidy(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1"), policy.subsidy)
    outside = T0 + policy.subsidy.clawback_window + timedelta(seconds=1)

    changes = book.withdraw(build.withdrawn("ds-1", at=outside), policy.subsidy)

    assert changes == []
    assert book.awarded_krw == 10_608_000


def test_window_restarts_with_new_version(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1", version=1), policy.subsidy)
    book.publish(build.published("ds-1", version=2, at=T0 + timedelta(days=80)), policy.subsidy)

    changes = book.withdraw(build.withdrawn("ds-1", at=T0 + timedelta(days=100)), policy.subsidy)

    assert [c.amount_krw for c in changes] == [-10_608_000]


def test_clawback_frees_headroom_for_capped_dataset(build) -> None:  # type: ignore[no-untyped-def]
    policy = _capped(15_000_000)
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1"), policy.subsidy)
    book.publish(build.published("ds-2", at=T0 + timedelta(hours=1)), policy.subsidy)

    changes = book.withdraw(build.withdrawn("ds-1", at=T0 + timedelta(days=1)), policy.subsidy)

    assert [(c.dataset_id, c.amount_krw) for c in changes] == [("ds-1", -10_608_000), ("ds-2", 6_216_000)]
    assert book.datasets["ds-2"].awarded_krw == 10_608_000


def test_publication_after_withdrawal_earns_nothing(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.withdraw(build.withdrawn("ds-1", at=T0), policy.subsidy)

    assert book.publish(build.published("ds-1", at=T0 + timedelta(days=1)), policy.subsidy) == []
    assert book.awarded_krw == 0


def test_repeated_withdrawal_changes_nothing(build, policy) -> None:  # type: ignore[no-untyped-def]
    book = HospitalSubsidies("knuh")
    book.publish(build.published("ds-1"), policy.subsidy)
    book.withdraw(build.withdrawn("ds-1", at=T0 + timedelta(days=1)), policy.subsidy)

    assert book.withdraw(build.withdrawn("ds-1", at=T0 + timedelta(days=2)), policy.subsidy) == []


def test_long_dataset_id_gives_bounded_award_id(build, policy) -> None:  # type: ignore[no-untyped-def]
    dataset_id = "ds-" + "x" * 125
    book = HospitalSubsidies("knuh")

    changes = book.publish(build.published(dataset_id), policy.subsidy)

    assert len(changes[0].award_id) == 128
    assert changes[0].award_id != book.publish(build.published(dataset_id, version=2, completeness_score=100), policy.subsidy)[0].award_id


# Each step is (dataset index, action, version or day offset). Events of one
# dataset keep their relative order (they share a Kafka partition); events of
# different datasets interleave freely.
_dataset_story = st.lists(
    st.tuples(st.sampled_from(["publish", "withdraw"]), st.integers(1, 3), st.integers(50, 100), st.integers(0, 200)),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    stories=st.lists(_dataset_story, min_size=1, max_size=5),
    cap=st.integers(0, 60_000_000),
    interleaving=st.randoms(use_true_random=False),
)
def test_hospital_total_is_capped_sum(build, stories, cap, interleaving) -> None:  # type: ignore[no-untyped-def]
    policy = _capped(cap)
    queues = [
        [_story_event(build, f"ds-{index}", step) for step in story]
        for index, story in enumerate(stories)
    ]
    book = HospitalSubsidies("knuh")

    while any(queues):
        queue = interleaving.choice([queue for queue in queues if queue])
        _apply(book, queue.pop(0), policy)

        kept = [item for item in book.datasets.values() if not item.clawed_back]
        assert book.awarded_krw == sum(item.awarded_krw for item in book.datasets.values())
        assert book.awarded_krw == min(cap, sum(item.target_krw for item in kept))
        assert all(0 <= item.awarded_krw <= item.target_krw for item in kept)
        assert all(item.awarded_krw == 0 for item in book.datasets.values() if item.clawed_back)


def _story_event(build, dataset_id, step):  # type: ignore[no-untyped-def]
    action, version, score, day = step
    at = T0 + timedelta(days=day)
    if action == "publish":
        return build.published(dataset_id, version=version, completeness_score=score, at=at)
    return build.withdrawn(dataset_id, at=at)


def _apply(book, event, policy):  # type: ignore[no-untyped-def]
    if event.event_type == "DatasetPublished":
        return book.publish(event, policy.subsidy)
    return book.withdraw(event, policy.subsidy)
