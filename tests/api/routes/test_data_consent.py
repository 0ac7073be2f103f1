"""GET|PUT /api/cloud/data-consent/setting, and a submit to the fake Replicate that uploads
local datasets only as the setting allows; a job trained here is never affected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.api.routes.test_jobs import assert_envelope
from tests.factories import job_body, make_dataset
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for

SETTING = "/api/cloud/data-consent/setting"


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    return settings_for(fake, tmp_path / "home", database_url)


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    spec = job_body(make_dataset(tmp_path / "dataset", 2, size=16), tmp_path / "output", steps=5)
    spec["config"]["--model_family"] = "flux"
    return spec


def local_body(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "config": {**body["config"], "--model_family": "reference"}}


async def set_consent(client: httpx.AsyncClient, value: str) -> None:
    response = await client.put(SETTING, json={"consent": value})
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "consent": value}


async def job_count(client: httpx.AsyncClient) -> int:
    return int((await client.get("/api/cloud/jobs")).json()["total"])


async def test_the_setting_defaults_to_allow_and_takes_the_three_modes(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get(SETTING)).json() == {"consent": "allow"}
    for value in ("ask", "deny", "allow"):
        await set_consent(client, value)
        assert (await client.get(SETTING)).json() == {"consent": value}
    for wrong in ({"consent": "sometimes"}, {"consent": True}, {}, {"consent": "ask", "x": 1}):
        assert_envelope(await client.put(SETTING, json=wrong), 400)
    assert (await client.get(SETTING)).json() == {"consent": "allow"}


async def test_anyone_signed_in_reads_it_and_only_provider_managers_change_it(
    client: httpx.AsyncClient,
) -> None:
    admin = await setup_admin(client)
    viewer = await add_user(client, admin, "vera", "viewer")
    assert_envelope(await client.get(SETTING), 401)
    assert (await client.get(SETTING, headers=bearer(viewer))).json() == {"consent": "allow"}
    refused = await client.put(SETTING, json={"consent": "deny"}, headers=bearer(viewer))
    assert_envelope(refused, 403, "permission_denied")
    changed = await client.put(SETTING, json={"consent": "deny"}, headers=bearer(admin))
    assert changed.status_code == 200, changed.text
    assert (await client.get(SETTING, headers=bearer(viewer))).json() == {"consent": "deny"}


async def test_deny_refuses_an_upload_and_sends_nothing(
    client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
) -> None:
    await set_consent(client, "deny")
    preview = (await client.post("/api/cloud/jobs/preview?provider=replicate", json=body)).json()
    assert preview["consent"] == "deny" and preview["data_leaves_machine"] is True
    assert preview["blocked"] is True
    for consent in (False, True):
        refused = await client.post(
            "/api/cloud/jobs/submit?provider=replicate", json={**body, "upload_consent": consent}
        )
        assert_envelope(refused, 403, "upload_refused")
        assert "never upload" in refused.json()["error"]
        assert SETTING in refused.json()["error"]
    assert fake.files == {} and fake.predictions == {}
    assert await job_count(client) == 0


async def test_ask_needs_upload_consent_on_the_submit(
    client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
) -> None:
    await set_consent(client, "ask")
    preview = (await client.post("/api/cloud/jobs/preview?provider=replicate", json=body)).json()
    assert preview["consent"] == "ask" and preview["blocked"] is False
    refused = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
    assert_envelope(refused, 400, "consent_required")
    assert "upload_consent" in refused.json()["error"]
    assert fake.files == {} and await job_count(client) == 0
    # Only a JSON true is consent.
    odd = await client.post(
        "/api/cloud/jobs/submit?provider=replicate", json={**body, "upload_consent": "yes"}
    )
    assert_envelope(odd, 422)

    accepted = await client.post(
        "/api/cloud/jobs/submit?provider=replicate", json={**body, "upload_consent": True}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data_uploaded"] is True and len(fake.files) == 1


async def test_allow_uploads_without_a_word(
    client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
) -> None:
    accepted = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data_uploaded"] is True and len(fake.files) == 1


@pytest.mark.trainer
async def test_a_job_trained_here_is_never_affected(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await set_consent(client, "deny")
    here = local_body(body)
    preview = (await client.post("/api/cloud/jobs/preview?provider=local", json=here)).json()
    assert preview["consent"] == "deny" and preview["data_leaves_machine"] is False
    assert preview["blocked"] is False
    accepted = await client.post("/api/cloud/jobs/submit?provider=local", json=here)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data_uploaded"] is False
