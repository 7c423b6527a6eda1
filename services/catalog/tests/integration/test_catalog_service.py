"""The catalog service against the real Kafka broker and PostgreSQL: registration, scan, search, lifecycle."""

import errno
import os
from datetime import UTC, datetime

import pytest
from medgov_shared.contracts.events.catalog import (
    MAX_SUBJECTS_PER_CHUNK,
    DatasetFigures,
    DatasetPublished,
    DatasetRegistered,
    DatasetWithdrawn,
)
from medgov_shared.contracts.events.inbound import RegisterDataset
from medgov_shared.contracts.pseudonym import pseudonymize
from medgov_shared.contracts.types import Region
from medgov_shared.messaging import dlq
from medgov_shared.testing.institutions import throwaway_hospital
from medgov_shared.testing.services import http_client, running, unique_name, wait_until

from medgov_catalog import api
from medgov_catalog.domain.files import LimitedFileWriter
from medgov_catalog.domain.staging import create_parent_folders
from medgov_catalog.main import build_service

from .conftest import CATALOG_TOPIC, read_events, read_first_records

pytestmark = pytest.mark.integration

CLEAN_FILES = [
    "synthea/bulk-export-10-patients/Immunization.000.ndjson",
    "synthea/bulk-export-10-patients/AllergyIntolerance.000.ndjson",
]


def clean_registration(institution_id, dataset_id, describe):  # type: ignore[no-untyped-def]
    """A RegisterDataset of the clean sample files, described as coming from `institution_id`."""
    return RegisterDataset(
        institution_id=institution_id,
        dataset_id=dataset_id,
        description=describe(institution_id),
        files=tuple(CLEAN_FILES),
        subjects=(),
    )


def _service(settings, topics):
    return build_service(settings, consumes=[topics.catalog, topics.inbound], consume_inbound=False)


async def test_inbound_fileset_flagged_field_by_field(infra, topics, catalog_settings, describe, token):
    dataset_id = unique_name("ds-fileset").replace("_", "-")
    command = RegisterDataset(
        institution_id=topics.institution,
        dataset_id=dataset_id,
        description=describe(topics.institution, distribution_formats=("application/dicom",)),
        files=("dicom/fileset/DICOMDIR",),
        subjects=(),
    )

    async with running(_service(catalog_settings(), topics)) as service:
        await topics.publish(topics.inbound, [command], source=f"medgov/hospital/{topics.institution}")
        status = await wait_until(
            lambda: service.pool.fetchval("SELECT scan_status FROM dataset_versions WHERE dataset_id = $1", dataset_id),
            message="registered version",
        )
        async with http_client(service) as client:
            report = await client.get(f"/datasets/{dataset_id}/versions/1/report", headers=token(["drb_reviewer"]))
            flags = await client.get("/compliance-flags", params={"open_only": "true"}, headers=token(["council"]))
            flags_as_hospital = await client.get("/compliance-flags", headers=token(["hospital"]))
        events = await read_events(infra.kafka_bootstrap_servers, CATALOG_TOPIC, dataset_id, expected=2)

    assert status == "blocked"
    assert [event.type for event in events] == ["DatasetRegistered", "ComplianceViolationFlagged"]
    assert events[0].data["figures"]["instance_count"] == 31
    assert events[0].data["figures"]["modalities"] == ["CR", "CT", "MR"]
    flag = events[1].data
    assert flag["rule"] == "direct_identifier_in_pseudonymized_dataset"
    assert flag["severity"] == "high"
    flagged = {(item["file"], item["kind"]) for item in flag["findings"]}
    assert ("dicom/fileset/DICOMDIR", "name") in flagged
    assert ("dicom/fileset/77654033/CR1/6154", "patient_id") in flagged
    assert report.status_code == 200
    assert len(report.json()["accepted_files"]) == 32
    assert report.json()["flags"][0]["rule"] == "direct_identifier_in_pseudonymized_dataset"
    listed = [item for item in flags.json()["items"] if item["dataset_id"] == dataset_id]
    assert [(item["status"], item["severity"]) for item in listed] == [("open", "high")]
    assert flags_as_hospital.status_code == 403


