"""The regional scenario: hospitals publish, vendors apply, boards decide, patients revoke, the fund pays.

`run_demo` starts the four services (fresh databases and consumer groups for
each run), plays the scenario on the real sample data and writes a JSON
summary. With keep_running it leaves the services and the governance
console up until Ctrl-C.
"""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.table import Table

from medgov_cli.console.app import create_console
from medgov_cli.demo import plan
from medgov_cli.demo.actors import Actors, ScenarioError
from medgov_cli.demo.events import (
    SERVICE_TOPIC_NAMES,
    EventTail,
    end_offsets,
    ensure_all_topics,
)
from medgov_cli.demo.progress import StepProgress, step_progress
from medgov_cli.demo.stack import DEFAULT_CONSOLE_PORT, MAX_RESTARTS, SERVICES, Stack, local_state_dir, service_ports
from medgov_cli.publisher import HospitalPublisher
from medgov_cli.settings import KafkaClientSettings, PublisherSettings
from medgov_cli.subjects import local_patient_ids
from medgov_shared.contracts.institutions import get_institution
from medgov_shared.messaging.topics import start_groups_at_end

console = Console()

# The review clock runs this many times faster than real time, so the 20
# business-day window (about 28 calendar days) passes in about 85 seconds.
CLOCK_ACCELERATION = 28_800
STEP_TIMEOUT_S = 120.0


@dataclass
class Run:
    stack: Stack
    actors: Actors
    tail: EventTail
    kafka: dict
    region_keys: dict[str, str]
    progress: StepProgress
    started_at: float = field(default_factory=time.monotonic)
    subjects: dict[str, list[str]] = field(default_factory=dict)  # dataset id -> pseudonyms
    local_patients: dict[str, list[str]] = field(default_factory=dict)  # dataset id -> local ids
    outcomes: dict[str, Any] = field(default_factory=dict)

    def publisher(self, institution: str) -> HospitalPublisher:
        region = get_institution(institution).region.value
        settings = PublisherSettings(**self.kafka_settings(), region=region, pseudonym_key=self.region_keys[region])
        return HospitalPublisher(settings, institution)

    def kafka_settings(self) -> dict:
        return {"kafka_bootstrap_servers": self.kafka["bootstrap_servers"]}


def sample_data_folder(root: Path) -> Path:
    folder = Path(os.environ.get("MEDGOV_SAMPLE_DATA", root.parent / "shared" / "data"))
    if not (folder / "PROVENANCE.md").exists():
        raise SystemExit(f"sample data not found at {folder}; set MEDGOV_SAMPLE_DATA to the shared data folder")
    return folder


def ports_in_use(console_port: int = DEFAULT_CONSOLE_PORT) -> list[int]:
    """Return the console and service ports that something on 127.0.0.1 already listens on."""
    taken = []
    for port in (console_port, *service_ports(console_port).values()):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


def run_demo(*, keep_running: bool, summary_path: Path | None, console_port: int = DEFAULT_CONSOLE_PORT) -> int:
    # Checked before anything is created or dropped: a second scenario run
    # beside a running one must leave the running one's databases alone.
    busy_ports = ports_in_use(console_port)
    if busy_ports:
        console.print(
            f"[red]ports {', '.join(map(str, busy_ports))} on 127.0.0.1 are in use, probably by a scenario that is "
            f"still running (make run); stop it with Ctrl-C, or use its URLs, or give this run other ports "
            f"with --port or MEDGOV_DEMO_PORT[/red]"
        )
        return 1
    try:
        summary_path = summary_path or local_state_dir(Path.cwd()) / "demo-summary.json"
        return asyncio.run(_run(keep_running=keep_running, summary_path=summary_path, console_port=console_port))
    except KeyboardInterrupt:
        # asyncio.run cancelled the scenario on Ctrl-C; its cleanup stopped the services.
        console.print("interrupted: services stopped; run `make run` again to start over")
        return 130
    except (ScenarioError, TimeoutError) as error:
        console.print(f"[red]scenario failed: {error}[/red]")
        console.print(f"service logs: {local_state_dir(Path.cwd()) / 'log'}/review.log, catalog.log, consent.log, grants.log")
        return 1


