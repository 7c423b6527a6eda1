"""The `medgov` command line: hospital publisher, analytics subscriber, dead-letter tools, demo."""

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError

from medgov_cli.demo.stack import DEFAULT_CONSOLE_PORT
from medgov_cli.output import report_console, result_console
from medgov_cli.publisher import HospitalPublisher, PublishReport, Rejected, staged_file
from medgov_cli.settings import BrokerUnavailable, PublisherSettings, environment_variable
from medgov_cli.subjects import TOO_DEEP, json_type_name, local_patient_ids, parse_json, read_bytes
from medgov_shared.contracts.events.inbound import RecordConsent
from medgov_shared.contracts.types import LegalBasis
from medgov_shared.utf8 import decode_utf8

app = typer.Typer(help="medgov: governed access to hospital data for medical AI.", no_args_is_help=True)
publish_app = typer.Typer(help="Send a hospital's commands to its inbound topic.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and replay dead-letter topics.", no_args_is_help=True)
app.add_typer(publish_app, name="publish")
app.add_typer(dlq_app, name="dlq")

console = report_console()

# aiokafka logs each failed connection attempt; without a handler Python would
# print those on stderr next to the one error line this command prints itself.
logging.getLogger("aiokafka").addHandler(logging.NullHandler())

Institution = Annotated[str, typer.Option("--institution", "-i", help="Your institution id, e.g. knuh.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print the per-record report as JSON on stdout.")]
ConsolePort = Annotated[
    int,
    typer.Option(
        min=1024, max=65530, envvar="MEDGOV_DEMO_PORT",
        help="Console port on 127.0.0.1; the review, catalog, consent and grants APIs use the next four ports.",
    ),
]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one error line on stderr and exit with `code`, instead of a traceback."""
    typer.echo(f"medgov: error: {message}", err=True)
    raise typer.Exit(code)


def describe_settings_error(error: ValidationError) -> str:
    """List each invalid or missing environment variable with pydantic's reason, on one line."""
    problems = "; ".join(f"{environment_variable(str(item['loc'][0]))}: {item['msg']}" for item in error.errors())
    return f"settings invalid or missing: {problems}"


def _publisher_settings() -> PublisherSettings:
    try:
        return PublisherSettings()
    except ValidationError as error:
        fail(f"publisher {describe_settings_error(error)}")


def _print_report(report: PublishReport, as_json: bool, institution: str) -> None:
    if as_json:
        typer.echo(json.dumps([outcome.__dict__ for outcome in report.outcomes], ensure_ascii=False, indent=2))
    else:
        # One line per record, so the report reads the same in a terminal, a pipe or a log file.
        for item in report.outcomes:
            if item.accepted:
                typer.echo(f"accepted {item.label}: {item.event_type} {item.event_id}")
            else:
                typer.echo(f"rejected {item.label}: {item.reason}")
        typer.echo(f"{len(report.accepted)} accepted, {len(report.rejected)} rejected")
        if report.accepted:
            # Accepted means the broker stored the event; the service checks it
            # again (consent scope, staged files) and dead-letters what it refuses.
            topic = f"medgov.inbound.{institution}.v1.dlq"
            typer.echo(f"accepted events are checked again by the services; refusals appear in `medgov dlq show {topic}`")
    if report.rejected:
        raise typer.Exit(1)


def _run(institution: str, items: list, as_json: bool) -> None:
    settings = _publisher_settings()

    try:
        publisher = HospitalPublisher(settings, institution)
    except (KeyError, ValueError) as error:
        fail(str(error.args[0] if error.args else error))

    # Records are built and checked before connecting, so a batch without a
    # valid record needs no broker.
    built = [(label, build(publisher)) for label, build in items]

    async def send() -> PublishReport:
        if all(isinstance(item, Rejected) for _, item in built):
            return await publisher.publish_all(built)
        async with publisher:
            return await publisher.publish_all(built)

    try:
        report = asyncio.run(send())
    except BrokerUnavailable as error:
        fail(str(error))
    _print_report(report, as_json, institution)


def _attempt(build):
    def wrapped(publisher: HospitalPublisher):
        try:
            return build(publisher)
        except Rejected as error:
            return error
        except (OSError, ValueError) as error:
            return Rejected(str(error))
        except RecursionError:
            return Rejected(TOO_DEEP)

    return wrapped