async def test_inbound_command_from_wrong_publisher_dead_lettered(infra, topics, catalog_settings, describe):
    dataset_id = unique_name("ds-bad").replace("_", "-")
    command = RegisterDataset(
        institution_id=topics.institution,
        dataset_id=dataset_id,
        description=describe("knuh"),
        files=tuple(CLEAN_FILES),
        subjects=(),
    )

    async with running(_service(catalog_settings(), topics)) as service:
        await topics.publish(topics.inbound, [command], source=f"medgov/hospital/{topics.institution}")
        letters = await read_first_records(infra.kafka_bootstrap_servers, f"{topics.inbound}.dlq")
        stored = await service.pool.fetchval("SELECT count(*) FROM datasets WHERE dataset_id = $1", dataset_id)

    headers = dlq.headers_dict(letters[0].headers)
    assert "description.publisher is 'knuh'" in headers[dlq.ERROR]
    assert stored == 0


async def test_inbound_command_from_unknown_institution_dead_lettered(infra, unregistered_topics, catalog_settings, describe):
    topics = unregistered_topics
    dataset_id = unique_name("ds-unknown").replace("_", "-")
    command = clean_registration(topics.institution, dataset_id, describe)

    async with running(_service(catalog_settings(), topics)) as service:
        await topics.publish(topics.inbound, [command], source=f"medgov/hospital/{topics.institution}")
        letters = await read_first_records(infra.kafka_bootstrap_servers, f"{topics.inbound}.dlq")
        stored = await service.pool.fetchval("SELECT count(*) FROM datasets WHERE dataset_id = $1", dataset_id)
        versions = await service.pool.fetchval("SELECT count(*) FROM dataset_versions WHERE dataset_id = $1", dataset_id)
        outbox = await service.pool.fetchval("SELECT count(*) FROM outbox WHERE key = $1", dataset_id)

    headers = dlq.headers_dict(letters[0].headers)
    assert headers[dlq.REASON] == "rejected"
    assert f"RegisterDataset '{dataset_id}' rejected" in headers[dlq.ERROR]
    assert f"institution '{topics.institution}' is not registered" in headers[dlq.ERROR]
    assert "Register it as a hospital" in headers[dlq.ERROR]
    assert stored == 0
    assert versions == 0
    assert outbox == 0


async def test_upload_by_non_hospital_rejected(topics, catalog_settings, describe, token):
    vendor = token(["hospital"], institution="vendor-medvision")
    dataset_id = unique_name("ds-vendor").replace("_", "-")
    body = {
        "dataset_id": dataset_id,
        "description": describe("vendor-medvision").model_dump(mode="json"),
        "files": CLEAN_FILES,
    }

    async with running(_service(catalog_settings(), topics)) as service, http_client(service) as client:
        response = await client.post("/datasets", json=body, headers=vendor)
        stored = await service.pool.fetchval("SELECT count(*) FROM datasets WHERE dataset_id = $1", dataset_id)

    assert response.status_code == 422
    assert "institution 'vendor-medvision' is registered as a vendor" in response.json()["detail"]
    assert stored == 0


async def test_staging_upload_needs_registered_hospital(topics, catalog_settings, token, tmp_path):
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        vendor = await client.put("/staging/a.ndjson", content=b"{}\n", headers=token(["hospital"], institution="vendor-medvision"))
        unknown = await client.put("/staging/a.ndjson", content=b"{}\n", headers=token(["hospital"], institution="t-nowhere"))

    assert vendor.status_code == 403
    assert "institution 'vendor-medvision' is registered as a vendor" in vendor.json()["detail"]
    assert unknown.status_code == 403
    assert "institution 't-nowhere' is not registered on this platform" in unknown.json()["detail"]
    assert list(tmp_path.iterdir()) == []


async def test_extra_hospital_registers_in_its_region(infra, unregistered_topics, register_institutions, catalog_settings, describe):
    topics = unregistered_topics
    register_institutions(throwaway_hospital(topics.institution, Region.GWANGJU))
    dataset_id = unique_name("ds-extra").replace("_", "-")
    command = clean_registration(topics.institution, dataset_id, describe)

    async with running(_service(catalog_settings(), topics)) as service:
        await topics.publish(topics.inbound, [command], source=f"medgov/hospital/{topics.institution}", region="gwangju")
        region = await wait_until(
            lambda: service.pool.fetchval("SELECT region FROM datasets WHERE dataset_id = $1", dataset_id),
            message="dataset of the extra hospital stored",
        )
        events = await read_events(infra.kafka_bootstrap_servers, CATALOG_TOPIC, dataset_id, expected=1)

    assert region == "gwangju"
    assert events[0].type == "DatasetRegistered"
    assert events[0].data["institution_id"] == topics.institution
    assert events[0].data["region"] == "gwangju"


