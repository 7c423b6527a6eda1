"""Use cases shared by the inbound handler and the HTTP API: register, withdraw, clear a flag.

Each runs inside the caller's unit of work: the state change and the events
it causes commit together, and an exception rolls both back.
"""

import asyncio

import structlog

from medgov_shared.contracts.events.catalog import (
    ComplianceFlagCleared,
    ComplianceViolationFlagged,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.contracts.institutions import EXTRA_INSTITUTIONS_ENV, Institution, all_institutions
from medgov_shared.messaging.context import HandlerContext

from medgov_catalog import repository
from medgov_catalog.domain.dataset import DatasetRuleViolation
from medgov_catalog.domain.inspection import inspect_dataset
from medgov_catalog.domain.registration import RegisteredVersion, RegistrationRejected, check_command, register_version
from medgov_catalog.settings import CatalogSettings

log = structlog.get_logger(__name__)


class NotFound(LookupError):
    """Raised when a dataset or flag id is unknown to this catalog."""


def registered_hospital(institution_id: str) -> Institution:
    """Return the registered hospital that sends a RegisterDataset, or raise RegistrationRejected.

    Only hospitals hold data, so a vendor, partner or council cannot register
    a dataset. The catalog checks this itself: Kafka ACLs keep unknown
    institutions off the broker only where an installation configures them,
    and they do not cover the HTTP API.
    """
    institution = all_institutions().get(institution_id)
    if institution is None:
        raise RegistrationRejected(
            f"institution '{institution_id}' is not registered on this platform, so it cannot hold datasets. "
            f"Register it as a hospital in institutions.yaml or in the file named by {EXTRA_INSTITUTIONS_ENV}, "
            f"restart the services, then send the command again."
        )
    if institution.kind != "hospital":
        raise RegistrationRejected(
            f"institution '{institution_id}' is registered as a {institution.kind}, but only hospitals hold datasets. "
            f"Send the command from the hospital that holds the data."
        )
    return institution


async def register_dataset(context: HandlerContext, command: RegisterDataset, settings: CatalogSettings) -> RegisteredVersion:
    """Read the command's files, store the new version and emit its events.

    Raises RegistrationRejected (nothing stored) when the command is not
    acceptable or none of its files is.
    """
    holder = registered_hospital(command.institution_id)
    connection = context.connection
    await repository.lock_dataset(connection, command.dataset_id)
    dataset = await repository.get_dataset(connection, command.dataset_id)
    if dataset is not None and dataset.origin == "remote":
        raise RegistrationRejected(
            f"dataset id '{command.dataset_id}' is already used by '{dataset.institution_id}' in region "
            f"{dataset.region}; choose another id"
        )
    history = await repository.load_history(connection, dataset) if dataset else None
    check_command(command, history)

    # File reading is blocking I/O and CPU work; a thread keeps the event loop
    # (and with it the Kafka consumer's heartbeats) running meanwhile.
    area = settings.staging.area_of(command.institution_id)
    inspection = await asyncio.to_thread(inspect_dataset, area, command.files, settings.file_limits)
    # A dataset belongs to its holder's region. One installation normally serves
    # only its own region's hospitals, but the local stack runs one installation
    # on one broker for all three regions.
    registered = register_version(command, history, inspection, holder.region, context.now())

    if dataset is None:
        await repository.insert_dataset(
            connection, command.dataset_id, command.institution_id, holder.region.value, "local", context.now()
        )
    await repository.insert_local_version(connection, registered)
    await _emit_version_events(context, registered)
    if registered.verdict.publishable:
        await repository.index_version(connection, registered.dataset_id, registered.version)

    log.info(
        "dataset version registered",
        dataset_id=registered.dataset_id,
        version=registered.version,
        accepted_files=len(inspection.accepted),
        rejected_files=len(inspection.rejected),
        published=registered.verdict.publishable,
        violations=[violation.rule.value for violation in registered.verdict.violations],
    )
    return registered


async def _emit_version_events(context: HandlerContext, registered: RegisteredVersion) -> None:
    for event in registered.events():
        await context.emit(event)
        if isinstance(event, ComplianceViolationFlagged):
            await repository.insert_flag(
                context.connection,
                flag_id=event.flag_id,
                dataset_id=event.dataset_id,
                version=registered.version,
                institution_id=event.institution_id,
                rule=event.rule,
                severity=event.severity.value,
                findings=[item.model_dump() for item in event.findings],
                flagged_at=event.flagged_at,
            )


async def withdraw_dataset(
    context: HandlerContext, dataset_id: str, institution_id: str, reason: str
) -> DatasetWithdrawn:
    """Withdraw a local dataset; raises NotFound or DatasetRuleViolation."""
    connection = context.connection
    await repository.lock_dataset(connection, dataset_id)
    dataset = await repository.get_dataset(connection, dataset_id)
    if dataset is None or dataset.origin != "local":
        raise NotFound(f"no dataset '{dataset_id}' is held in this region")
    history = await repository.load_history(connection, dataset)
    _, event = history.withdraw(institution_id, reason, context.now())
    await repository.mark_withdrawn(connection, dataset_id, event.reason, event.withdrawn_at)
    await context.emit(event)
    log.info("dataset withdrawn", dataset_id=dataset_id, institution_id=institution_id)
    return event


async def clear_compliance_flag(context: HandlerContext, flag_id: str, note: str) -> ComplianceFlagCleared:
    """Clear a flag of a local dataset; raises NotFound or DatasetRuleViolation."""
    connection = context.connection
    flag = await repository.get_flag(connection, flag_id)
    if flag is None:
        raise NotFound(f"no compliance flag '{flag_id}'")
    dataset = await repository.get_dataset(connection, flag["dataset_id"])
    if dataset is None or dataset.origin != "local":
        raise NotFound(f"flag '{flag_id}' belongs to a dataset of another region; its catalog clears it")
    if flag["cleared_at"] is not None:
        raise DatasetRuleViolation(f"flag '{flag_id}' was already cleared on {flag['cleared_at']:%Y-%m-%d}")
    if not note.strip():
        raise DatasetRuleViolation("clearing a flag needs a note saying how the cause was fixed")

    event = ComplianceFlagCleared(
        dataset_id=flag["dataset_id"],
        flag_id=flag_id,
        institution_id=flag["institution_id"],
        cleared_at=context.now(),
        note=note.strip(),
    )
    await repository.clear_flag(connection, flag_id, event.cleared_at, event.note)
    await context.emit(event)
    return event
