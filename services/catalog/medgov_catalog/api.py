"""HTTP API: staging uploads, registration, search, dataset history and reports, withdrawal, flag clearance."""

import asyncio
import errno
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as FastApiPath
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medgov_shared.contracts.events.catalog import DatasetDescription
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.contracts.pseudonym import Pseudonym
from medgov_shared.contracts.types import EntityId
from medgov_shared.messaging.errors import describe_validation_error
from medgov_shared.service import Service
from medgov_shared.web.auth import Principal, current_principal, require_roles

from medgov_catalog import repository
from medgov_catalog.dataset_service import NotFound, clear_compliance_flag, register_dataset, registered_hospital, withdraw_dataset
from medgov_catalog.domain.dataset import DatasetRuleViolation, NotDatasetHolder, VersionStatus
from medgov_catalog.domain.files import LimitedFileWriter, StoredFile
from medgov_catalog.domain.registration import RegisteredVersion, RegistrationRejected
from medgov_catalog.domain.rejection import FileRejected, RejectionReason
from medgov_catalog.domain.staging import (
    check_upload_name,
    create_parent_folders,
    os_error_reason,
    remove_empty_folders,
    resolve_inside,
)
from medgov_catalog.search import SearchQuery, search
from medgov_catalog.settings import CatalogSettings

log = structlog.get_logger(__name__)

REPORT_READER_ROLES = ("drb_reviewer", "operator", "council")

# A failed upload in another catalog replica may remove an empty folder that an
# upload has just found and is about to use. Creating the folders and opening
# the partial file is then repeated, up to this many attempts in all.
UPLOAD_FOLDER_ATTEMPTS = 3

# File-system errors caused by the requested path, which the client can change.
_PATH_ERRORS = frozenset({errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP})
# File-system errors of a full disk or quota, after which the client may retry.
_FULL_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistrationRequest(_Body):
    dataset_id: EntityId = Field(description="Dataset id chosen by the hospital; a known id registers a new version.")
    description: DatasetDescription
    files: list[str] = Field(min_length=1, max_length=100_000, description="Paths relative to the staging area.")
    subjects: list[Pseudonym] = Field(default_factory=list, description="Pseudonyms of the dataset's subjects.")


class WithdrawalRequest(_Body):
    reason: str = Field(min_length=1, max_length=2000, description="Why the dataset is withdrawn.")


class ClearanceRequest(_Body):
    note: str = Field(min_length=1, max_length=2000, description="How the cause of the flag was fixed.")


def _service(request: Request) -> Service:
    return request.app.state.service


def _settings(request: Request) -> CatalogSettings:
    return request.app.state.service.settings


def _institution_of(principal: Principal) -> str:
    if not principal.institution:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the bearer token names no institution; a hospital token needs one")
    return principal.institution