async def test_upload_register_search_and_report(infra, topics, catalog_settings, describe, token, sample_data, tmp_path):
    institution = topics.institution
    (tmp_path / institution).mkdir()
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=institution)
    dataset_id = unique_name("ds-imm").replace("_", "-")
    uploads = [*CLEAN_FILES, "synthea/bulk-export-10-patients/log.ndjson"]

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        for relative in uploads:
            content = (sample_data / relative).read_bytes()
            response = await client.put(f"/staging/upload/{relative.rsplit('/', 1)[1]}", content=content, headers=hospital)
            assert response.status_code == 201, response.text
        body = {
            "dataset_id": dataset_id,
            "description": describe(institution, keywords=["immunization", "백신", "synthea"]).model_dump(mode="json"),
            "files": [f"upload/{name.rsplit('/', 1)[1]}" for name in uploads],
            "subjects": [],
        }
        registered = await client.post("/datasets", json=body, headers=hospital)
        applicant = token(["applicant"], institution="vendor-medvision")
        by_text = await client.get("/datasets", params={"q": "immunizations"}, headers=applicant)
        by_hangul = await client.get("/datasets", params={"q": "백신", "duo": "HMB"}, headers=applicant)
        by_wrong_facet = await client.get("/datasets", params={"q": "immunizations", "modality": "CT"}, headers=applicant)
        duplicate = await client.put("/staging/upload/log.ndjson", content=b"{}", headers=hospital)
        escape = await client.put("/staging/../outside.json", content=b"{}", headers=hospital)

    assert registered.status_code == 201, registered.text
    report = registered.json()
    assert report["status"] == "published"
    assert report["figures"]["record_count"] == 172
    assert report["rejected_files"] == [
        {
            "path": "upload/log.ndjson",
            "reason": "not_fhir",
            "detail": "'upload/log.ndjson' line 1: not a FHIR resource (JSON without a 'resourceType' string)",
        }
    ]
    assert [hit["dataset_id"] for hit in by_text.json()["results"]].count(dataset_id) == 1
    assert dataset_id in [hit["dataset_id"] for hit in by_hangul.json()["results"]]
    assert {"value": "HMB", "count": by_hangul.json()["total"]} in by_hangul.json()["facets"]["duo"]
    assert dataset_id not in [hit["dataset_id"] for hit in by_wrong_facet.json()["results"]]
    assert duplicate.status_code == 409
    assert escape.status_code in (400, 404)


async def test_first_upload_creates_private_area(topics, catalog_settings, token, tmp_path):
    institution = topics.institution
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=institution)

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        first = await client.put("/staging/ct/series-1/first.ndjson", content=b'{"resourceType": "Patient"}\n',
                                 headers=hospital)

    assert first.status_code == 201, first.text
    area = tmp_path / institution
    assert (area / "ct" / "series-1" / "first.ndjson").read_bytes() == b'{"resourceType": "Patient"}\n'
    assert area.stat().st_mode & 0o777 == 0o700
    assert (area / "ct").stat().st_mode & 0o777 == 0o700


async def test_upload_names_and_empty_body_rejected(topics, catalog_settings, token, tmp_path):
    institution = topics.institution
    (tmp_path / institution).mkdir()
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=institution)
    content = b'{"resourceType": "Patient"}\n'

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        double_slash = await client.put("/staging/ct//first.ndjson", content=content, headers=hospital)
        hidden = await client.put("/staging/.hidden.ndjson", content=content, headers=hospital)
        hidden_folder = await client.put("/staging/ct/.cache/first.ndjson", content=content, headers=hospital)
        empty = await client.put("/staging/empty.ndjson", content=b"", headers=hospital)
        not_utf8 = await client.put("/staging/%ff%fe.ndjson", content=content, headers=hospital)

    assert double_slash.status_code == 400
    assert "has an empty folder name" in double_slash.json()["detail"]
    assert hidden.status_code == 400
    assert "starting with '.'" in hidden.json()["detail"]
    assert hidden_folder.status_code == 400
    assert empty.status_code == 400
    assert "'empty.ndjson' is empty (0 bytes)" in empty.json()["detail"]
    assert not_utf8.status_code == 400
    assert "bytes that are not UTF-8" in not_utf8.json()["detail"]
    assert list((tmp_path / institution).iterdir()) == []


