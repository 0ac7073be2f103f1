"""Paths of the reference server that its scripts call, answered in its shapes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import job_body, make_dataset


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