@publish_app.command("consent")
def publish_consent(
    institution: Institution,
    # Not checked by typer, so that a missing file or a folder gets its own rejected row and the others are sent.
    files: Annotated[list[Path], typer.Argument(help="FHIR R4 Consent JSON files.")],
    as_json: JsonOutput = False,
) -> None:
    """Record patients' FHIR Consents; the patient reference is pseudonymized before sending."""

    def builder(path: Path):
        def build(publisher: HospitalPublisher):
            text = decode_utf8(read_bytes(path))
            if not text.strip():
                raise Rejected("empty file, expected a FHIR Consent resource")
            try:
                resource = parse_json(text)
            except ValueError as error:
                raise Rejected(str(error)) from None
            return publisher.consent_command(resource)

        return build

    _run(institution, [(path.name, _attempt(builder(path))) for path in files], as_json)


@publish_app.command("dataset")
def publish_dataset(
    institution: Institution,
    dataset_id: Annotated[str, typer.Option(help="Dataset id, e.g. ds-knuh-ct-0001.")],
    title: Annotated[str, typer.Option(help="Dataset title (Korean is fine).")],
    staging_root: Annotated[Path, typer.Option(help="Staging folder the catalog reads; files are relative to it.", exists=True, file_okay=False)],
    files: Annotated[list[str], typer.Argument(help="Files relative to --staging-root.")],
    legal_basis: Annotated[LegalBasis, typer.Option(help="Legal basis under PIPA.")] = LegalBasis.PSEUDONYMIZED_RESEARCH,
    duo: Annotated[list[str], typer.Option(help="GA4GH DUO data-use term; repeat for several.")] = ["HMB"],  # noqa: B006
    description: Annotated[str, typer.Option(help="Dataset description.")] = "",
    keyword: Annotated[list[str], typer.Option(help="Keyword; repeat for several.")] = [],  # noqa: B006
    contact: Annotated[str, typer.Option(help="Contact point of the data office.")] = "",
    as_json: JsonOutput = False,
) -> None:
    """Register a dataset whose files sit in the staging area; patient ids found in them are pseudonymized."""

    def build(publisher: HospitalPublisher):
        local_ids: set[str] = set()
        unreadable: list[str] = []
        for name in files:
            try:
                local_ids |= local_patient_ids(staged_file(staging_root, name))
            except ValueError as error:  # includes Rejected: a missing file or a path outside the staging folder
                unreadable.append(str(error) if name in str(error) else f"{name}: {error}")
        if unreadable and len(unreadable) == len(files):
            raise Rejected("no file could be read: " + "; ".join(unreadable))
        for problem in unreadable:
            # As over HTTP, one bad file does not cost the others: the catalog
            # rejects it with its reason in the registration report.
            console.print(f"warning: {problem}; sent anyway, the catalog keeps the other files and reports this one",
                          markup=False, highlight=False, soft_wrap=True)
        description_data = {
            "title": title, "description": description, "publisher": institution, "themes": ["HEAL"],
            "keywords": keyword, "access_rights": "restricted", "duo_codes": duo,
            "legal_basis": legal_basis.value, "contact_point": contact or f"data-office@{institution}",
            "distribution_formats": [],
        }
        subjects = sorted(publisher.pseudonymize(local) for local in local_ids)
        return publisher.command(
            "RegisterDataset",
            {"dataset_id": dataset_id, "description": description_data, "files": files, "subjects": subjects},
        )

    _run(institution, [(dataset_id, _attempt(build))], as_json)


@publish_app.command("revoke")
def publish_revoke(
    institution: Institution,
    patient: Annotated[str, typer.Option(help="Local patient id (pseudonymized before sending).")],
    consent_id: Annotated[str, typer.Option(help="Consent id as recorded, e.g. knuh-consent-example-basic.")],
    effective_at: Annotated[str | None, typer.Option(help="ISO time with zone; default now.")] = None,
    as_json: JsonOutput = False,
) -> None:
    """Revoke a patient's consent at the hospital."""
    when = effective_at or datetime.now(UTC).isoformat()
    build = _attempt(lambda publisher: publisher.revocation_command(patient, consent_id, when))
    _run(institution, [(consent_id, build)], as_json)


