"""The Replicate provider end to end against the fake Replicate server, on both databases."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from cloudtune.domain.jobs import utcnow
from cloudtune.providers.replicate.client import ReplicateClient
from cloudtune.settings import Settings
from cloudtune.store import providers as provider_store
from tests.api.routes.test_jobs import assert_envelope
from tests.conftest import TERMINAL
from tests.factories import job_body, make_dataset
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    return settings_for(fake, tmp_path / "home", database_url)


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    data = make_dataset(tmp_path / "dataset", 4, size=32)
    (data / ".env").write_text("SECRET=1")
    (data / "notes.txt").write_text("not a caption but text")
    spec = job_body(data, tmp_path / "output", steps=10)
    spec["config"]["--model_family"] = "flux"
    return spec


async def point_webhooks_at(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/api/cloud/providers/replicate", json={"webhook_url": str(client.base_url)}
    )
    assert response.status_code == 200, response.text


async def wait_terminal(
    client: httpx.AsyncClient, job_id: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        if job["status"] in TERMINAL:
            return job  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.1)


class TestSubmit:
    async def test_a_job_is_packaged_uploaded_created_and_completed_by_webhooks(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        await point_webhooks_at(client)
        body["hardware_profile"] = "h100-x2"
        preview = (
            await client.post("/api/cloud/jobs/preview?provider=replicate", json=body)
        ).json()
        assert preview["data_leaves_machine"] is True and preview["blocked"] is False
        sent = [f["path"] for f in preview["first_files"]]
        assert "datasets/training-images/img0.png" in sent
        assert any(".env" in e for e in preview["excluded_files"])
        assert fake.files == {}  # a preview uploads nothing

        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["status"] == "queued" and data["data_uploaded"] is True
        job_id = data["job_id"]
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        prediction_id = job["metadata"]["prediction_id"]
        assert job["hardware_type"] == "2x H100 (80GB)" and job["price_per_hour_usd"] == 10.98
        prediction = fake.predictions[prediction_id]
        assert prediction.version.startswith("simpletuner/advanced-trainer-h100-x2:")
        assert prediction.webhook and job_id in prediction.webhook
        assert prediction.input["images"].startswith(fake.base_url + "/files/")
        dataloader = json.loads(prediction.input["dataloader_json"])
        assert dataloader[0]["instance_data_dir"] == "datasets/training-images"
        assert set(prediction.events) == {"start", "output", "logs", "completed"}

        job = await wait_terminal(client, job_id)
        assert job["status"] == "completed"
        assert job["cost_usd"] == pytest.approx(10.98 * prediction.predict_time / 3600, abs=1e-5)
        assert job["outputs"] and "pytorch_lora_weights" in job["outputs"][0]
        logs = (await client.get(f"/api/cloud/jobs/{job_id}/logs")).json()["logs"]
        assert "100/100" in logs and "training complete" in logs
        assert fake.webhooks_sent > 0

        # the same unchanged dataset is not zipped again
        packages = list((client.app.state.ctx.settings.packages_dir).glob("*.zip"))  # type: ignore[attr-defined]
        again = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert again.status_code == 200
        assert list(client.app.state.ctx.settings.packages_dir.glob("*.zip")) == packages  # type: ignore[attr-defined]

    async def test_missing_token_is_a_clear_400(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        client.app.state.ctx.settings.replicate_api_token = None  # type: ignore[attr-defined]
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert_envelope(response, 400, "missing_token")
        assert "REPLICATE_API_TOKEN" in response.json()["detail"]
        assert (await client.get("/api/cloud/jobs")).json()["total"] == 0

    async def test_token_saved_encrypted_and_validated(
        self, client: httpx.AsyncClient, fake: FakeReplicate
    ) -> None:
        client.app.state.ctx.settings.replicate_api_token = None  # type: ignore[attr-defined]
        saved = await client.put("/api/cloud/providers/replicate/token", json={"token": "r8_bad"})
        assert saved.status_code == 200 and "r8_bad" not in saved.text
        invalid = (await client.get("/api/cloud/providers/replicate/validate")).json()
        assert invalid["valid"] is False and "invalid" in invalid["detail"]
        await client.put("/api/cloud/providers/replicate/token", json={"token": fake.token})
        valid = (await client.get("/api/cloud/providers/replicate/validate")).json()
        assert valid["valid"] is True
        settings = (await client.get("/api/cloud/providers/replicate")).json()
        assert settings["token_configured"] is True and fake.token not in json.dumps(settings)
        db = client.app.state.ctx.db  # type: ignore[attr-defined]
        if db.is_sqlite:
            raw = b"".join(
                p.read_bytes() for p in Path(db.engine.url.database).parent.glob("*.db*")
            )
            assert fake.token.encode() not in raw
        versions = (await client.get("/api/cloud/providers/replicate/versions")).json()
        assert versions["versions"][0]["id"]
        billing = (await client.get("/api/cloud/providers/replicate/billing")).json()
        assert billing["balance_available"] is False and len(billing["profiles"]) == 8

    async def test_an_oversize_dataset_is_413_before_any_upload(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any], tmp_path: Path
    ) -> None:
        big = Path(body["dataloader_config"][0]["instance_data_dir"]) / "big.bin"
        with open(big, "wb") as f:
            f.truncate(100 * 1024 * 1024 + 1)
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert_envelope(response, 413, "payload_too_large")
        assert "100 MiB" in response.json()["detail"]
        assert fake.files == {} and fake.create_calls == 0
        assert (await client.get("/api/cloud/jobs")).json()["total"] == 0
        preview = (
            await client.post("/api/cloud/jobs/preview?provider=replicate", json=body)
        ).json()
        assert preview["blocked"] is True

    async def test_a_symlink_leaving_the_dataset_is_left_out_and_listed(
        self, client: httpx.AsyncClient, body: dict[str, Any], tmp_path: Path, settings: Settings
    ) -> None:
        secret = tmp_path / "secret.txt"
        secret.write_text("do not send")
        (Path(body["dataloader_config"][0]["instance_data_dir"]) / "link.txt").symlink_to(secret)
        await point_webhooks_at(client)
        preview = (
            await client.post("/api/cloud/jobs/preview?provider=replicate", json=body)
        ).json()
        rule = preview["excluded"]["symlink leaving the dataset"]
        assert rule == {"count": 1, "examples": ["training-images/link.txt"]}
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        assert response.status_code == 200, response.text
        (archive,) = settings.packages_dir.glob("*.zip")
        with zipfile.ZipFile(archive) as zf:
            assert not any("link.txt" in name for name in zf.namelist())


def signed(
    fake: FakeReplicate,
    payload: bytes,
    *,
    msg_id: str = "msg_1",
    when: datetime | None = None,
    secret: str | None = None,
) -> dict[str, str]:
    when = when or datetime.now(UTC)
    signature = Webhook(secret or fake.secret).sign(msg_id, when, payload.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


class TestWebhooks:
    async def submitted(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> tuple[str, str]:
        fake.start_after = 60  # the fake stays in `starting`: only our webhooks move the job
        job_id = (
            await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        ).json()["job_id"]
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        return job_id, job["metadata"]["prediction_id"]

    async def test_bad_or_stale_signatures_leave_the_job_alone(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        job_id, prediction_id = await self.submitted(client, fake, body)
        payload = json.dumps({"id": prediction_id, "status": "succeeded"}).encode()
        other_secret = "whsec_" + base64.b64encode(b"x" * 24).decode()
        for headers in (
            {"content-type": "application/json"},
            signed(fake, payload, secret=other_secret),
            signed(fake, payload, when=datetime.now(UTC) - timedelta(minutes=6)),
            {**signed(fake, payload), "webhook-signature": "garbage"},
        ):
            response = await client.post(
                "/api/webhooks/replicate", content=payload, headers=headers
            )
            assert_envelope(response, 401, "invalid_signature")
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        assert job["status"] == "queued"

    async def test_good_duplicate_unknown_and_malformed_deliveries(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        job_id, prediction_id = await self.submitted(client, fake, body)
        running = json.dumps(
            {
                "id": prediction_id,
                "status": "processing",
                "logs": "step 1\n",
                "started_at": "2026-11-23T01:00:00.123456789Z",
            }
        ).encode()
        first = await client.post(
            "/api/webhooks/replicate", content=running, headers=signed(fake, running, msg_id="m1")
        )
        assert first.json()["status"] == "received"
        again = await client.post(
            "/api/webhooks/replicate", content=running, headers=signed(fake, running, msg_id="m1")
        )
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        assert job["status"] == "running"
        assert (await client.get(f"/api/cloud/jobs/{job_id}/logs")).json()["logs"] == "step 1\n"

        unknown = json.dumps({"id": "nosuchprediction", "status": "succeeded"}).encode()
        response = await client.post(
            "/api/webhooks/replicate", content=unknown, headers=signed(fake, unknown, msg_id="m2")
        )
        assert response.status_code == 200 and response.json()["status"] == "ignored"

        for bad in (
            b"{not json",
            b"[1, 2]",
            json.dumps({"id": prediction_id, "status": "odd"}).encode(),
        ):
            response = await client.post(
                "/api/webhooks/replicate", content=bad, headers=signed(fake, bad, msg_id="m3")
            )
            assert_envelope(response, 400, "invalid_payload")

    async def test_ip_allowlist(
        self, client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
    ) -> None:
        _, prediction_id = await self.submitted(client, fake, body)
        await client.put(
            "/api/cloud/providers/replicate", json={"webhook_allowed_ips": ["10.0.0.0/8"]}
        )
        payload = json.dumps({"id": prediction_id, "status": "processing"}).encode()
        response = await client.post(
            "/api/webhooks/replicate", content=payload, headers=signed(fake, payload)
        )
        assert_envelope(response, 403, "ip_not_allowed")
        refused = await client.put(
            "/api/cloud/providers/replicate", json={"webhook_allowed_ips": ["nope"]}
        )
        assert_envelope(refused, 400, "invalid_setting")


async def test_fifty_jobs_survive_a_flaky_api_and_lost_webhooks(
    client: httpx.AsyncClient,
    fake: FakeReplicate,
    body: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await point_webhooks_at(client)
    fake.run_for = 0.5
    fake.faults.rate = 0.3
    fake.faults.slow_seconds = 2.5  # over the client's 2 s timeout
    fake.faults.drop_webhooks = 0.5
    semaphore = asyncio.Semaphore(10)

    async def submit(i: int) -> httpx.Response:
        async with semaphore:
            return await client.post(
                "/api/cloud/jobs/submit?provider=replicate",
                json={**body, "tracker_run_name": f"run-{i}"},
                timeout=120,
            )

    responses = await asyncio.gather(*(submit(i) for i in range(50)))
    # A create whose answer was lost, and whose lookups all failed too, is answered
    # provider_create_unconfirmed with the job kept active (never sent twice): rare at this
    # fault rate, and the documented answer when it happens.
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.json()["code"] == "provider_create_unconfirmed" for r in refused), [
        r.text for r in refused
    ]
    job_ids = [r.json()["job_id"] for r in responses]
    unconfirmed = {r.json()["job_id"] for r in refused}
    never_made = {j for j in unconfirmed if not fake.predictions_for(j)}
    if unconfirmed - never_made:
        # A sync settles the ones Replicate did create (it finds them by our id).
        for _ in range(20):
            if (await client.post("/api/cloud/jobs/sync")).status_code == 200:
                break
    deadline = time.monotonic() + 120
    pending = set(job_ids) - never_made
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} jobs never finished"
        listing = await client.get("/api/cloud/jobs?limit=100&status=completed,failed,cancelled")
        assert listing.status_code == 200
        pending -= {j["job_id"] for j in listing.json()["jobs"]}
        await asyncio.sleep(0.5)
    final = (await client.get("/api/cloud/jobs?limit=100")).json()["jobs"]
    assert {j["status"] for j in final if j["job_id"] not in never_made} == {"completed"}
    # One never created stays active for the lost-job check, never failed by a guess.
    assert all(j["is_active"] for j in final if j["job_id"] in never_made)
    for job_id in set(job_ids) - never_made:
        assert len(fake.predictions_for(job_id)) == 1, f"{job_id} was created more than once"
    assert fake.webhooks_dropped > 0
    assert "unhandled error" not in caplog.text  # nothing answered 500


async def test_a_failing_api_trips_the_breaker_and_submits_fail_fast(
    client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
) -> None:
    fake.faults.rate, fake.faults.kinds = 1.0, ("500",)
    codes = []
    for _ in range(3):
        response = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
        codes.append(response.status_code)
        assert response.status_code in (502, 503), response.text
    assert codes[-1] == 503
    calls_before = sum(fake.calls.values())
    fast = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
    assert_envelope(fast, 503, "provider_unavailable")
    # Failing fast: the open breaker refused it without a single request to the API.
    assert sum(fake.calls.values()) == calls_before
    failed = (await client.get("/api/cloud/jobs?status=failed")).json()
    assert failed["total"] == 4 and all("replicate" in j["error_message"] for j in failed["jobs"])


async def test_anonymous_webhooks_do_not_drive_calls_to_replicate(
    client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
) -> None:
    """Finding: with no signing secret cached, every webhook fetched it from Replicate and a
    failed fetch was not remembered, so anonymous posts alone opened the breaker that every
    user's submits share. Now unsigned posts are refused before any fetch, one fetch runs at a
    time, and a failure is remembered for a while."""
    secret_path = "/v1/webhooks/default/secret"
    fetches = f"GET {secret_path}"
    payload = json.dumps({"id": "nosuchprediction", "status": "succeeded"}).encode()

    async def post_all(headers: list[dict[str, str]]) -> list[httpx.Response]:
        return await asyncio.gather(
            *(client.post("/api/webhooks/replicate", content=payload, headers=h) for h in headers)
        )

    unsigned = await post_all([{"content-type": "application/json"}] * 50)
    for response in unsigned:
        assert_envelope(response, 401, "invalid_signature")
        assert response.headers["connection"] == "close"
    assert fake.calls[fetches] == 0

    fake.fail_paths[secret_path] = (500, "Internal server error")
    anonymous = await post_all([signed(fake, payload, msg_id=f"anon-{i}") for i in range(50)])
    for response in anonymous:
        assert_envelope(response, 503, "provider_unavailable")
        assert 1 <= int(response.headers["retry-after"]) <= 30
        assert fake.base_url not in response.text  # what failed, and where, is for the log
    print(f"\n  50 anonymous webhooks, secret endpoint failing: {fake.calls[fetches]} fetch(es)")
    assert 1 <= fake.calls[fetches] <= 2
    provider = client.app.state.ctx.providers.get("replicate")  # type: ignore[attr-defined]
    assert not provider._breaker.is_open
    submitted = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)
    assert submitted.status_code == 200, submitted.text

    # Once the back-off is over, the next webhook fetches the secret again, once.
    del fake.fail_paths[secret_path]
    provider.secret_retry_seconds = 0.0
    before = fake.calls[fetches]
    accepted = await post_all([signed(fake, payload, msg_id=f"real-{i}") for i in range(5)])
    assert [r.json()["status"] for r in accepted] == ["ignored"] * 5
    assert fake.calls[fetches] == before + 1


async def test_sync_finds_what_no_webhook_said(
    client: httpx.AsyncClient, fake: FakeReplicate, body: dict[str, Any]
) -> None:
    client.app.state.ctx.settings.reconcile_backoff_max_seconds = 3600  # type: ignore[attr-defined]
    fake.run_for = 0.2
    job_id = (await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)).json()[
        "job_id"
    ]
    # Done at the fake; no webhook URL is set, so nobody told us.
    deadline = time.monotonic() + 60
    while fake.predictions_for(job_id)[0].status != "succeeded":
        assert time.monotonic() < deadline, "the fake never finished the prediction"
        await asyncio.sleep(0.05)
    synced = (await client.post("/api/cloud/jobs/sync", json={"provider": "replicate"})).json()
    assert synced["success"] is True and synced["updated"] >= 1
    # The sync learned of the success; the job completes once its outputs are home.
    job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
    assert job["status"] in ("running", "completed")
    assert (await wait_terminal(client, job_id))["status"] == "completed"


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
async def test_the_base_url_works_with_or_without_v1(fake: FakeReplicate, suffix: str) -> None:
    root = fake.base_url.removesuffix("/v1")
    client = ReplicateClient(root + suffix, fake.token)
    try:
        assert (await client.account())["username"] == "fake-user"
        assert [p async for p in client.predictions()] == []
    finally:
        await client.aclose()
    assert fake.calls["GET /v1/account"] == 1 and fake.calls["GET /v1/predictions"] == 1


async def test_a_provider_error_names_the_request_that_failed_but_not_the_token(
    client: httpx.AsyncClient, fake: FakeReplicate
) -> None:
    path = "/v1/models/simpletuner/advanced-trainer-h100/versions"
    fake.fail_paths[path] = (404, "The requested resource could not be found.")
    response = await client.get("/api/cloud/providers/replicate/versions")
    assert_envelope(response, 502)
    detail = response.json()["detail"]
    assert f"GET {fake.base_url}/models/simpletuner/advanced-trainer-h100/versions" in detail
    assert "404" in detail and "could not be found" in detail
    assert fake.token not in response.text


async def test_the_local_provider_shows_only_its_own_settings(client: httpx.AsyncClient) -> None:
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    with db.write() as session:  # saved before settings were per provider
        provider_store.save_settings(
            session, "local", at=utcnow(), settings={"webhook_url": "http://x", "model": "m"}
        )
    local = (await client.get("/api/cloud/providers/local")).json()
    assert local["provider"] == "local" and local["config"] == {}
    refused = await client.put("/api/cloud/providers/local", json={"webhook_url": "http://x"})
    assert_envelope(refused, 400, "invalid_setting")
    replicate = (await client.get("/api/cloud/providers/replicate")).json()["config"]
    assert set(replicate) == {
        "webhook_url",
        "webhook_allowed_ips",
        "default_hardware_profile",
        "model",
        "version",
        "require_signature",
    }