def build_router() -> APIRouter:
    router = APIRouter(tags=["catalog"])

    @router.put("/staging/{path:path}", status_code=status.HTTP_201_CREATED)
    async def upload_staged_file(
        path: str, request: Request, principal: Annotated[Principal, Depends(require_roles("hospital"))]
    ) -> dict[str, Any]:
        """Stream a file into the caller's staging area; it is stopped and deleted once it passes the size limit.

        A rejected or failed upload also removes the folders it created, except
        those that another upload has put a file into meanwhile.
        """
        settings = _settings(request)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_file_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"'{path}' has {declared} bytes, more than the limit of {settings.max_file_bytes} bytes",
            )
        institution_id = _institution_of(principal)
        try:
            # Only a hospital that may register the files may store them.
            registered_hospital(institution_id)
        except RegistrationRejected as error:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
        created_folders: list[Path] = []
        try:
            upload = _start_upload(settings, institution_id, path, created_folders)
            stored = await _receive(request, upload, path)
        except OSError as error:
            _remove_created_folders(created_folders, institution_id)
            raise _storage_error(error, institution_id, path) from None
        except BaseException:
            _remove_created_folders(created_folders, institution_id)
            raise
        return {"path": path, "size_bytes": stored.size_bytes, "sha256": stored.sha256}

    @router.post("/datasets", status_code=status.HTTP_201_CREATED)
    async def register(
        body: RegistrationRequest,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("hospital"))],
    ) -> dict[str, Any]:
        """Register a dataset (or a new version) from staged files; the report lists every file's outcome."""
        command = _command(body, _institution_of(principal))
        service = _service(request)
        try:
            async with service.unit_of_work() as context:
                registered = await register_dataset(context, command, _settings(request))
        except RegistrationRejected as error:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
        return _registration_report(registered)

    @router.get("/datasets")
    async def search_datasets(
        request: Request,
        _: Annotated[Principal, Depends(current_principal)],
        q: Annotated[str | None, Query(max_length=500, description="Words to find in title, description, keywords.")] = None,
        modality: Annotated[list[str] | None, Query(description="DICOM modality, e.g. CT.")] = None,
        body_part: Annotated[list[str] | None, Query(description="DICOM body part examined.")] = None,
        region: Annotated[list[str] | None, Query()] = None,
        institution: Annotated[list[str] | None, Query(description="Holding institution id.")] = None,
        condition: Annotated[list[str] | None, Query(description="Condition code as system|code.")] = None,
        duo: Annotated[list[str] | None, Query(description="GA4GH DUO code, e.g. HMB.")] = None,
        legal_basis: Annotated[list[str] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1)] = 20,
        # Bounded so that no value overflows the query's bigint.
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> dict[str, Any]:
        settings = _settings(request)
        filters = {
            "modality": modality, "body_part": body_part, "region": region, "institution": institution,
            "condition": condition, "duo": duo, "legal_basis": legal_basis,
        }
        query = SearchQuery(
            text=q,
            filters={name: tuple(values) for name, values in filters.items() if values},
            limit=min(limit, settings.search_page_max),
            offset=offset,
        )
        async with _service(request).pool.acquire() as connection:
            result = await search(connection, query)
        return {"total": result.total, "results": result.hits, "facets": result.facets}

    @router.get("/datasets/{dataset_id}")
    async def get_dataset(
        dataset_id: str, request: Request, _: Annotated[Principal, Depends(current_principal)]
    ) -> dict[str, Any]:
        """Return a dataset with every version and its status; withdrawn datasets keep their history."""
        async with _service(request).pool.acquire() as connection:
            dataset = await repository.get_dataset(connection, dataset_id)
            if dataset is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset '{dataset_id}'")
            history = await repository.load_history(connection, dataset)
            versions = await repository.list_versions(connection, dataset_id)
        return {
            "dataset_id": dataset.dataset_id,
            "institution_id": dataset.institution_id,
            "region": dataset.region,
            "origin": dataset.origin,
            "withdrawn_at": dataset.withdrawn_at.isoformat() if dataset.withdrawn_at else None,
            "withdrawal_reason": dataset.withdrawal_reason,
            "current_version": history.current_version.version if history.searchable else None,
            "versions": [_version_summary(history, row) for row in versions],
        }

    @router.get("/datasets/{dataset_id}/versions/{version}/report")
    async def get_version_report(
        dataset_id: str,
        version: Annotated[int, FastApiPath(ge=1, le=2_147_483_647, description="Version number (an int4 column).")],
        request: Request,
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> dict[str, Any]:
        """Return the files, PIPA findings and flags of one local version (holder, DRB, operators, council)."""
        async with _service(request).pool.acquire() as connection:
            dataset = await repository.get_dataset(connection, dataset_id)
            if dataset is None or dataset.origin != "local":
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no dataset '{dataset_id}' is held in this region")
            if principal.institution != dataset.institution_id and not principal.has_any(REPORT_READER_ROLES):
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, "only the holding hospital, the DRB, operators and the council read reports"
                )
            files = await repository.list_files(connection, dataset_id, version)
            if not files:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"dataset '{dataset_id}' has no version {version}")
            findings = await repository.count_findings(connection, dataset_id, version)
            flags = await repository.list_flags(connection, dataset_id, version)
            subjects = await repository.count_subjects(connection, dataset_id, version)
        return {
            "dataset_id": dataset_id,
            "version": version,
            "subject_pseudonyms": subjects,
            "accepted_files": [_file_row(row) for row in files if row["accepted"]],
            "rejected_files": [_file_row(row) for row in files if not row["accepted"]],
            "findings": [dict(row) for row in findings],
            "flags": [_flag_row(row) for row in flags],
        }

    @router.post("/datasets/{dataset_id}/withdrawal")
    async def withdraw(
        dataset_id: str,
        body: WithdrawalRequest,
        request: Request,
        principal: Annotated[Principal, Depends(require_roles("hospital"))],
    ) -> dict[str, Any]:
        try:
            async with _service(request).unit_of_work() as context:
                event = await withdraw_dataset(context, dataset_id, _institution_of(principal), body.reason)
        except NotFound as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except NotDatasetHolder as error:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
        except DatasetRuleViolation as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        return {"dataset_id": dataset_id, "withdrawn_at": event.withdrawn_at.isoformat(), "reason": event.reason}

    @router.get("/compliance-flags")
    async def list_flags(
        request: Request,
        _: Annotated[Principal, Depends(require_roles("drb_reviewer", "council", "operator"))],
        open_only: Annotated[bool, Query(description="Only flags not yet cleared.")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """List compliance flags, newest first, without their findings (see the version report for those)."""
        rows = await _service(request).pool.fetch(
            "SELECT flag_id, dataset_id, version, institution_id, rule, severity, flagged_at, cleared_at "
            "FROM compliance_flags WHERE (NOT $1 OR cleared_at IS NULL) ORDER BY flagged_at DESC LIMIT $2",
            open_only, limit,
        )
        return {"items": [
            {**dict(row), "flagged_at": row["flagged_at"].isoformat(),
             "cleared_at": row["cleared_at"].isoformat() if row["cleared_at"] else None,
             "status": "cleared" if row["cleared_at"] else "open"}
            for row in rows
        ]}

    @router.post("/compliance-flags/{flag_id}/clearance")
    async def clear_flag(
        flag_id: str,
        body: ClearanceRequest,
        request: Request,
        _: Annotated[Principal, Depends(require_roles("drb_reviewer"))],
    ) -> dict[str, Any]:
        try:
            async with _service(request).unit_of_work() as context:
                event = await clear_compliance_flag(context, flag_id, body.note)
        except NotFound as error:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from None
        except DatasetRuleViolation as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
        return {"flag_id": flag_id, "dataset_id": event.dataset_id, "cleared_at": event.cleared_at.isoformat()}

    return router


def _command(body: RegistrationRequest, institution_id: str) -> RegisterDataset:
    try:
        return RegisterDataset(
            institution_id=institution_id,
            dataset_id=body.dataset_id,
            description=body.description,
            files=tuple(body.files),
            subjects=tuple(body.subjects),
        )
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, describe_validation_error(error)) from None


@dataclass(frozen=True)
class _OpenUpload:
    """An upload whose folders exist and whose partial file is open for writing."""

    destination: Path
    partial: Path
    writer: LimitedFileWriter


def _start_upload(settings: CatalogSettings, institution_id: str, relative: str, created_folders: list[Path]) -> _OpenUpload:
    """Check the upload's path, create the missing folders and open the partial file.

    Each folder created is appended to `created_folders`, also when this raises.
    The steps are repeated if a folder disappears meanwhile (see UPLOAD_FOLDER_ATTEMPTS).
    """
    attempt = 1
    while True:
        try:
            return _open_upload(settings, institution_id, relative, created_folders)
        except FileNotFoundError:
            if attempt == UPLOAD_FOLDER_ATTEMPTS:
                raise
            log.info("staging folder removed by a concurrent upload; retrying", institution_id=institution_id,
                     path=relative, attempt=attempt)
            attempt += 1


def _open_upload(settings: CatalogSettings, institution_id: str, relative: str, created_folders: list[Path]) -> _OpenUpload:
    try:
        area = settings.staging.create_area_of(institution_id, created_folders)
    except FileRejected as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, error.detail) from None
    destination = _upload_destination(area, relative, created_folders)
    # The partial name has a fixed length, so that every file name that fits
    # the file system can be uploaded.
    partial = destination.with_name(f".{uuid.uuid4().hex}.part")
    return _OpenUpload(destination, partial, LimitedFileWriter(partial, settings.max_file_bytes, relative))


