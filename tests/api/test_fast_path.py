"""The fast path of the job list and job detail (cloudtune.api.edge + cloudtune.api.job_reads):
its bytes match the declared response models, and the edge's checks still apply to it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import orjson
from pydantic import BaseModel

from cloudtune.api.schemas import JobListResponse, JobOut, JobResponse, ProgressOut
from cloudtune.domain.jobs import Job, JobStatus, JobType, Progress, utcnow
from cloudtune.store.db import Database
from tests.factories import create_job


def _variety(db: Database) -> list[Job]:
    """Every status on both kinds of provider; with and without cost, progress, outputs, errors."""
    now = utcnow()
    jobs = []
    for i, status in enumerate(JobStatus):
        for provider, kind in (("local", JobType.LOCAL), ("replicate", JobType.CLOUD)):
            started = now - timedelta(minutes=10) if status not in ("pending", "queued") else None
            rich = i % 2 == 0
            jobs.append(
                create_job(
                    db,
                    created_at=now - timedelta(minutes=30, seconds=len(jobs)),
                    job_type=kind,
                    provider=provider,
                    status=status,
                    config_name="cfg" if rich else None,
                    tracker_run_name=f"run-{i}",
                    user_id=None,
                    queued_at=now - timedelta(minutes=20) if status != "pending" else None,
                    started_at=started,
                    completed_at=now if status.is_terminal and started else None,
                    hardware_type="H100" if provider == "replicate" else None,
                    hardware_profile="h100" if provider == "replicate" else "local",
                    price_per_hour_micros=5_490_000 if provider == "replicate" else None,
                    estimated_cost_micros=1_830_000 if provider == "replicate" else None,
                    cost_micros=915_000 if rich and status.is_terminal else None,
                    max_cost_micros=10_000_000 if rich else None,
                    progress=Progress(
                        step=7,
                        total_steps=30,
                        loss=0.5,
                        lr=1e-4,
                        epoch=1.5,
                        eta_seconds=12.0,
                        updated_at=now,
                    )
                    if rich
                    else Progress(),
                    error_message="trainer exited with 1" if status == "failed" else None,
                    output_url="/data/out" if rich else None,
                    outputs=[{"name": "lora.safetensors", "bytes": 12}] if rich else [],
                    queue_position=2 if status == "queued" else None,
                    metadata={"model_family": "reference", "n": i} if rich else {},
                    config_snapshot={"config": {"--max_train_steps": 30}} if rich else None,
                )
            )
    return jobs


def _exact(model: type[BaseModel], data: Any, path: str = "$") -> None:
    """Every field of `model` present, nothing else (the models ignore extra keys)."""
    assert set(data) == set(model.model_fields), path


async def test_list_and_detail_bytes_match_their_declared_models(
    client: httpx.AsyncClient,
) -> None:
    db: Database = client.app.state.ctx.db  # type: ignore[attr-defined]
    jobs = _variety(db)
    answer = await client.get("/api/cloud/jobs", params={"limit": 500})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    JobListResponse.model_validate_json(answer.content, strict=True)
    listing = orjson.loads(answer.content)
    _exact(JobListResponse, listing)
    assert listing["total"] == len(jobs) == len(listing["jobs"])
    for item in listing["jobs"]:
        _exact(JobOut, {**item, "config_snapshot": None}, item["job_id"])
        _exact(ProgressOut, item["progress"], item["job_id"])
        assert "config_snapshot" not in item  # the list leaves the snapshot out

    by_id = {job.job_id: job for job in jobs}
    for item in listing["jobs"]:
        answer = await client.get(f"/api/cloud/jobs/{item['job_id']}")
        assert answer.status_code == 200
        JobResponse.model_validate_json(answer.content, strict=True)
        detail = orjson.loads(answer.content)
        _exact(JobResponse, detail)
        _exact(JobOut, detail["job"], item["job_id"])
        job = by_id[item["job_id"]]
        assert detail["job"]["config_snapshot"] == job.config_snapshot
        assert detail["job"]["status"] == item["status"] == job.status.value
        assert detail["job"]["error_message"] == job.error_message
        assert detail["job"]["outputs"] == job.outputs
        expected_cost = None if job.billed_cost_micros() is None else job.billed_cost_micros()
        if job.completed_at is not None and expected_cost is not None:
            assert detail["job"]["cost_usd"] == expected_cost / 1_000_000


async def test_errors_come_in_the_envelope(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/cloud/jobs/no-such-job")
    assert missing.status_code == 404 and missing.json()["success"] is False
    assert missing.json()["code"] == "job_not_found"
    bad = await client.get("/api/cloud/jobs", params={"offset": -1})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_filter"
    bad = await client.get("/api/cloud/jobs", params={"status": "nonsense"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_filter"


async def test_the_edge_checks_apply_to_the_fast_path(client: httpx.AsyncClient) -> None:
    for path in ("/api/cloud/jobs", "/api/cloud/jobs/some-id"):
        foreign = await client.get(path, headers={"Host": "rebinding.example"})
        assert foreign.status_code == 400 and foreign.json()["code"] == "host_not_allowed"
        page = await client.get(path, headers={"Origin": "https://evil.example"})
        assert page.status_code == 403 and page.json()["code"] == "cross_origin_refused"
        # A GET that carries a body is left to the body limit, like any other request.
        settings = client.app.state.ctx.settings  # type: ignore[attr-defined]
        big = b"x" * (settings.max_body_bytes + 1)
        heavy = await client.request("GET", path, content=big)
        assert heavy.status_code == 413 and heavy.json()["code"] == "payload_too_large"