@publish_app.command("commands")
def publish_commands(
    institution: Institution,
    file: Annotated[Path, typer.Argument(help="JSON lines: {\"type\": ..., \"data\": {...}, \"patient\": local id}; blank lines are skipped.", exists=True)],
    as_json: JsonOutput = False,
) -> None:
    """Send arbitrary inbound commands from a JSON-lines file, one report row per line."""
    try:
        data = read_bytes(file)
    except ValueError as error:
        fail(str(error))
    if b"\x00" in data:
        # A binary file gets one error for the whole file instead of one per line.
        try:
            decode_utf8(data)
        except ValueError as error:
            fail(f"{file}: {error}")
    items = []
    # Each line is decoded on its own, so that a line that is not UTF-8 is rejected alone.
    for number, raw_line in enumerate(data.splitlines(), 1):
        if not raw_line.strip():
            continue

        def build(publisher: HospitalPublisher, raw_line: bytes = raw_line):
            return _line_command(publisher, decode_utf8(raw_line))

        items.append((f"{file.name}:{number}", _attempt(build)))
    if not items:
        fail(f"{file}: empty file, expected one JSON command per line")
    _run(institution, items, as_json)


def _line_command(publisher: HospitalPublisher, line: str):
    try:
        record = parse_json(line)
    except ValueError as error:
        raise Rejected(str(error)) from None
    if not isinstance(record, dict) or "data" not in record:
        raise Rejected("expected an object with 'type' and 'data'")
    if not isinstance(record["data"], dict):
        raise Rejected(f"'data' must be an object with the command's fields, got {json_type_name(record['data'])}")
    if not isinstance(record.get("type"), str):
        raise Rejected(f"'type' must be a command name such as \"RevokeConsent\", got {json_type_name(record.get('type'))}")
    patient = record.get("patient")
    if patient is not None and not isinstance(patient, str):
        raise Rejected(f"'patient' must be a string (the local patient id), got {json_type_name(patient)}")
    command = publisher.command(record["type"], record["data"], local_patient_id=patient)
    if isinstance(command, RecordConsent):
        # As `publish consent` does: a Consent the service would dead-letter is not reported as accepted.
        publisher.read_consent_locally(command.consent_id, command.fhir_consent)
    return command


MAX_TOKEN_TTL_S = 30 * 24 * 3600
# Roles whose every route acts for the token's institution: a hospital's
# uploads and consents, an applicant's applications.
ROLES_OF_AN_INSTITUTION = frozenset({"hospital", "applicant"})


@app.command("token")
def token(
    subject_id: Annotated[str, typer.Option("--sub", help="Caller id.")],
    role: Annotated[list[str], typer.Option(help="Role; repeat for several.")],
    institution: Annotated[str | None, typer.Option(help="Caller's institution.")] = None,
    patient_subject: Annotated[str | None, typer.Option(help="Patient's pseudonym (role patient).")] = None,
    ttl: Annotated[int, typer.Option(help=f"Lifetime in seconds, from 1 to {MAX_TOKEN_TTL_S} (30 days).")] = 3600,
) -> None:
    """Sign a development bearer token with JWT_SECRET (never use in production)."""
    from medgov_shared.contracts.institutions import all_institutions
    from medgov_shared.contracts.pseudonym import is_pseudonym
    from medgov_shared.web.auth import ROLES, issue_token

    if not 0 < ttl <= MAX_TOKEN_TTL_S:
        # At 0 or below the token expires when it is signed, and a far expiry outlives any test or demo.
        raise typer.BadParameter(f"must be from 1 to {MAX_TOKEN_TTL_S} seconds (30 days), got {ttl}", param_hint="'--ttl'")
    if not subject_id.strip():
        # The services reject a token that names no caller.
        raise typer.BadParameter("must name the caller", param_hint="'--sub'")

    unknown = sorted(set(role) - ROLES)
    if unknown:
        # The services reject a token with any unknown role, so signing one would only defer the error.
        raise typer.BadParameter(f"unknown role {', '.join(unknown)}; known roles: {', '.join(sorted(ROLES))}", param_hint="'--role'")
    # The services reject these too, each on the first request that needs the claim.
    if ("patient" in role or patient_subject is not None) and not (patient_subject and is_pseudonym(patient_subject)):
        raise typer.BadParameter(
            "must be the patient's keyed pseudonym, such as daegu.k1.<64 hex digits>; the role patient needs one",
            param_hint="'--patient-subject'",
        )
    acting_for_institution = sorted(set(role) & ROLES_OF_AN_INSTITUTION)
    if acting_for_institution and institution is None:
        raise typer.BadParameter(
            f"a token with the role {', '.join(acting_for_institution)} needs the caller's institution id, such as knuh",
            param_hint="'--institution'",
        )
    if institution is not None and institution not in all_institutions():
        raise typer.BadParameter(
            f"unknown institution {institution!r}; known: {', '.join(sorted(all_institutions()))}", param_hint="'--institution'"
        )
    secret = os.environ.get("JWT_SECRET")
    if not secret:
        console.print("[red]JWT_SECRET is not set; export the key the services verify tokens with (make run prints it)[/red]")
        raise typer.Exit(2)
    typer.echo(issue_token(secret, subject_id=subject_id, roles=role, institution=institution,
                           patient_subject=patient_subject, ttl_s=ttl))