def _upload_destination(area: Path, relative: str, created_folders: list[Path]) -> Path:
    """Return where an upload goes, after the same path checks as for registration; 409 if it exists.

    The missing folders are created, and appended to `created_folders`.
    """
    try:
        resolve_inside(area, relative)
    except FileRejected as error:
        if error.reason != RejectionReason.NOT_FOUND:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, error.detail) from None
    else:
        raise HTTPException(status.HTTP_409_CONFLICT, f"'{relative}' is already staged; choose another name")
    try:
        check_upload_name(relative)
    except FileRejected as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, error.detail) from None

    area = area.resolve()
    destination = area.joinpath(*Path(relative).parts)
    existing = destination.parent
    # The walk stops at the area, which a concurrent failed upload may have
    # just removed. create_parent_folders then raises FileNotFoundError.
    while existing != area and not existing.exists():
        existing = existing.parent
    # Checked before creating folders, so that no folder appears outside the
    # area through a symbolic link.
    if not existing.resolve().is_relative_to(area):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"'{relative}' leads outside the staging area")
    create_parent_folders(area, destination, created_folders)
    return destination


async def _receive(request: Request, upload: _OpenUpload, name: str) -> StoredFile:
    # The body goes to a temporary name and is linked into place only when
    # complete, so a half-uploaded file is never registered.
    partial, destination, writer = upload.partial, upload.destination, upload.writer
    try:
        try:
            async for chunk in request.stream():
                await asyncio.to_thread(writer.write, chunk)
            stored = writer.finish()
        except FileRejected as error:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, error.detail) from None
        except BaseException:
            writer.discard()
            raise
        if stored.size_bytes == 0:
            # Registration would reject the empty file later, so the sender learns of it now.
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"'{name}' is empty (0 bytes); send the file's content as the request body")
        try:
            os.link(partial, destination)
        except FileExistsError:
            raise HTTPException(status.HTTP_409_CONFLICT, f"'{name}' was staged by another upload meanwhile") from None
    finally:
        # After os.link the file stays at `destination`, and the temporary name is removed in every case.
        partial.unlink(missing_ok=True)
    return StoredFile(destination, stored.size_bytes, stored.sha256)


