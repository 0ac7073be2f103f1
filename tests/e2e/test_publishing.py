"""Publishing through the real app: a local job trains with the reference trainer, and the
server publishes its output folder to the Hub stub and to a bucket of a moto server (both on
loopback), the files byte-identical where they land; a failed publish is shown on the job and
its retry works; secrets never appear in a job's JSON or in the logs. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mypy_boto3_s3 import S3Client

from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.api.routes.test_jobs import assert_envelope, wait_for_status
from tests.conftest import free_port
from tests.factories import job_body, make_dataset
from tests.fakes.hub import FakeHub
from tests.fakes.publishing import (
    HUB_TOKEN,
    S3_KEY_ID,
    S3_SECRET,
    fresh_bucket,
    hub_on_endpoint,
    moto_server,
)

SECRETS = (HUB_TOKEN, S3_KEY_ID, S3_SECRET)


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    dataset = make_dataset(tmp_path / "dataset", 4, size=32)
    return job_body(dataset, tmp_path / "output", steps=3)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    yield from hub_on_endpoint(monkeypatch)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    yield from moto_server(free_port())


@pytest.fixture
def bucket(moto_url: str) -> Iterator[tuple[S3Client, str]]:
    yield from fresh_bucket(moto_url, f"e2e-{uuid.uuid4().hex[:12]}")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


async def _wait_published(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job's publish state once no target is pending or running (bounded)."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        state = (await client.get(f"/api/cloud/jobs/{job_id}/publish")).json()
        targets = (state["publish"] or {}).values()
        if all(t["status"] in ("done", "failed") for t in targets):
            return dict(state)
        assert asyncio.get_running_loop().time() < deadline, f"publish stuck: {state}"
        await asyncio.sleep(0.1)


def _assert_no_secret(text: str, secrets: tuple[str, ...] = SECRETS) -> None:
    for secret in secrets:
        assert secret not in text


def _assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG, botocore logs a request's Authorization header, whose SigV4 credential names
    the access key id (never the secret key): the id is checked at INFO, the server's level."""
    _assert_no_secret(caplog.text, (HUB_TOKEN, S3_SECRET))
    info = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    _assert_no_secret(info)


@pytest.mark.trainer
async def test_local_job_is_published_to_the_hub_and_a_bucket(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    hub: FakeHub,
    bucket: tuple[S3Client, str],
    moto_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    s3, name = bucket
    body["publish"] = {
        "hub": {"repo_id": "me/shapes-lora", "private": True, "token": HUB_TOKEN},
        "s3": {
            "endpoint_url": moto_url,
            "bucket": name,
            "prefix": "loras",
            "region": "us-east-1",
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
        },
    }
    submitted = await client.post("/api/cloud/jobs/submit", json=body)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]
    job = await wait_for_status(client, job_id, {"completed", "failed", "cancelled"})
    assert job["status"] == "completed", job["error_message"]

    state = await _wait_published(client, job_id)

    assert state["publish_error"] is None
    hub_state, s3_state = state["publish"]["hub"], state["publish"]["s3"]
    assert hub_state["status"] == s3_state["status"] == "done"
    assert hub_state["target"] == f"{hub.url}/me/shapes-lora"
    assert hub_state["repo_id"] == "me/shapes-lora" and hub_state["private"] is True
    assert s3_state["target"] == f"s3://{name}/loras/{job_id}/"
    expected = _files(Path(job["output_url"]))
    assert "pytorch_lora_weights.safetensors" in expected
    assert hub.repos["me/shapes-lora"].files == expected
    for rel, data in expected.items():
        key = f"loras/{job_id}/{rel}"
        assert s3.get_object(Bucket=name, Key=key)["Body"].read() == data
    # Nowhere in the clear: the job's answers, its events, the logs of the whole run.
    for path in (
        f"/api/cloud/jobs/{job_id}",
        f"/api/cloud/jobs/{job_id}/publish",
        "/api/cloud/jobs",
    ):
        _assert_no_secret((await client.get(path)).text)
    _assert_no_secret((await client.get(f"/api/cloud/jobs/{job_id}/events")).text)
    _assert_no_secret_logged(caplog)