@dlq_app.command("show")
def dlq_show(topic: Annotated[str, typer.Argument(help="Dead-letter topic, e.g. medgov.inbound.knuh.v1.dlq.")]) -> None:
    """List the records of a dead-letter topic with their reasons."""
    from medgov_cli.dlq import show

    try:
        # The table is the command's result, so it goes to standard output, where `> file` catches it.
        asyncio.run(show(topic, result_console()))
    except (BrokerUnavailable, LookupError) as error:
        fail(str(error))
    except ValidationError as error:
        fail(f"Kafka {describe_settings_error(error)}")


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="Dead-letter topic to replay.")],
    reason: Annotated[str | None, typer.Option(help="Replay only records with this reason.")] = None,
) -> None:
    """Send dead-lettered records back to their original topic (after the cause was fixed)."""
    from medgov_cli.dlq import replay

    try:
        replayed, copies = asyncio.run(replay(topic, reason))
    except (BrokerUnavailable, LookupError) as error:
        fail(str(error))
    except ValidationError as error:
        fail(f"Kafka {describe_settings_error(error)}")
    # Each service that could not apply a record dead-letters its own copy of it.
    console.print(f"replayed {replayed} record(s) from {topic}; skipped {copies} duplicate dead letter(s) of those records")


@app.command("subscribe")
def subscribe(
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL of the analytics store.")] = None,
    once: Annotated[bool, typer.Option(help="Stop when caught up (for scripts and tests).")] = False,
) -> None:
    """Follow the services' topics and keep aggregate figures in the analytics store."""
    from medgov_cli.analytics import run_subscriber

    asyncio.run(run_subscriber(database_url, once=once))


@app.command("demo")
def demo(
    keep_running: Annotated[bool, typer.Option(help="Leave services and dashboards running until Ctrl-C.")] = False,
    summary: Annotated[
        Path | None, typer.Option(help="Where to write the JSON summary; default demo-summary.json in var/ or MEDGOV_LOCAL_VAR_DIR.")
    ] = None,
    port: ConsolePort = DEFAULT_CONSOLE_PORT,
) -> None:
    """Play the regional scenario on the real sample data."""
    from medgov_cli.demo.scenario import run_demo

    try:
        code = run_demo(keep_running=keep_running, summary_path=summary, console_port=port)
    except ValidationError as error:
        fail(f"Kafka {describe_settings_error(error)}; run `make up` and source var/local.env")
    raise typer.Exit(code)


@app.command("chaos")
def chaos(
    events: Annotated[int, typer.Option(help="Inbound commands to send.")] = 50_000,
    kills: Annotated[int, typer.Option(help="Services to SIGKILL at random moments (each restarted).")] = 20,
    kafka_restarts: Annotated[int, typer.Option(help="Restarts of the Kafka broker during the run.")] = 2,
    postgres_restarts: Annotated[int, typer.Option(help="Restarts of PostgreSQL during the run.")] = 1,
    seed: Annotated[int | None, typer.Option(help="Random seed, to repeat a run.")] = None,
) -> None:
    """Send mixed inbound commands while killing services and restarting Kafka and PostgreSQL; end with lost/duplicated."""
    from medgov_cli.chaos import run_chaos

    raise typer.Exit(run_chaos(events, kills, kafka_restarts, postgres_restarts, seed))


@app.command("console")
def serve_console(
    port: ConsolePort = DEFAULT_CONSOLE_PORT,
) -> None:
    """Serve the governance console against the services of a running scenario (ports 8101-8104 by default)."""
    import uvicorn

    from medgov_cli.console.app import create_console
    from medgov_cli.demo.stack import service_ports

    secret = os.environ.get("JWT_SECRET")
    if not secret:
        console.print("[red]JWT_SECRET is not set; use the key the services verify tokens with[/red]")
        raise typer.Exit(2)
    urls = {service: f"http://127.0.0.1:{service_port}" for service, service_port in service_ports(port).items()}
    uvicorn.run(create_console(urls, secret), host="127.0.0.1", port=port)


if __name__ == "__main__":
    app()