def _remove_created_folders(folders: list[Path], institution_id: str) -> None:
    try:
        remove_empty_folders(folders)
    except OSError as error:
        # The client gets the upload's own error. This one only leaves an empty folder behind.
        log.warning("failed to remove an empty staging folder of a failed upload", institution_id=institution_id,
                    error=str(error))


def _storage_error(error: OSError, institution_id: str, relative: str) -> HTTPException:
    """Return the HTTP error for a file-system error of an upload.

    The detail names the path as the client sent it, never the server's
    absolute path, and keeps the operating system's reason.
    """
    reason = os_error_reason(error)
    if error.errno in _PATH_ERRORS:
        return HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot store '{relative}': {reason}; change the path")
    if error.errno in _FULL_ERRORS:
        log.error("staging upload failed: file system full", institution_id=institution_id, path=relative,
                  error=str(error))
        return HTTPException(
            status.HTTP_507_INSUFFICIENT_STORAGE,
            f"cannot store '{relative}': {reason}; retry later or ask the operator to free space in the staging area",
        )
    log.error("staging upload failed", institution_id=institution_id, path=relative, error=str(error))
    return HTTPException(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        f"cannot store '{relative}': {reason}; ask the operator to check the catalog's log",
    )


def _registration_report(registered: RegisteredVersion) -> dict[str, Any]:
    inspection = registered.inspection
    return {
        "dataset_id": registered.dataset_id,
        "version": registered.version,
        "status": VersionStatus.PUBLISHED.value if registered.verdict.publishable else VersionStatus.BLOCKED.value,
        "figures": registered.figures.model_dump(mode="json"),
        "completeness_score": registered.completeness.total,
        "completeness": [item.__dict__ for item in registered.completeness.criteria],
        "accepted_files": [
            {"path": item.path, "format": item.format.value, "size_bytes": item.size_bytes, "warnings": list(item.warnings)}
            for item in inspection.accepted
        ],
        "rejected_files": [
            {"path": item.path, "reason": item.reason.value, "detail": item.detail} for item in inspection.rejected
        ],
        "violations": [
            {
                "rule": violation.rule.value,
                "severity": violation.severity.value,
                "findings": [item.model_dump() for item in violation.contract_findings()],
            }
            for violation in registered.verdict.violations
        ],
        "subject_pseudonyms": len(registered.subjects),
    }


def _version_summary(history, row) -> dict[str, Any]:
    pending = row["scan_status"] == "pending"
    return {
        "version": row["version"],
        "status": "pending" if pending else history.status_of(row["version"]).value,
        "title": row["description"]["title"],
        "completeness_score": row["completeness_score"],
        "figures": row["figures"],
        "registered_at": row["registered_at"].isoformat(),
        "published_at": row["published_at"].isoformat() if row["published_at"] else None,
    }


def _file_row(row) -> dict[str, Any]:
    return {key: value for key, value in dict(row).items() if value is not None and key != "accepted"}


def _flag_row(row) -> dict[str, Any]:
    flag = dict(row)
    for key in ("flagged_at", "cleared_at"):
        flag[key] = flag[key].isoformat() if flag[key] else None
    return flag
