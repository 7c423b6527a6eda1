"""Finding the local patient ids in a hospital's files, so the publisher can pseudonymize them.

FHIR: Patient resource ids and every "Patient/<id>" reference, in JSON
resources, Bundles and NDJSON bulk exports. DICOM: PatientID of each instance.
"""

import json
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError


def _walk_references(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            yield reference.split("/", 1)[1]
        for item in value.values():
            yield from _walk_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_references(item)


def _fhir_patients(resource: dict) -> Iterator[str]:
    if resource.get("resourceType") == "Patient" and resource.get("id"):
        yield str(resource["id"])
    if resource.get("resourceType") == "Bundle":
        for entry in resource.get("entry", []):
            inner = entry.get("resource") or {}
            if inner.get("resourceType") == "Patient":
                # Synthea bundles address patients by urn:uuid fullUrl as well as by id.
                yield str(inner.get("id") or entry.get("fullUrl", "").removeprefix("urn:uuid:"))
            else:
                yield from _walk_references(inner)
        return
    yield from _walk_references(resource)


def local_patient_ids(path: Path) -> set[str]:
    """Local patient ids found in one file; an unreadable file raises ValueError naming it."""
    name = path.name.lower()
    if name.endswith(".ndjson"):
        found: set[str] = set()
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    found |= set(_fhir_patients(json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ValueError(f"{path}: line {number} is not JSON ({error.msg})") from None
        return found
    if name.endswith(".json"):
        try:
            return set(_fhir_patients(json.loads(path.read_text(encoding="utf-8"))))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError) as error:
        raise ValueError(f"{path}: not a FHIR JSON/NDJSON or DICOM file ({error})") from None
    if "DirectoryRecordSequence" in dataset:  # a DICOMDIR lists its patients in PATIENT records
        return {
            str(record.PatientID)
            for record in dataset.DirectoryRecordSequence
            if record.get("DirectoryRecordType") == "PATIENT" and record.get("PatientID")
        }
    patient_id = str(dataset.get("PatientID", "") or "")
    return {patient_id} if patient_id else set()