@pytest.mark.trainer
async def test_a_failed_publish_is_shown_and_its_retry_works(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    hub: FakeHub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hub.fail_status = 500
    body["publish"] = {"hub": {"repo_id": "me/lora", "token": HUB_TOKEN}}
    job_id = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
    await wait_for_status(client, job_id, {"completed"})

    failed = await _wait_published(client, job_id)

    assert failed["publish"]["hub"]["status"] == "failed"
    assert "500" in failed["publish_error"] and failed["publish_error"].startswith("hub: ")
    assert "me/lora" not in hub.repos
    _assert_no_secret(str(failed))

    hub.fail_status = None
    retried = await client.post(f"/api/cloud/jobs/{job_id}/publish/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["publish"]["hub"]["status"] in ("pending", "running", "done")
    done = await _wait_published(client, job_id)

    assert done["publish_error"] is None
    assert done["publish"]["hub"]["attempts"] == 2
    assert hub.repos["me/lora"].files == _files(Path(body["config"]["--output_dir"]))
    again = await client.post(f"/api/cloud/jobs/{job_id}/publish/retry")
    assert_envelope(again, 409, "nothing_to_retry")
    _assert_no_secret_logged(caplog)


@pytest.mark.trainer
async def test_saved_defaults_publish_a_submit_that_names_none(
    client: httpx.AsyncClient, body: dict[str, Any], hub: FakeHub
) -> None:
    saved = await client.put(
        "/api/cloud/publishing",
        json={"hub": {"repo_id": "me/team-lora", "private": False, "token": HUB_TOKEN}},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["hub"] == {
        "repo_id": "me/team-lora",
        "private": False,
        "token_saved": True,
    }
    assert saved.json()["s3"] is None
    _assert_no_secret(saved.text + (await client.get("/api/cloud/publishing")).text)
    opted_out = await client.post("/api/cloud/jobs/submit", json=body | {"publish": {}})
    job_id = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
    await wait_for_status(client, job_id, {"completed"})

    state = await _wait_published(client, job_id)

    assert state["publish"]["hub"]["status"] == "done", state
    assert hub.repos["me/team-lora"].private is False
    no_publish = (await client.get(f"/api/cloud/jobs/{opted_out.json()['job_id']}/publish")).json()
    assert no_publish["publish"] is None and no_publish["publish_error"] is None


async def test_defaults_keep_their_token_and_need_provider_manage(
    client: httpx.AsyncClient,
) -> None:
    first = {"hub": {"repo_id": "me/a", "token": HUB_TOKEN}}
    assert (await client.put("/api/cloud/publishing", json=first)).status_code == 200

    moved = await client.put("/api/cloud/publishing", json={"hub": {"repo_id": "me/b"}})

    assert moved.json()["hub"] == {"repo_id": "me/b", "private": True, "token_saved": True}
    cleared = await client.put("/api/cloud/publishing", json={})
    assert cleared.json()["hub"] is None and cleared.json()["s3"] is None
    refused = await client.put("/api/cloud/publishing", json={"hub": {"repo": "me/b"}})
    assert_envelope(refused, 400, "unsupported_field")


@pytest.mark.parametrize(
    ("publish", "code", "field"),
    [
        ({"hub": {"repo_id": "not a repo", "token": HUB_TOKEN}}, "invalid_publish", "repo_id"),
        ({"s3": {"bucket": "Bad_Bucket"}}, "invalid_publish", "bucket"),
        (
            {"s3": {"bucket": "ok-bucket", "endpoint_url": "file:///etc"}},
            "invalid_publish",
            "endpoint_url",
        ),
        ({"hub": {"repo_id": "me/x"}}, "invalid_publish", "token"),
        (
            {"hub": {"repo_id": "me/x", "token": HUB_TOKEN, "push": True}},
            "unsupported_field",
            "push",
        ),
    ],
)
async def test_a_submit_with_a_bad_publish_is_refused_before_any_job(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    hub: FakeHub,
    publish: dict[str, Any],
    code: str,
    field: str,
) -> None:
    for path in ("/api/cloud/jobs/preview", "/api/cloud/jobs/submit"):
        refused = await client.post(path, json=body | {"publish": publish})
        assert_envelope(refused, 400, code)
        assert field in refused.text
        _assert_no_secret(refused.text)
    assert (await client.get("/api/cloud/jobs")).json()["jobs"] == []


async def test_publishing_defaults_need_provider_manage(client: httpx.AsyncClient) -> None:
    admin = await setup_admin(client)
    key = await client.post(
        "/api/cloud/auth/api-keys",
        headers=bearer(admin),
        json={"name": "ci", "scoped_permissions": ["job.submit", "job.view.own"]},
    )
    scoped = bearer(key.json()["key"])

    for method in ("GET", "PUT"):
        answer = await client.request(method, "/api/cloud/publishing", headers=scoped, json={})
        assert_envelope(answer, 403)
    assert_envelope(await client.get("/api/cloud/publishing"), 401)
    assert (await client.get("/api/cloud/publishing", headers=bearer(admin))).status_code == 200


async def test_the_servers_hub_token_serves_only_the_saved_repository_for_a_researcher(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    hub: FakeHub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_server_environment_token")
    admin = await setup_admin(client)
    saved = await client.put(
        "/api/cloud/publishing",
        headers=bearer(admin),
        json={"hub": {"repo_id": "admin-org/team-lora", "token": HUB_TOKEN}},
    )
    assert saved.status_code == 200, saved.text
    researcher = bearer(await add_user(client, admin, "olga", "researcher"))
    elsewhere = body | {"publish": {"hub": {"repo_id": "admin-org/prod-model"}}}

    for path in ("/api/cloud/jobs/preview", "/api/cloud/jobs/submit"):
        refused = await client.post(path, json=elsewhere, headers=researcher)
        assert_envelope(refused, 400, "invalid_publish")
        assert "publish.hub.token" in refused.text
        _assert_no_secret(refused.text)
    assert (await client.get("/api/cloud/jobs", headers=bearer(admin))).json()["jobs"] == []


async def test_a_researcher_may_not_publish_to_an_endpoint_inside_the_servers_network(
    client: httpx.AsyncClient, body: dict[str, Any], moto_url: str
) -> None:
    admin = await setup_admin(client)
    researcher = bearer(await add_user(client, admin, "olga", "researcher"))
    for endpoint in (moto_url, "http://169.254.169.254", "http://[::1]:8001"):
        inside = body | {
            "publish": {
                "s3": {
                    "endpoint_url": endpoint,
                    "bucket": "models",
                    "access_key_id": S3_KEY_ID,
                    "secret_access_key": S3_SECRET,
                }
            }
        }
        for path in ("/api/cloud/jobs/preview", "/api/cloud/jobs/submit"):
            refused = await client.post(path, json=inside, headers=researcher)
            assert_envelope(refused, 400, "invalid_publish")
            assert "publish.s3.endpoint_url" in refused.text
            _assert_no_secret(refused.text)
    assert (await client.get("/api/cloud/jobs", headers=bearer(admin))).json()["jobs"] == []