async def test_out_of_range_numbers_rejected(topics, catalog_settings, token):
    settings = catalog_settings()
    applicant = token(["applicant"], institution="vendor-medvision")

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        offset = await client.get("/datasets", params={"offset": "99999999999999999999"}, headers=applicant)
        version = await client.get("/datasets/ds-knuh-x/versions/99999999999999/report", headers=applicant)

    assert offset.status_code == 422
    assert version.status_code == 422


async def test_oversized_upload_rejected_and_removed(topics, catalog_settings, token, tmp_path):
    institution = topics.institution
    (tmp_path / institution).mkdir()
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True, max_file_bytes=1000)
    hospital = token(["hospital"], institution=institution)

    async def body():
        for _ in range(10):
            yield b"x" * 500

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        streamed = await client.put("/staging/big.dcm", content=body(), headers=hospital)
        declared = await client.put("/staging/big2.dcm", content=b"x" * 1001, headers=hospital)

    assert streamed.status_code == 413
    assert "passed the limit of 1000 bytes" in streamed.json()["detail"]
    assert declared.status_code == 413
    assert list((tmp_path / institution).iterdir()) == []


async def test_rejected_uploads_leave_no_folders(topics, catalog_settings, token, tmp_path):
    institution = topics.institution
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True, max_file_bytes=1000)
    hospital = token(["hospital"], institution=institution)
    content = b'{"resourceType": "Patient"}\n'

    async def oversized_body():
        for _ in range(10):
            yield b"x" * 500

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        bad_name = await client.put("/staging/ct/.cache/first.ndjson", content=content, headers=hospital)
        empty = await client.put("/staging/ct/series-1/empty.ndjson", content=b"", headers=hospital)
        oversized = await client.put("/staging/ct/series-1/big.dcm", content=oversized_body(), headers=hospital)
        # 'mri' does not exist, so the path resolves as not found and the long name fails only when created.
        long_folder = await client.put(f"/staging/mri/{'f' * 300}/first.ndjson", content=content, headers=hospital)

    assert bad_name.status_code == 400
    assert empty.status_code == 400
    assert oversized.status_code == 413
    assert long_folder.status_code == 400
    assert list(tmp_path.iterdir()) == []


async def test_rejected_upload_keeps_existing_folders(topics, catalog_settings, token, tmp_path):
    area = tmp_path / topics.institution
    (area / "ct").mkdir(parents=True)
    (area / "mri").mkdir()
    (area / "mri" / "a.dcm").write_bytes(b"x")
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=topics.institution)

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        into_empty_folder = await client.put("/staging/ct/series-1/empty.ndjson", content=b"", headers=hospital)
        into_full_folder = await client.put("/staging/mri/series-1/empty.ndjson", content=b"", headers=hospital)

    assert into_empty_folder.status_code == 400
    assert into_full_folder.status_code == 400
    assert sorted(path.name for path in area.iterdir()) == ["ct", "mri"]
    assert list((area / "ct").iterdir()) == []
    assert [path.name for path in (area / "mri").iterdir()] == ["a.dcm"]


async def test_upload_retries_after_area_removed(topics, catalog_settings, token, tmp_path, monkeypatch):
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=topics.institution)
    calls = []

    def remove_area_once(area, destination, created_folders):
        # Stands in for a failed upload in another replica that removes the new, still empty area.
        if not calls:
            area.rmdir()
        calls.append(area)
        create_parent_folders(area, destination, created_folders)

    monkeypatch.setattr(api, "create_parent_folders", remove_area_once)
    async with running(_service(settings, topics)) as service, http_client(service) as client:
        response = await client.put("/staging/ct/first.ndjson", content=b'{"resourceType": "Patient"}\n', headers=hospital)

    assert response.status_code == 201, response.text
    assert len(calls) == 2
    assert (tmp_path / topics.institution / "ct" / "first.ndjson").read_bytes() == b'{"resourceType": "Patient"}\n'


