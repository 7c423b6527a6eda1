"""A small chaos run in the suite: services killed and infrastructure restarted under load, nothing lost or doubled.

The run gets its own broker and database from the local launcher, on free
ports with a state directory made for the session under var/, so parallel
test sessions never share them. The services read every hospital's inbound
topic, so on the shared broker other test runs' traffic on those topics
would decide how long this test takes. Where the launcher cannot start the
pair (no Java or PostgreSQL binaries), the session's shared pair is used
with service kills only, because restarting it would break other test runs.
"""

import contextlib
import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from medgov_shared.contracts.events.inbound import RecordConsent, RegisterDataset, RevokeConsent, SubmitApplication
from medgov_shared.testing.infrastructure import REPO_ROOT, Infrastructure
from medgov_shared.testing.services import free_port_block

from medgov_cli.chaos import ChaosConfig, run
from medgov_cli.chaos.faults import LAST_FAULT_AT, FaultKind, plan_faults
from medgov_cli.chaos.infrastructure import PRIVATE_PORTS, ChaosInfrastructure, ChaosSetupError, private_pair
from medgov_cli.chaos.workload import Workload
from medgov_cli.publisher import HospitalPublisher
from medgov_cli.settings import PublisherSettings

COMMAND_TYPES = {RegisterDataset.event_type, RecordConsent.event_type, RevokeConsent.event_type,
                 SubmitApplication.event_type}
EVENTS = 1500


@pytest.fixture
def chaos_infrastructure(infra: Infrastructure) -> Iterator[ChaosInfrastructure]:
    (REPO_ROOT / "var").mkdir(exist_ok=True)
    var_dir = Path(tempfile.mkdtemp(prefix="chaos-test-", dir=REPO_ROOT / "var"))
    # Below the kernel's ephemeral range (32768 and up), where a client's outgoing
    # connection could take a port between this choice and the broker's bind.
    first = free_port_block(len(PRIVATE_PORTS))
    ports = {variable: str(first + index) for index, variable in enumerate(PRIVATE_PORTS)}
    with contextlib.ExitStack() as stack:
        try:
            infrastructure = stack.enter_context(private_pair(var_dir, ports, remove_state=True))
        except ChaosSetupError:
            infrastructure = ChaosInfrastructure(infra.kafka_bootstrap_servers, infra.database_url)
        yield infrastructure


def build_workload(sample_data: Path, seed: int) -> Workload:
    settings = PublisherSettings(kafka_bootstrap_servers="127.0.0.1:1", region="daegu", pseudonym_key="ab" * 32)
    publishers = {source: HospitalPublisher(settings, source) for source in Workload.sources()}
    return Workload(publishers, sample_data, seed)


def test_workload_numbers_each_source_without_gaps(sample_data: Path) -> None:
    workload = build_workload(sample_data, seed=3)
    sequences: dict[str, list[int]] = {}

    for command in workload.seed_commands() + [workload.next_command() for _ in range(600)]:
        sequences.setdefault(command.institution, []).append(command.payload.sequence)
        workload.acknowledge(command)

    for source, numbers in sequences.items():
        assert numbers == list(range(1, len(numbers) + 1)), source


def test_workload_mixes_all_four_commands(sample_data: Path) -> None:
    workload = build_workload(sample_data, seed=3)
    workload.seed_commands()

    commands = []
    for _ in range(600):
        command = workload.next_command()
        workload.acknowledge(command)
        commands.append(command)
    types = Counter(command.event_type for command in commands)

    assert set(types) == COMMAND_TYPES
    consents = [(c.payload.subject, c.payload.consent_id) for c in commands if c.event_type == RecordConsent.event_type]
    assert len(consents) == len(set(consents)), "a (subject, consent id) pair was recorded twice"
    revoked = [(c.payload.subject, c.payload.consent_id) for c in commands if c.event_type == RevokeConsent.event_type]
    assert len(revoked) == len(set(revoked)), "a consent was revoked twice"
    assert set(revoked) <= set(consents), "a revocation names a consent that was never recorded"


def test_workload_uses_several_consent_examples_and_patients(sample_data: Path) -> None:
    workload = build_workload(sample_data, seed=3)

    consents = [workload.next_command() for _ in range(300)]
    recorded = [c.payload for c in consents if c.event_type == RecordConsent.event_type]

    assert len(workload.consent_samples) >= 3
    assert len({payload.consent_id.split("-", 1)[1] for payload in recorded}) == len(workload.consent_samples)
    assert len({payload.subject for payload in recorded}) > 10


def test_fault_plan_places_every_fault_inside_the_run() -> None:
    faults = plan_faults(random.Random(5), events=1000, kills=20, kafka_restarts=2, postgres_restarts=1)

    kinds = Counter(fault.kind for fault in faults)
    assert kinds == {FaultKind.KILL: 20, FaultKind.KAFKA_RESTART: 2, FaultKind.POSTGRES_RESTART: 1}
    assert [fault.at_applied for fault in faults] == sorted(fault.at_applied for fault in faults)
    assert all(50 <= fault.at_applied <= 1000 * LAST_FAULT_AT for fault in faults)
    assert all(fault.service for fault in faults if fault.kind is FaultKind.KILL)


@pytest.mark.integration
@pytest.mark.slow
async def test_chaos_run_loses_and_doubles_nothing(
    chaos_infrastructure: ChaosInfrastructure, sample_data: Path, tmp_path: Path
) -> None:
    restarts = 1 if chaos_infrastructure.restartable else 0
    config = ChaosConfig(
        events=EVENTS, kills=3, kafka_restarts=restarts, postgres_restarts=restarts, seed=random.randrange(2**31),
        sample_data=sample_data, log_dir=tmp_path / "logs", max_in_flight=800,
        settle_timeout_s=90, run_timeout_s=180, show_progress=False,
    )

    report = await run(config, chaos_infrastructure)

    failed = [check for check in report.verification.checks if not check.passed]
    assert report.aborted is None
    assert (report.kills, report.kafka_restarts, report.postgres_restarts) == (3, restarts, restarts)
    assert report.accepted == EVENTS
    assert {check.event for check in report.verification.checks} >= COMMAND_TYPES
    assert failed == [], f"checks failed with seed {config.seed} (service logs in {tmp_path / 'logs'})"
    assert report.verification.lost == 0
    assert report.verification.duplicated == 0
    assert report.verification.undrained_total == 0
    assert report.summary_line().endswith("lost=0 duplicated=0")