def _staging_copy(sample_data: Path, staging: Path) -> Path:
    """Copy the sample files into the catalog's staging folder for this checkout and return it.

    The catalog writes hospitals' uploads into its staging root, and the
    sample folder beside the checkout is shared read-only material, so the
    demo's catalog works on a copy in the local state folder (2.6 MB).
    """
    shutil.copytree(sample_data, staging, dirs_exist_ok=True)
    return staging


async def _run(*, keep_running: bool, summary_path: Path, console_port: int) -> int:
    root = Path.cwd()
    sample_data = sample_data_folder(root)
    kafka = KafkaClientSettings()
    options = kafka.client_options()
    stack = Stack(root=root, sample_data=sample_data, console_port=console_port)
    staging = _staging_copy(sample_data, local_state_dir(root) / "demo" / "staging")
    stack.extra_env = {
        "catalog": {"MEDGOV_CATALOG_STAGING_ROOT": str(staging), "MEDGOV_CATALOG_STAGING_PER_INSTITUTION": "false"},
        "review": {"MEDGOV_REVIEW_CLOCK_ACCELERATION": str(CLOCK_ACCELERATION)},
    }

    console.print(f"[bold]medgov regional scenario[/bold] run {stack.run_id} on {sample_data}")
    dropped = await stack.drop_earlier_databases()
    if dropped:
        console.print(f"removed {len(dropped)} databases of earlier scenario runs (the previous run's are kept)")
    await ensure_all_topics(options)
    start = await end_offsets(options, list(SERVICE_TOPIC_NAMES))
    await start_groups_at_end(options, [f"medgov-{service}-demo-{stack.run_id}" for service in SERVICES])

    with _status("starting review, catalog, consent and grants ..."):
        stack.start()
        try:
            await asyncio.to_thread(stack.wait_ready)
        except BaseException:  # also Ctrl-C while waiting: the services must not outlive the scenario
            stack.stop()
            raise
    supervisor = asyncio.create_task(stack.supervise(_notify))
    console_server = _serve_console(stack)
    console_task = asyncio.create_task(console_server.serve())
    actors = Actors({service: stack.url(service) for service in SERVICES}, stack.jwt_secret)
    region_keys = {region: os.urandom(32).hex() for region in plan.BOARD_PREFIX}
    try:
        async with EventTail(options, start) as tail:
            progress = step_progress(console)
            run = Run(stack, actors, tail, {"bootstrap_servers": kafka.kafka_bootstrap_servers}, region_keys, progress)
            with progress:
                await _play(run)
            summary = await _summary(run)
        summary_path.parent.mkdir(parents=True, exist_ok=True)
        keys_folder = _write_region_keys(summary_path.parent / "demo-keys", region_keys)
        summary_path.write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
        _print_summary(summary, summary_path)
        console.print(f"pseudonym keys of this run, for `medgov publish` on the demo's patients: "
                      f"set -a; . {keys_folder}/<region>.env; set +a")
        if keep_running:
            await _wait_for_interrupt(stack)
    finally:
        stack.stopping = True
        supervisor.cancel()
        await actors.close()
        console_server.should_exit = True
        await console_task
        stack.stop()
    if keep_running:
        console.print("서비스 종료 / services stopped")
    return 0


def _status(message: str) -> contextlib.AbstractContextManager:
    """Return a spinner in a terminal; elsewhere print the message once, since a spinner cannot redraw there."""
    if console.is_terminal:
        return console.status(message)
    console.print(message, markup=False, highlight=False)
    return contextlib.nullcontext()


def _notify(line: str) -> None:
    console.print(f"supervisor: {line}", markup=False, highlight=False, soft_wrap=True)