async def test_upload_os_errors_hide_staging_root(topics, catalog_settings, token, tmp_path):
    institution = topics.institution
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=institution)
    content = b'{"resourceType": "Patient"}\n'
    long_file = f"ct/{'n' * 300}.ndjson"
    long_folder = f"ct/{'f' * 300}/first.ndjson"
    # 'mri' does not exist, so the path resolves as not found and the long name fails only when created.
    long_new_folder = f"mri/{'f' * 300}/first.ndjson"

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        first = await client.put("/staging/ct/first.ndjson", content=content, headers=hospital)
        through_file = await client.put("/staging/ct/first.ndjson/second.ndjson", content=content, headers=hospital)
        long_file_name = await client.put(f"/staging/{long_file}", content=content, headers=hospital)
        long_folder_name = await client.put(f"/staging/{long_folder}", content=content, headers=hospital)
        long_new_folder_name = await client.put(f"/staging/{long_new_folder}", content=content, headers=hospital)

    assert first.status_code == 201, first.text
    for response in (through_file, long_file_name, long_folder_name, long_new_folder_name):
        assert response.status_code == 400, response.text
        assert str(tmp_path) not in response.text
    assert "'ct/first.ndjson/second.ndjson'" in through_file.json()["detail"]
    assert "not a directory" in through_file.json()["detail"]
    assert f"'{long_file}'" in long_file_name.json()["detail"]
    assert "file name too long" in long_file_name.json()["detail"]
    assert f"'{long_folder}'" in long_folder_name.json()["detail"]
    assert "file name too long" in long_folder_name.json()["detail"]
    assert f"'{long_new_folder}'" in long_new_folder_name.json()["detail"]
    assert "file name too long" in long_new_folder_name.json()["detail"]


async def test_full_disk_upload_leaves_nothing(topics, catalog_settings, token, tmp_path, monkeypatch):
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=topics.institution)

    def write_to_full_disk(self, chunk):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path))

    def discard_without_removing(self):
        # As when close() fails to flush buffered bytes to a full disk.
        self._stream.close()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(LimitedFileWriter, "write", write_to_full_disk)
    monkeypatch.setattr(LimitedFileWriter, "discard", discard_without_removing)
    async with running(_service(settings, topics)) as service, http_client(service) as client:
        response = await client.put("/staging/ct/series-1/first.ndjson", content=b'{"resourceType": "Patient"}\n',
                                    headers=hospital)

    assert response.status_code == 507
    assert "cannot store 'ct/series-1/first.ndjson': no space left on device" in response.json()["detail"]
    assert str(tmp_path) not in response.text
    assert list(tmp_path.iterdir()) == []


async def test_upload_name_near_file_system_limit(topics, catalog_settings, token, tmp_path):
    # A 250-character name fits Linux's NAME_MAX of 255 bytes, but a partial file name that embeds it would not.
    name = f"{'n' * 243}.ndjson"
    settings = catalog_settings(staging_root=tmp_path, staging_per_institution=True)
    hospital = token(["hospital"], institution=topics.institution)

    async with running(_service(settings, topics)) as service, http_client(service) as client:
        response = await client.put(f"/staging/{name}", content=b'{"resourceType": "Patient"}\n', headers=hospital)

    assert response.status_code == 201, response.text
    assert [path.name for path in (tmp_path / topics.institution).iterdir()] == [name]


async def test_versions_kept_and_withdrawal_final(topics, catalog_settings, describe, token):
    institution = topics.institution
    hospital = token(["hospital"], institution=institution)
    dataset_id = unique_name("ds-life").replace("_", "-")
    body = {
        "dataset_id": dataset_id,
        "description": describe(institution).model_dump(mode="json"),
        "files": CLEAN_FILES,
    }

    async with running(_service(catalog_settings(), topics)) as service, http_client(service) as client:
        first = await client.post("/datasets", json=body, headers=hospital)
        second = await client.post("/datasets", json={**body, "files": CLEAN_FILES[:1]}, headers=hospital)
        other = await client.post(
            f"/datasets/{dataset_id}/withdrawal", json={"reason": "not mine"}, headers=token(["hospital"], "knuh")
        )
        withdrawn = await client.post(
            f"/datasets/{dataset_id}/withdrawal", json={"reason": "Source system retired"}, headers=hospital
        )
        history = await client.get(f"/datasets/{dataset_id}", headers=hospital)
        found = await client.get("/datasets", params={"institution": institution}, headers=hospital)
        again = await client.post("/datasets", json=body, headers=hospital)

    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert other.status_code == 403
    assert withdrawn.status_code == 200
    versions = history.json()["versions"]
    assert [(item["version"], item["status"]) for item in versions] == [(1, "withdrawn"), (2, "withdrawn")]
    assert versions[1]["figures"]["record_count"] == 161
    assert history.json()["withdrawal_reason"] == "Source system retired"
    assert found.json()["total"] == 0
    assert again.status_code == 422
    assert "was withdrawn" in again.json()["detail"]


