"""Hardware, cost estimates, spending limits, per-job caps and metrics (both databases)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloudtune.domain.costs import Period, period_start, usd_to_micros
from cloudtune.domain.jobs import JobStatus, JobType, utcnow
from cloudtune.settings import HardwareSettings, LocalProviderSettings, Settings
from tests.api.routes.test_jobs import assert_envelope, wait_for_status
from tests.factories import create_job, job_body, make_dataset


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        database_url=database_url,
        reconcile_interval_seconds=0.2,
        hardware=HardwareSettings(local_per_hour_usd=Decimal("3600")),  # $1 a second
        local=LocalProviderSettings(poll_interval_seconds=0.05, cancel_grace_seconds=2),
    )


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    return job_body(make_dataset(tmp_path / "data", 2, size=16), tmp_path / "out", steps=3)


def set_clock(client: httpx.AsyncClient, when: datetime) -> None:
    client.app.state.ctx.clock = lambda: when  # type: ignore[attr-defined]


def seed_spend(client: httpx.AsyncClient, usd: str, created_at: datetime) -> None:
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    create_job(
        db,
        status=JobStatus.COMPLETED,
        created_at=created_at,
        started_at=created_at,
        completed_at=created_at + timedelta(minutes=1),
        cost_micros=usd_to_micros(usd),
        provider="replicate",
        job_type=JobType.CLOUD,
    )


async def test_hardware_profiles_and_prices(client: httpx.AsyncClient) -> None:
    profiles = {p["name"]: p for p in (await client.get("/api/cloud/hardware")).json()["hardware"]}
    assert profiles["h100"]["price_per_hour_usd"] == 5.49
    assert profiles["h100-x2"]["price_per_hour_usd"] == 10.98
    assert profiles["l40s-x8"]["gpu_count"] == 8 and profiles["l40s-x8"]["vram_gb"] == 48
    local = profiles.get("cpu") or profiles["local-gpu"]
    assert local["provider"] == "local" and local["price_per_hour_usd"] == 3600.0


@pytest.mark.trainer
async def test_block_refuses_the_submit_that_would_cross_and_accepts_next_period(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    now = utcnow()
    set_clock(client, now)
    response = await client.put(
        "/api/cloud/metrics/cost-limit",
        json={"enabled": True, "limit_usd": 10, "period": "weekly", "action": "block"},
    )
    assert response.status_code == 200, response.text
    seed_spend(client, "10.50", now - timedelta(minutes=5))
    status = (await client.get("/api/cloud/metrics/cost-limit")).json()
    assert status["spent_usd"] == 10.5 and status["exceeded"] is True
    assert (
        status["remaining_usd"] == 0
        and status["period_start"] == period_start(Period.WEEKLY, now).isoformat()
    )
    refused = await client.post("/api/cloud/jobs/submit", json=body)
    assert_envelope(refused, 402, "cost_limit_exceeded")
    detail = refused.json()["detail"]
    assert "$10.50 spent" in detail and "$10.00 weekly limit" in detail
    assert (await client.get("/api/cloud/jobs?provider=local")).json()["total"] == 0

    next_monday = period_start(Period.WEEKLY, now) + timedelta(days=7, hours=1)
    set_clock(client, next_monday)
    assert (await client.get("/api/cloud/metrics/cost-limit")).json()["spent_usd"] == 0
    accepted = await client.post("/api/cloud/jobs/submit", json=body)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["cost_limit_warning"] is None


@pytest.mark.trainer
async def test_warn_answers_with_a_warning(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await client.put(
        "/api/cloud/metrics/cost-limit",
        json={"enabled": True, "limit_usd": 5, "period": "daily", "action": "warn"},
    )
    seed_spend(client, "6", utcnow() - timedelta(seconds=30))
    response = await client.post("/api/cloud/jobs/submit", json=body)
    assert response.status_code == 200
    assert "Spending limit exceeded" in response.json()["cost_limit_warning"]
    bad = await client.put("/api/cloud/metrics/cost-limit", json={"period": "hourly"})
    assert_envelope(bad, 400, "invalid_setting")


async def test_the_estimate_uses_the_price_and_learned_speed(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    body["config"]["--max_train_steps"] = 10
    first = (await client.post("/api/cloud/jobs/preview", json=body)).json()
    assert first["estimated_cost_usd"] == pytest.approx(2.0)  # 10 steps at 5/s, $1/s
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    start = utcnow() - timedelta(hours=1)
    for _ in range(3):  # finished jobs that ran 10 steps a second
        job = create_job(
            db,
            status=JobStatus.COMPLETED,
            hardware_profile=first["hardware_profile"],
            started_at=start,
            completed_at=start + timedelta(seconds=10),
            metadata={"model_family": "reference"},
        )
        with db.write() as session:
            from cloudtune.domain.jobs import Progress
            from cloudtune.store import jobs as job_store

            job_store.update_job_fields(
                session, job.job_id, progress=Progress(step=100, total_steps=100).to_dict()
            )
    learned = (await client.post("/api/cloud/jobs/preview", json=body)).json()
    assert learned["estimated_cost_usd"] == pytest.approx(1.0)


@pytest.mark.trainer
async def test_a_per_job_cap_cancels_a_running_local_job(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    body["config"]["--max_train_steps"] = 100000
    body["max_cost_usd"] = 1.5
    job_id = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
    running = await wait_for_status(client, job_id, {"running"})
    assert running["max_cost_usd"] == 1.5
    job = await wait_for_status(client, job_id, {"cancelled", "completed", "failed"}, timeout=30)
    assert job["status"] == "cancelled"
    assert "cost cap of $1.50 reached" in job["error_message"]
    crossed = datetime.fromisoformat(job["started_at"]) + timedelta(seconds=1.5)
    late = (datetime.fromisoformat(job["completed_at"]) - crossed).total_seconds()
    interval = client.app.state.ctx.settings.reconcile_interval_seconds  # type: ignore[attr-defined]
    assert late <= interval + 1.0, f"cancelled {late:.2f}s after the cap was crossed"
    assert job["cost_usd"] >= 1.5


async def test_metrics_match_the_store(client: httpx.AsyncClient) -> None:
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    now = utcnow()
    start = now - timedelta(hours=2)
    for status, cost in (("completed", "1.25"), ("completed", "2.50"), ("failed", "0.75")):
        create_job(
            db,
            status=JobStatus(status),
            created_at=start,
            queued_at=start,
            started_at=start + timedelta(seconds=30),
            completed_at=start + timedelta(minutes=10),
            cost_micros=usd_to_micros(cost),
            provider="replicate",
            job_type=JobType.CLOUD,
        )
    create_job(db, status=JobStatus.CANCELLED, created_at=start)
    data = (await client.get("/api/metrics?days=7")).json()
    assert data["jobs_by_status"] == {"completed": 2, "failed": 1, "cancelled": 1}
    assert data["jobs_by_provider"] == {"replicate": 3, "local": 1}
    assert data["total_cost_usd"] == 4.5 and data["job_count"] == 4
    assert data["success_rate"] == 0.5
    assert data["avg_duration_seconds"] == 570.0 and data["avg_queue_wait_seconds"] == 30.0
    assert sum(d["jobs"] for d in data["cost_by_day"]) == 4
    assert sum(d["cost_usd"] for d in data["cost_by_day"]) == pytest.approx(4.5)
    assert_envelope(await client.get("/api/metrics?days=0"), 400)

    text = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.labels["status"], s.labels["provider"]): s.value
        for s in families["cloudtune_jobs"].samples
    }
    assert samples[("completed", "replicate")] == 2 and samples[("cancelled", "local")] == 1
    assert "cloudtune_job_submits" in families