class _ConsoleServer(uvicorn.Server):
    """The console's server, leaving Ctrl-C to the scenario.

    uvicorn would take SIGINT for itself and stop only the console, while
    the scenario went on with nothing answering at the console's address.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _serve_console(stack: Stack) -> uvicorn.Server:
    app = create_console({service: stack.url(service) for service in SERVICES}, stack.jwt_secret,
                         supervision=stack.supervision)
    config = uvicorn.Config(app, host="127.0.0.1", port=stack.console_port, log_level="warning")
    return _ConsoleServer(config)


async def _wait_for_interrupt(stack: Stack) -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    console.print("\n[bold]Running until Ctrl-C[/bold]")
    console.print(f"  거버넌스 콘솔 / governance console: http://127.0.0.1:{stack.console_port}/")
    console.print(f"  환자 대시보드 / patient dashboard: {stack.url('consent')}/dashboard")
    console.print(f"  공개 통계 / public opt-out rates: {stack.url('consent')}/transparency")
    for service in SERVICES:
        console.print(f"  {service} API: {stack.url(service)}/openapi.json")
    console.print(f"  서비스 상태 / service status: http://127.0.0.1:{stack.console_port}/api/services "
                  f"(a service that dies is restarted up to {MAX_RESTARTS} times)")
    console.print(f"  development token signing key (JWT_SECRET): {stack.jwt_secret}")
    console.print(f"  심사 시계 / review clock: {CLOCK_ACCELERATION:,}x real time, one day every "
                  f"{86_400 / CLOCK_ACCELERATION:.0f} s, so remaining days in the console keep falling")
    await stopped.wait()
    console.print("서비스 종료 중 / stopping the services (each finishes its current batch first, up to 20 s) ...")


# -- the scenario ------------------------------------------------------------------


async def _play(run: Run) -> None:
    await _fund_allocated(run)
    await _register_datasets(run)
    await _record_consents(run)
    breach = await _submit_breaching_application(run)
    await _decide_applications(run)
    await _revoke_and_acknowledge(run)
    await _tool_grant(run)
    await _await_breach(run, breach)


async def _fund_allocated(run: Run) -> None:
    task = run.progress.add_task("기금 배정 / fund allocated", total=1)
    # The grants service allocates the configured fund when it first starts.
    # Every grants instance publishes the same FundAllocated (same event id),
    # so this run's allocation is confirmed through its own grants service.
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not sum(pool["allocated_krw"] for pool in await _pools(run)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {STEP_TIMEOUT_S:.0f}s waiting for the fund allocation")
        await asyncio.sleep(0.5)

    def allocated(tail: EventTail) -> list:
        return [event for event in tail.events if event.type == "FundAllocated"]

    await run.tail.wait_for(allocated, timeout_s=STEP_TIMEOUT_S, what="FundAllocated")
    run.tail.own(allocated(run.tail)[0])
    run.progress.advance(task)


async def _pools(run: Run) -> list[dict]:
    return await run.actors.call("GET", "grants", "/reports/pools", token=run.actors.operator())


async def _register_datasets(run: Run) -> None:
    task = run.progress.add_task("데이터셋 등록 / datasets registered", total=len(plan.DATASETS))
    dataset_ids = {dataset.dataset_id for dataset in plan.DATASETS}
    run.tail.scope.entity_ids |= dataset_ids
    for dataset in plan.DATASETS:
        local_ids: set[str] = set()
        for name in dataset.files:
            local_ids |= local_patient_ids(run.stack.sample_data / name)
        async with run.publisher(dataset.institution) as publisher:
            subjects = sorted(publisher.pseudonymize(local) for local in local_ids)
            command = publisher.command("RegisterDataset", {
                "dataset_id": dataset.dataset_id,
                "description": {
                    "title": dataset.title, "description": dataset.description, "publisher": dataset.institution,
                    "themes": ["HEAL"], "keywords": list(dataset.keywords), "access_rights": "restricted",
                    "duo_codes": list(dataset.duo_codes), "legal_basis": dataset.legal_basis,
                    "contact_point": f"data-office@{dataset.institution}.example",
                    "distribution_formats": ["application/fhir+json" if name.endswith("json") else "application/dicom"
                                             for name in dataset.files[:1]],
                    "temporal_start": "2000-01-01", "temporal_end": "2024-12-31",
                },
                "files": list(dataset.files),
                "subjects": subjects,
            })
            run.tail.scope.subjects |= set(subjects)
            run.tail.scope.command_ids.add(uuid.UUID(await publisher.send(command)))
        run.subjects[dataset.dataset_id] = subjects
        run.local_patients[dataset.dataset_id] = sorted(local_ids)
        run.progress.advance(task)

    def decided(tail: EventTail, event_type: str) -> set[str]:
        return {event.subject for event in tail.of_type(event_type)} & dataset_ids

    await run.tail.wait_for(
        lambda tail: decided(tail, "DatasetPublished") | decided(tail, "ComplianceViolationFlagged") == dataset_ids,
        timeout_s=STEP_TIMEOUT_S, what="every dataset of the plan published or flagged",
    )
    run.outcomes["datasets_published"] = sorted(decided(run.tail, "DatasetPublished"))
    run.outcomes["datasets_flagged"] = sorted(decided(run.tail, "ComplianceViolationFlagged"))


async def _record_consents(run: Run) -> None:
    consent_folder = run.stack.sample_data / "fhir" / "hl7-r4-examples" / "consent"
    immunized = run.local_patients["ds-knuh-immunization"]
    task = run.progress.add_task("환자 동의 등록 / consents recorded", total=len(plan.HL7_CONSENTS) + len(immunized))
    async with run.publisher("knuh") as publisher:
        for name in plan.HL7_CONSENTS:
            resource = json.loads((consent_folder / name).read_text(encoding="utf-8"))
            # Every example is sent, also those the consent service cannot use,
            # so that the demo runs its dead-letter path as well.
            event_id = await publisher.send(publisher.consent_command(resource, read_locally=False))
            run.tail.scope.command_ids.add(uuid.UUID(event_id))
            run.progress.advance(task)
        mii = (run.stack.sample_data / plan.MII_CONSENT).read_bytes()
        token = run.actors.hospital("knuh")
        for number, local_id in enumerate(immunized, 1):
            await run.actors.call(
                "POST", "consent", "/v1/hospital/consents/xml", token=token, content=mii,
                headers={"Content-Type": "application/fhir+xml"},
                params={"subject": publisher.pseudonymize(local_id), "consent_id": f"knuh-mii-{number:03d}"},
            )
            run.progress.advance(task)
    await run.tail.wait_for(lambda tail: len(tail.of_type("ConsentGranted")) >= len(immunized),
                            timeout_s=STEP_TIMEOUT_S, what="ConsentGranted for every immunization patient")


def _application_body(application: plan.ApplicationPlan, *, idempotency_key: str, irb_ref: str | None) -> dict:
    today = date.today()
    body = {
        "application_id": application.application_id,
        "idempotency_key": idempotency_key,
        "principal_investigator": f"{application.applicant} 책임연구자",
        "title": application.title,
        "purpose_text": "의료 AI 모델 개발을 위한 연구 / research to develop a medical AI model",
        "purpose_codes": list(application.purpose_codes),
        "dataset_ids": list(application.dataset_ids),
        "requested_start": (today + timedelta(days=30)).isoformat(),
        "requested_end": (today + timedelta(days=395)).isoformat(),
        "data_environment": application.data_environment,
    }
    if irb_ref:
        body["irb_document_ref"] = irb_ref
    return body


async def _submit(run: Run, application: plan.ApplicationPlan, *, key: str = "first",
                  irb_ref: str | None = "irb://demo/2026") -> dict:
    body = _application_body(application, idempotency_key=f"{application.application_id}-{key}", irb_ref=irb_ref)
    run.tail.scope.entity_ids.add(application.application_id)
    deadline = time.monotonic() + 30
    while True:
        result = await run.actors.call("POST", "review", "/applications", json=body, expect=(200, 201, 422),
                                       token=run.actors.applicant(application.applicant))
        detail = result.get("detail") if isinstance(result, dict) else None
        if not (isinstance(detail, dict) and detail.get("code") == "unknown_dataset"):
            if detail is not None:
                raise ScenarioError(f"application {application.application_id} rejected: {detail}")
            return result
        if time.monotonic() > deadline:
            raise ScenarioError(f"review service never learned the datasets of {application.application_id}: {detail}")
        # The review service learns published datasets from the catalog's events, a moment after the catalog.
        await asyncio.sleep(0.5)


async def _vote_all(run: Run, application_id: str, votes: dict[str, str], comment: str = "") -> None:
    detail = await run.actors.call("GET", "review", f"/applications/{application_id}", token=run.actors.operator())
    for region in detail["regions_involved"]:
        for board, vote in votes.items():
            for member in plan.voters(region, board):
                body: dict[str, Any] = {"board": board, "vote": vote}
                if vote != "approve":
                    body["comments"] = [comment or "심의 의견 / reviewer comment"]
                else:
                    body["conditions"] = [f"{board}: 재식별 시도 금지 / no re-identification attempts"]
                # 409 once the board or the application is decided: later votes are refused.
                await run.actors.call(
                    "POST", "review", f"/applications/{application_id}/votes",
                    token=run.actors.reviewer(member, board), json=body, expect=(200, 409),
                )


async def _submit_breaching_application(run: Run) -> str:
    application = plan.ApplicationPlan("app-demo-breach", "vendor-medvision", "알레르기 예측 모델 / allergy prediction",
                                       ("ds-knuch-allergy",), purpose_codes=("GRU",))
    await _submit(run, application)
    return application.application_id


async def _decide_applications(run: Run) -> None:
    milestone = [
        plan.ApplicationPlan(f"app-demo-{number:02d}", plan.VENDORS[number % len(plan.VENDORS)],
                             f"예방접종 반응 예측 {number} / vaccine response model {number}", ("ds-knuh-immunization",))
        for number in range(1, plan.MILESTONE_APPLICATIONS + 1)
    ]
    rejected = plan.ApplicationPlan("app-demo-ncu", "vendor-lunapath", "상용 영상 판독 보조 / commercial reading aid",
                                    ("ds-yumc-imaging", "ds-cnuh-devices"))
    revised = plan.ApplicationPlan("app-demo-revise", "vendor-gwangai", "처방 패턴 분석 / prescription patterns",
                                   ("ds-dcmc-medication",), purpose_codes=("GRU",))
    task = run.progress.add_task("심의와 결정 / reviews and decisions", total=len(milestone) + 2)

    for application in milestone:
        await _submit(run, application)
        await _vote_all(run, application.application_id, {"IRB": "approve", "DRB": "approve"})
        run.progress.advance(task)

    await _submit(run, rejected)
    await _vote_all(run, rejected.application_id, {"IRB": "approve", "DRB": "reject"},
                    comment="비상업 조건(NCU) 데이터셋을 상업적으로 이용할 수 없음 / NCU dataset requested for commercial use")
    run.progress.advance(task)

    await _submit(run, revised, irb_ref=None)  # screening requests the missing IRB documents
    await _submit(run, revised, key="second")
    await _vote_all(run, revised.application_id, {"IRB": "revise"},
                    comment="데이터 보관 기간을 명시할 것 / state the retention period")
    await asyncio.sleep(2)  # the clock is stopped while the applicant revises
    await _submit(run, revised, key="third", irb_ref="irb://demo/2026-rev2")
    await _vote_all(run, revised.application_id, {"IRB": "approve", "DRB": "approve"})
    run.progress.advance(task)

    expected_grants = len(milestone) + len(revised.dataset_ids)
    await run.tail.wait_for(lambda tail: len(tail.of_type("AccessGranted")) >= expected_grants,
                            timeout_s=STEP_TIMEOUT_S, what=f"{expected_grants} AccessGranted")
    await run.tail.wait_for(lambda tail: tail.of_type("MilestoneReached"), timeout_s=STEP_TIMEOUT_S,
                            what="MilestoneReached for knuh")


async def _revoke_and_acknowledge(run: Run) -> None:
    immunized = run.local_patients["ds-knuh-immunization"][: plan.REVOKING_PATIENTS]
    task = run.progress.add_task("동의 철회와 제외 확인 / revocations and acknowledgements", total=None)
    async with run.publisher("knuh") as publisher:
        now = datetime.now(UTC).isoformat()
        for local_id in immunized[:-1]:
            number = run.local_patients["ds-knuh-immunization"].index(local_id) + 1
            event_id = await publisher.send(publisher.revocation_command(local_id, f"knuh-mii-{number:03d}", now))
            run.tail.scope.command_ids.add(uuid.UUID(event_id))
        dashboard_patient = publisher.pseudonymize(immunized[-1])
    # The last patient revokes on the transparency dashboard instead of at the hospital.
    await run.actors.call("POST", "consent", "/v1/me/revocations", token=run.actors.patient(dashboard_patient), json={})

    # Only this run's grants: other producers may share the topics (tests, another demo).
    ours = {e.data["grant_id"] for e in run.tail.of_type("AccessGranted")
            if e.data["dataset_id"] == "ds-knuh-immunization" and e.data["application_id"].startswith("app-demo-")}
    expected = len(ours) * len(immunized)

    def requested(tail: EventTail) -> list:
        return [e for e in tail.of_type("ExclusionRequested") if e.data["grant_id"] in ours]

    await run.tail.wait_for(lambda tail: len(requested(tail)) >= expected,
                            timeout_s=STEP_TIMEOUT_S, what=f"{expected} ExclusionRequested")
    run.progress.update(task, total=expected * 2)

    for event in requested(run.tail):
        exclusion_id = event.data["exclusion_id"]
        await run.actors.call("POST", "consent", f"/v1/exclusions/{exclusion_id}/acknowledgement",
                              token=run.actors.applicant(event.data["grantee_institution"]))
        run.progress.advance(task)
        await run.actors.call("POST", "consent", f"/v1/exclusions/{exclusion_id}/acknowledgement",
                              token=run.actors.hospital(event.data["holder_institution"]))
        run.progress.advance(task)
    await run.tail.wait_for(lambda tail: len([e for e in tail.of_type("ExclusionAcknowledged")
                                              if e.data["grant_id"] in ours]) >= expected * 2,
                            timeout_s=STEP_TIMEOUT_S, what="every ExclusionAcknowledged")
    run.outcomes["revoking_patients"] = len(immunized)


async def _tool_grant(run: Run) -> None:
    task = run.progress.add_task("익명처리 도구 지원 / anonymization-tool grant", total=3)
    vendor = "vendor-medvision"
    run.tail.scope.entity_ids.add("tool-demo-01")
    await run.actors.call("POST", "grants", "/tool-grants/applications", token=run.actors.applicant(vendor), json={
        "application_id": "tool-demo-01", "vendor_id": vendor,
        "title": "DICOM 헤더 익명화 도구 / DICOM header anonymizer", "requested_krw": 300_000_000,
    })
    run.progress.advance(task)
    award = await run.actors.call("POST", "grants", "/tool-grants/applications/tool-demo-01/award",
                                  token=run.actors.fund_admin(), json={
                                      "amount_krw": 300_000_000,
                                      "tranches": [{"deliverable": "설계 검토 / design review", "amount_krw": 100_000_000},
                                                   {"deliverable": "배포 / release", "amount_krw": 200_000_000}],
                                  })
    run.progress.advance(task)
    award_id = award.get("award_id") or award.get("award", {}).get("award_id")
    if not award_id:
        raise ScenarioError(f"award response has no award_id: {award}")
    run.tail.scope.entity_ids.add(award_id)
    await run.actors.call("POST", "grants", f"/tool-grants/awards/{award_id}/tranches/1/delivery",
                          token=run.actors.fund_admin())
    run.progress.advance(task)


async def _await_breach(run: Run, application_id: str) -> None:
    task = run.progress.add_task("20일 기한 초과 대기 / waiting for the 20-day breach (accelerated clock)", total=4)

    def alerts(tail: EventTail) -> int:
        warnings = [e for e in tail.of_type("ReviewSlaWarning") if e.subject == application_id]
        breaches = [e for e in tail.of_type("ReviewSlaBreached") if e.subject == application_id]
        run.progress.update(task, completed=len(warnings) + len(breaches))
        return len(breaches)

    await run.tail.wait_for(alerts, timeout_s=240, what=f"ReviewSlaBreached for {application_id}")


# -- the summary -------------------------------------------------------------------


async def _summary(run: Run) -> dict[str, Any]:
    await asyncio.sleep(2)  # let the last payouts reach the topic
    operator = run.actors.operator()
    pools = await _pools(run)
    institutions = await run.actors.call("GET", "grants", "/reports/disbursements/institutions", token=operator)
    review_figures = await run.actors.call("GET", "review", "/statistics", token=operator)
    decisions = {
        event.data["application_id"]: {"outcome": event.type, "days_used": event.data["days_used"]}
        for event in run.tail.owned() if event.type in ("ApplicationApproved", "ApplicationRejected")
    }
    days = [item["days_used"] for item in decisions.values()]
    counts = run.tail.counts()
    return {
        "run_id": run.stack.run_id,
        "seconds": round(time.monotonic() - run.started_at, 1),
        "event_counts": counts,
        "datasets": {
            "registered": len({e.subject for e in run.tail.of_type("DatasetRegistered")}),
            "published": run.outcomes["datasets_published"],
            "flagged": run.outcomes["datasets_flagged"],
            "subjects_published": sum(len(e.data["subjects"]) for e in run.tail.of_type("DatasetSubjectsAdded")),
        },
        "consents": {"granted": counts.get("ConsentGranted", 0), "revoked": counts.get("ConsentRevoked", 0)},
        "decisions": decisions,
        "decision_days": {
            "median": round(statistics.median(days), 2) if days else None,
            "max": round(max(days), 2) if days else None,
            "review_service": review_figures,
        },
        "exclusions": {
            "requested": counts.get("ExclusionRequested", 0),
            "acknowledged": counts.get("ExclusionAcknowledged", 0),
            "complete": sum(1 for e in run.tail.of_type("ExclusionAcknowledged") if e.data["complete"]),
        },
        "pools": pools,
        "pool_total_krw": sum(pool["allocated_krw"] for pool in pools),
        "disbursements_by_institution": institutions,
        "services": run.stack.supervision(),
        "urls": {
            "console": f"http://127.0.0.1:{run.stack.console_port}/",
            **{service: run.stack.url(service) for service in SERVICES},
        },
    }


def _write_region_keys(folder: Path, region_keys: dict[str, str]) -> Path:
    """Write each region's pseudonym key of this run to `<folder>/<region>.env`, readable by the owner only; return `folder`.

    The keys are made at random for each run, so without them `medgov publish`
    could not name the demo's patients.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for region, key in region_keys.items():
        path = folder / f"{region}.env"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(
            f"# Pseudonym key of region {region} in the last demo run, made at random for that run only.\n"
            f"MEDGOV_REGION={region}\nMEDGOV_PSEUDONYM_KEY={key}\n",
            encoding="utf-8",
        )
    return folder


def _print_summary(summary: dict[str, Any], path: Path) -> None:
    table = Table(title="이벤트 수 / events published")
    table.add_column("type")
    table.add_column("count", justify="right")
    for event_type, count in summary["event_counts"].items():
        table.add_row(event_type, str(count))
    console.print(table)
    pools = Table(title="기금 재원 / fund pools (KRW)")
    for column in ("pool", "allocated", "disbursed", "available", "pending"):
        pools.add_column(column, justify="right")
    for pool in summary["pools"]:
        pools.add_row(pool["pool"], f"{pool['allocated_krw']:,}", f"{pool['disbursed_krw']:,}",
                      f"{pool['available_krw']:,}", f"{pool['pending_krw']:,}")
    console.print(pools)
    console.print(f"datasets published: {', '.join(summary['datasets']['published'])}")
    console.print(f"datasets flagged by the PIPA scan: {', '.join(summary['datasets']['flagged'])}")
    console.print(f"median decision time: {summary['decision_days']['median']} days; "
                  f"exclusions requested {summary['exclusions']['requested']}, "
                  f"completed {summary['exclusions']['complete']}")
    console.print(f"summary written to {path} ({summary['seconds']} s)")
