"""Hardware, cost estimates, spending limits, per-job caps and metrics (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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
    refused = await client.post("/api/cloud/jobs/submit?provider=local", json=body)
    assert_envelope(refused, 402, "cost_limit_exceeded")
    detail = refused.json()["detail"]
    assert "$10.50 spent" in detail and "$10.00 weekly limit" in detail
    assert (await client.get("/api/cloud/jobs?provider=local")).json()["total"] == 0

    next_monday = period_start(Period.WEEKLY, now) + timedelta(days=7, hours=1)
    set_clock(client, next_monday)
    assert (await client.get("/api/cloud/metrics/cost-limit")).json()["spent_usd"] == 0
    accepted = await client.post("/api/cloud/jobs/submit?provider=local", json=body)
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
    response = await client.post("/api/cloud/jobs/submit?provider=local", json=body)
    assert response.status_code == 200
    assert "Spending limit exceeded" in response.json()["cost_limit_warning"]
    bad = await client.put("/api/cloud/metrics/cost-limit", json={"period": "hourly"})
    assert_envelope(bad, 400, "invalid_setting")


async def test_the_estimate_uses_the_price_and_learned_speed(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    body["config"]["--max_train_steps"] = 10
    first = (await client.post("/api/cloud/jobs/preview?provider=local", json=body)).json()
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
    learned = (await client.post("/api/cloud/jobs/preview?provider=local", json=body)).json()
    assert learned["estimated_cost_usd"] == pytest.approx(1.0)


@pytest.mark.trainer
async def test_a_per_job_cap_cancels_a_running_local_job(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    body["config"]["--max_train_steps"] = 100000
    body["max_cost_usd"] = 1.5
    submitted = await client.post("/api/cloud/jobs/submit?provider=local", json=body)
    job_id = submitted.json()["job_id"]
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


# -- the reference server's names and paths (compatibility) ---------------------------------

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday, noon: days never cross midnight


def finished(
    client: httpx.AsyncClient,
    status: JobStatus,
    *,
    at: datetime,
    seconds: float | None,
    usd: str | None,
    cloud: bool,
) -> None:
    """A job created at `at` that ran `seconds` and cost `usd`."""
    started = at + timedelta(seconds=30)
    create_job(
        client.app.state.ctx.db,  # type: ignore[attr-defined]
        status=status,
        created_at=at,
        queued_at=at,
        started_at=started if seconds is not None else None,
        completed_at=started + timedelta(seconds=seconds) if seconds is not None else at,
        cost_micros=usd_to_micros(usd) if usd is not None else None,
        provider="replicate" if cloud else "local",
        job_type=JobType.CLOUD if cloud else JobType.LOCAL,
    )


async def test_metrics_answer_the_reference_fields_with_real_sums(
    client: httpx.AsyncClient,
) -> None:
    set_clock(client, NOW)
    empty = (await client.get("/api/metrics")).json()
    assert empty["total_cost"] == 0 and empty["job_count"] == 0 and empty["cost_by_day"] == []
    assert empty["avg_job_duration_seconds"] is None and empty["period_days"] == 30

    today, yesterday = NOW - timedelta(hours=2), NOW - timedelta(days=1)
    finished(client, JobStatus.COMPLETED, at=today, seconds=600, usd="1.25", cloud=True)
    finished(client, JobStatus.COMPLETED, at=today, seconds=1200, usd="2.50", cloud=False)
    finished(client, JobStatus.FAILED, at=today, seconds=60, usd="0.75", cloud=True)
    finished(client, JobStatus.CANCELLED, at=today, seconds=None, usd=None, cloud=False)
    finished(client, JobStatus.COMPLETED, at=yesterday, seconds=300, usd="0.40", cloud=True)
    # Outside both windows asked below: neither its cost nor its duration counts.
    old = NOW - timedelta(days=40)
    finished(client, JobStatus.COMPLETED, at=old, seconds=9000, usd="100", cloud=True)

    data = (await client.get("/api/metrics?days=7")).json()
    assert data["total_cost"] == 4.9 and data["total_cost_usd"] == 4.9
    assert data["job_count"] == 5 and data["period_days"] == 7
    # Completed jobs only: (600 + 1200 + 300) / 3.
    assert data["avg_job_duration_seconds"] == 700.0 == data["avg_duration_seconds"]
    assert data["credit_balance"] is None and data["estimated_jobs_remaining"] is None
    assert data["jobs_by_status"]["completed"] == 4  # every job, as before
    assert data["cost_by_day"] == [
        {
            "date": "2026-11-17",
            "jobs": 1,
            "total_jobs": 1,
            "completed": 1,
            "failed": 0,
            "cancelled": 0,
            "local_jobs": 0,
            "cloud_jobs": 1,
            "cost_usd": 0.4,
            "total_cost_usd": 0.4,
        },
        {
            "date": "2026-11-18",
            "jobs": 4,
            "total_jobs": 4,
            "completed": 2,
            "failed": 1,
            "cancelled": 1,
            "local_jobs": 2,
            "cloud_jobs": 2,
            "cost_usd": 4.5,
            "total_cost_usd": 4.5,
        },
    ]
    assert (await client.get("/api/cloud/metrics?days=7")).json() == data
    month = (await client.get("/api/cloud/metrics")).json()
    assert month["total_cost"] == 4.9 and month["period_days"] == 30
    assert (await client.get("/api/metrics?days=60")).json()["total_cost"] == 104.9
    assert_envelope(await client.get("/api/cloud/metrics?days=0"), 400)


async def test_the_cost_limit_status_judges_the_real_spend(client: httpx.AsyncClient) -> None:
    set_clock(client, NOW)
    seed_spend(client, "7.99", NOW - timedelta(hours=1))

    def spend(usd: str) -> None:
        seed_spend(client, usd, NOW - timedelta(minutes=30))

    off = (await client.get("/api/cloud/cost-limit/status")).json()
    assert off == {
        "enabled": False,
        "limit_amount": None,
        "period": "monthly",
        "action": "warn",
        "current_spend": 7.99,
        "percent_used": 0.0,
        "is_exceeded": False,
        "is_warning": False,
        "message": "Cost limits not configured",
    }
    limit = {"enabled": True, "limit_usd": 10, "period": "weekly", "action": "block"}
    assert (await client.put("/api/cloud/metrics/cost-limit", json=limit)).status_code == 200

    under = (await client.get("/api/cloud/cost-limit/status?provider=replicate")).json()
    assert under["enabled"] is True and under["limit_amount"] == 10.0
    assert (under["period"], under["action"]) == ("weekly", "block")
    assert under["current_spend"] == 7.99 and under["percent_used"] == 79.9
    assert not under["is_warning"] and not under["is_exceeded"] and under["message"] is None

    spend("0.01")  # exactly 8 tenths
    warned = (await client.get("/api/metrics/cost-limit/status")).json()
    assert warned["percent_used"] == 80.0 and warned["is_warning"] is True
    assert not warned["is_exceeded"]
    assert warned["message"] == "Approaching limit: $8.00 / $10.00 (weekly)"

    spend("2.05")
    over = (await client.get("/api/cloud/cost-limit/status")).json()
    assert over["current_spend"] == 10.05 and over["percent_used"] == 100.5
    assert over["is_exceeded"] is True and over["is_warning"] is False
    assert over["message"] == "Spending limit exceeded: $10.05 / $10.00 (weekly)"
    native = (await client.get("/api/cloud/metrics/cost-limit")).json()
    assert native["spent_usd"] == over["current_spend"] and native["exceeded"] is True
    assert (await client.get("/api/metrics/cost-limit/status")).json() == over
    assert_envelope(await client.get("/api/cloud/cost-limit/status?provider=nope"), 400)


async def test_hardware_options_list_every_profile_with_its_price(
    client: httpx.AsyncClient,
) -> None:
    data = (await client.get("/api/cloud/hardware-options")).json()
    options = {o["id"]: o for o in data["hardware"]}
    assert options["h100"] == {
        "id": "h100",
        "name": "H100 (80GB)",
        "provider": "replicate",
        "cost_per_second": pytest.approx(5.49 / 3600),
        "cost_per_hour": 5.49,
        "available": True,
    }
    assert options["l40s-x2"]["name"] == "2x L40S (48GB)"
    local = options.get("cpu") or options["local-gpu"]
    assert local["cost_per_second"] == 1.0 and local["provider"] == "local"
    replicate = client.app.state.ctx.providers.get("replicate")  # type: ignore[attr-defined]
    assert data["default_hardware"] == replicate.offer(None).name
    assert data["default_hardware"] in options and data["message"]
    native = (await client.get("/api/cloud/hardware")).json()["hardware"]
    assert {p["name"]: p["price_per_hour_usd"] for p in native} == {
        o["id"]: o["cost_per_hour"] for o in options.values()
    }


async def test_the_cost_estimate_uses_our_estimator(
    client: httpx.AsyncClient, body: dict[str, Any], tmp_path: Path
) -> None:
    dataset = Path(body["dataloader_config"][0]["instance_data_dir"])
    (dataset / "pad.png").write_bytes(b"\0" * (3 * 1024 * 1024 // 2))  # 1.5 MiB
    size_mb = round(sum(f.stat().st_size for f in dataset.iterdir()) / 1024 / 1024, 2)
    assert size_mb >= 1.5
    config = {**body["config"], "--max_train_steps": 10}
    saved = {"config": config, "dataloader_config": body["dataloader_config"]}
    assert (await client.put("/api/configs/ten-steps", json=saved)).status_code in (200, 201)

    # As the reference server is called: the dataloader alone. No config, so no estimate, but
    # the data's size and the default hardware's price are real.
    bare = await client.post("/api/cloud/cost-estimate", json=body["dataloader_config"])
    assert bare.status_code == 200, bare.text
    answer = bare.json()
    assert answer["has_estimate"] is False and answer["estimated_cost_usd"] is None
    assert answer["data_size_mb"] == size_mb and "config_name" in answer["message"]
    replicate = client.app.state.ctx.providers.get("replicate")  # type: ignore[attr-defined]
    default = replicate.offer(None)
    assert answer["hardware_cost_per_hour"] == default.price_per_hour_micros / 1_000_000
    assert (await client.post("/api/cloud/cost-estimate")).json()["data_size_mb"] is None

    # 10 steps at the local profile's default 5 steps/s, at $1 a second.
    local = await client.post(
        "/api/cloud/cost-estimate?provider=local&config_name=ten-steps",
        json=body["dataloader_config"],
    )
    got = local.json()
    assert got["has_estimate"] is True and got["estimated_cost_usd"] == 2.0
    assert got["avg_duration_seconds"] == 2.0 and got["hardware_cost_per_hour"] == 3600.0
    assert got["data_size_mb"] == size_mb and got["steps"] == 10
    same = await client.get("/api/cloud/cost-estimate?provider=local&config_name=ten-steps")
    assert same.json() == got  # the saved config's own dataloader
    preview = await client.post("/api/cloud/jobs/preview?provider=local", json=saved)
    assert preview.json()["estimated_cost_usd"] == got["estimated_cost_usd"]

    # On Replicate's H100: 10 steps at its default speed, at $5.49 an hour.
    h100 = (
        await client.post(
            "/api/cloud/cost-estimate?hardware_profile=h100",
            json={"config_name_to_load": "ten-steps"},
        )
    ).json()
    h100_profile = replicate.offer("h100")
    seconds = 10 / h100_profile.default_steps_per_second
    assert h100["has_estimate"] is True and h100["hardware_cost_per_hour"] == 5.49
    assert h100["estimated_cost_usd"] == pytest.approx(5.49 * seconds / 3600, abs=1e-6)
    assert h100["avg_duration_seconds"] == round(seconds)

    no_steps = {"config": {"--model_family": "reference"}}
    answer = (await client.post("/api/cloud/cost-estimate", json=no_steps)).json()
    assert answer["has_estimate"] is False and "max_train_steps" in answer["message"]


async def test_the_cost_estimate_refuses_what_it_cannot_take(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    home = client.app.state.ctx.settings.home  # type: ignore[attr-defined]
    for path in (str(home), "/no/such/folder"):  # the server's own state; nothing at all
        outside = [{**body["dataloader_config"][0], "instance_data_dir": path}]
        refused = await client.post("/api/cloud/cost-estimate", json=outside)
        assert_envelope(refused, 400, "path_not_allowed")
    unknown = await client.post("/api/cloud/cost-estimate", json={"colour": "red"})
    assert_envelope(unknown, 400, "unsupported_field")
    assert_envelope(await client.post("/api/cloud/cost-estimate", json=5), 400)
    missing = await client.get("/api/cloud/cost-estimate?config_name=no-such-config")
    assert_envelope(missing, 404)
    both = await client.post(
        "/api/cloud/cost-estimate?config_name=a", json={"config_name_to_load": "b"}
    )
    assert_envelope(both, 400)
    assert_envelope(await client.get("/api/cloud/cost-estimate?provider=nope"), 400)