async def test_remote_region_datasets_indexed(topics, catalog_settings, describe, token):
    dataset_id = unique_name("ds-gwangju").replace("_", "-")
    now = datetime.now(UTC)
    figures = DatasetFigures(
        resource_counts={}, subject_count=40, record_count=1200, condition_codes=("http://snomed.info/sct|254637007",),
        observation_codes=(), modalities=("CT",), body_parts=("CHEST",), study_count=40, series_count=80,
        instance_count=1200, character_sets=("ISO 2022 IR 149",),
    )
    registered = DatasetRegistered(
        dataset_id=dataset_id, version=1, institution_id="jnuh", region="gwangju",
        description=describe("jnuh", title="폐암 흉부 CT", keywords=("lung", "CT")), figures=figures,
        completeness_score=90, registered_at=now,
    )
    published = DatasetPublished(
        dataset_id=dataset_id, version=1, institution_id="jnuh", region="gwangju", title="폐암 흉부 CT",
        duo_codes=("HMB",), legal_basis="pseudonymized_research", completeness_score=90, record_count=1200,
        subject_count=40, published_at=now,
    )
    withdrawn = DatasetWithdrawn(dataset_id=dataset_id, institution_id="jnuh", reason="retired", withdrawn_at=now)
    reader = token(["applicant"], institution="vendor-gwangai")

    async with running(_service(catalog_settings(), topics)) as service, http_client(service) as client:
        await topics.publish(topics.catalog, [registered, published], source="medgov/catalog", region="gwangju")

        async def indexed():
            response = await client.get("/datasets", params={"region": "gwangju", "modality": "CT"}, headers=reader)
            return dataset_id in [hit["dataset_id"] for hit in response.json()["results"]] and response.json()

        result = await wait_until(indexed, message="remote dataset in the index")
        by_condition = await client.get(
            "/datasets", params={"condition": "http://snomed.info/sct|254637007", "q": "폐암"}, headers=reader
        )
        await topics.publish(topics.catalog, [withdrawn], source="medgov/catalog", region="gwangju")

        async def removed():
            response = await client.get("/datasets", params={"region": "gwangju"}, headers=reader)
            return dataset_id not in [hit["dataset_id"] for hit in response.json()["results"]]

        await wait_until(removed, message="withdrawn remote dataset removed from the index")
        detail = await client.get(f"/datasets/{dataset_id}", headers=reader)

    hit = next(item for item in result["results"] if item["dataset_id"] == dataset_id)
    assert hit["origin"] == "remote"
    assert hit["institution_id"] == "jnuh"
    assert dataset_id in [item["dataset_id"] for item in by_condition.json()["results"]]
    assert detail.json()["withdrawal_reason"] == "retired"
    assert detail.json()["origin"] == "remote"


@pytest.mark.slow
async def test_200k_subjects_published_in_chunks(infra, topics, catalog_settings, describe, token):
    subjects = [pseudonymize(f"MRN{index:07d}", region="daegu", key=b"k" * 32) for index in range(200_000)]
    institution = topics.institution
    dataset_id = unique_name("ds-big").replace("_", "-")
    body = {
        "dataset_id": dataset_id,
        "description": describe(institution).model_dump(mode="json"),
        "files": CLEAN_FILES[:1],
        "subjects": subjects,
    }

    async with running(_service(catalog_settings(), topics)) as service, http_client(service) as client:
        response = await client.post("/datasets", json=body, headers=token(["hospital"], institution=institution), timeout=120)
        stored = await service.pool.fetchval("SELECT count(*) FROM dataset_subjects WHERE dataset_id = $1", dataset_id)
        sizes = await service.pool.fetch(
            "SELECT event_type, length(value) AS size FROM outbox WHERE key = $1 ORDER BY position", dataset_id
        )
        events = await read_events(infra.kafka_bootstrap_servers, CATALOG_TOPIC, dataset_id, expected=42, timeout_s=60)

    chunks = [event for event in events if event.type == "DatasetSubjectsAdded"]
    assert response.status_code == 201, response.text[:500]
    assert stored == 200_000
    assert len(chunks) == 200_000 // MAX_SUBJECTS_PER_CHUNK
    assert sum(len(event.data["subjects"]) for event in chunks) == 200_000
    assert {event.data["chunk_count"] for event in chunks} == {40}
    assert max(row["size"] for row in sizes) < 1_000_000
    assert events[0].type == "DatasetRegistered"
    assert events[-1].type == "DatasetPublished"
