"""Paths of the reference server that its scripts call, answered in its shapes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from cloudtune.domain.jobs import JobStatus
from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import create_job, job_body, make_dataset


async def test_health_paths_answer_as_health_does(client: httpx.AsyncClient) -> None:
    own = (await client.get("/health")).json()
    for path in ("/api/cloud/health", "/health/ready"):
        answer = await client.get(path)
        assert answer.status_code == 200 and answer.json() == own
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json() == {"status": "healthy"}


async def test_auth_check_says_who_is_calling(client: httpx.AsyncClient) -> None:
    local = await client.get("/api/auth/check")
    assert local.json() == {
        "authenticated": True,
        "user_id": None,
        "username": "local",
        "is_admin": True,
    }
    admin = await setup_admin(client)
    olga = await add_user(client, admin, "olga", "researcher")
    as_admin = (await client.get("/api/auth/check", headers=bearer(admin))).json()
    assert as_admin["is_admin"] is True and as_admin["username"] != "olga"
    as_olga = (await client.get("/api/auth/check", headers=bearer(olga))).json()
    assert as_olga["username"] == "olga" and as_olga["is_admin"] is False
    assert isinstance(as_olga["user_id"], str)
    refused = await client.get("/api/auth/check")
    assert refused.status_code == 401 and refused.json()["code"]


async def test_paths_answer_with_and_without_a_trailing_slash(client: httpx.AsyncClient) -> None:
    body = {"name": "slashed", "config": {"--model_family": "reference"}}
    created = await client.post("/api/configs/", json=body)
    assert created.status_code == 201, created.text
    for path in ("/api/configs", "/api/configs/", "/api/configs/slashed/", "/api/cloud/jobs/"):
        answer = await client.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
    listed = (await client.get("/api/cloud/jobs/?limit=1")).json()
    assert listed["jobs"] == [] and listed["total"] == 0
    assert (await client.get("/health/")).json()["status"] == "healthy"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.default_provider = Settings.model_fields["default_provider"].default
    return settings


@pytest.mark.trainer
async def test_a_submit_naming_no_provider_goes_to_replicate(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = job_body(make_dataset(tmp_path / "data", 2, size=32), tmp_path / "out")
    refused = await client.post("/api/cloud/jobs/submit", json=body)
    assert refused.status_code == 400, refused.text
    assert "replicate" in refused.json()["error"].lower()
    assert "token" in refused.json()["error"].lower()
    local = await client.post("/api/cloud/jobs/submit?provider=local", json=body)
    assert local.status_code == 200, local.text
    answer = local.json()
    assert answer["provider"] == "local" and answer["quota_warnings"] == []
    assert answer["upload_id"] is None


async def test_pre_submit_check_reports_the_configs_folder_as_git_sees_it(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    config = {"--model_family": "flux", "--tracker_run_name": "nightly"}
    made = await client.put("/api/configs/shapes", json={"config": config})
    assert made.status_code == 201, made.text
    plain = (await client.get("/api/cloud/pre-submit-check")).json()
    assert plain["git_available"] is True and plain["repo_present"] is False
    assert plain["config_name"] is None and plain["dirty_paths"] == []

    folder = settings.configs_dir
    git = ["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "configs"], check=True)
    clean = (await client.get("/api/cloud/pre-submit-check?config_name=shapes")).json()
    assert clean["repo_present"] is True and clean["is_dirty"] is False
    assert clean["current_branch"] == "main" and len(clean["current_commit"]) == 40
    assert clean["current_abbrev"] == clean["current_commit"][:7]
    assert clean["tracker_run_name"] == "nightly" and clean["config_name"] == "shapes"

    changed = await client.put("/api/configs/shapes", json={"config": {**config, "--seed": 1}})
    assert changed.status_code == 200
    dirty = (await client.get("/api/cloud/pre-submit-check")).json()
    assert dirty["is_dirty"] is True and dirty["dirty_count"] == 1
    assert dirty["dirty_paths"] == ["shapes/config.json"]
    missing = await client.get("/api/cloud/pre-submit-check?config_name=nosuch")
    assert missing.status_code == 404


async def test_available_configs_and_inline_progress(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert (await client.get("/api/cloud/available-configs")).json() == {
        "configs": [],
        "active_config": None,
    }
    await client.put("/api/configs/one", json={"config": {"--model_family": "flux"}})
    listed = (await client.get("/api/cloud/available-configs")).json()
    assert listed["configs"] == [{"name": "one", "is_active": False}]
    job = create_job(client.app.state.ctx.db, status=JobStatus.QUEUED)  # type: ignore[attr-defined]
    queued = (await client.get(f"/api/cloud/jobs/{job.job_id}/inline-progress")).json()
    assert queued == {"job_id": job.job_id, "stage": None, "last_log": None, "progress": None}
    missing = await client.get("/api/cloud/jobs/nosuch/inline-progress")
    assert missing.status_code == 404 and missing.json()["code"] == "job_not_found"


async def test_pre_submit_check_shows_only_the_callers_configs_changes(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = await setup_admin(client)
    olga = await add_user(client, admin, "olga", "researcher")
    config = {"config": {"--model_family": "flux"}}
    await client.put("/api/configs/admins", json=config, headers=bearer(admin))
    await client.put("/api/configs/olgas", json=config, headers=bearer(olga))
    folder = settings.configs_dir
    subprocess.run(["git", "-C", str(folder), "init", "-q"], check=True)
    as_olga = (await client.get("/api/cloud/pre-submit-check", headers=bearer(olga))).json()
    assert as_olga["dirty_paths"] == ["olgas/"] and as_olga["dirty_count"] == 1
    as_admin = (await client.get("/api/cloud/pre-submit-check", headers=bearer(admin))).json()
    assert as_admin["dirty_paths"] == ["admins/", "olgas/"]
