"""The jobs API through the real app (lifespan, local provider) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.domain.jobs import JobStatus
from cloudtune.store import jobs as job_store
from tests.conftest import TERMINAL
from tests.factories import create_job, job_body, make_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "dataset", 4, size=32)


@pytest.fixture
def body(dataset: Path, tmp_path: Path) -> dict[str, Any]:
    return job_body(dataset, tmp_path / "output", steps=3)


async def wait_for_status(
    client: httpx.AsyncClient, job_id: str, wanted: set[str], timeout: float = 120
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        if job["status"] in wanted:
            return job
        assert asyncio.get_running_loop().time() < deadline, f"job stuck in {job['status']}"
        await asyncio.sleep(0.1)


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    data = response.json()
    assert data["success"] is False and isinstance(data["code"], str) and data["detail"]
    # The message again as one string, where scripts for the reference server read it.
    assert isinstance(data["error"], str) and data["error"]
    if isinstance(data["detail"], str):
        assert data["error"] == data["detail"]
    if code:
        assert data["code"] == code, data


class TestSubmit:
    @pytest.mark.trainer
    async def test_inline_submit_runs_to_completion(
        self, client: httpx.AsyncClient, body: dict[str, Any], tmp_path: Path
    ) -> None:
        response = await client.post("/api/cloud/jobs/submit?provider=local", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["success"] and data["status"] == "queued" and not data["idempotent_hit"]
        job = await wait_for_status(client, data["job_id"], TERMINAL)
        assert job["status"] == "completed", job["error_message"]
        assert job["progress"]["step"] == 3 and job["progress"]["total_steps"] == 3
        assert job["progress"]["loss"] is not None
        assert job["started_at"] and job["completed_at"] and job["duration_seconds"] >= 0
        assert job["config_snapshot"]["config"]["--max_train_steps"] == 3
        assert (tmp_path / "output" / "pytorch_lora_weights.safetensors").is_file()
        logs = (await client.get(f"/api/cloud/jobs/{data['job_id']}/logs")).json()
        assert "step 3/3" in logs["logs"]
        events = (await client.get(f"/api/cloud/jobs/{data['job_id']}/events")).json()["events"]
        statuses = [e["to_status"] for e in events if e["kind"] == "status"]
        assert statuses == ["pending", "queued", "running", "completed"]
        assert any(e["kind"] == "progress" for e in events)

    @pytest.mark.trainer
    async def test_submit_by_config_name(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        assert (await client.put("/api/configs/my-config", json=body)).status_code == 201
        response = await client.post(
            "/api/cloud/jobs/submit",
            json={"config_name_to_load": "my-config", "tracker_run_name": "run-1"},
        )
        assert response.status_code == 200, response.text
        job = (await client.get(f"/api/cloud/jobs/{response.json()['job_id']}")).json()["job"]
        assert job["config_name"] == "my-config" and job["tracker_run_name"] == "run-1"

    @pytest.mark.trainer
    async def test_job_json_has_no_secret(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        body["config"]["--hub_token"] = "hf_supersecret"
        job_id = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
        token = client.app.state.ctx.tokens.job_token(job_id)  # type: ignore[attr-defined]
        for path in (f"/api/cloud/jobs/{job_id}", "/api/cloud/jobs"):
            text = (await client.get(path)).text
            assert token not in text and "hf_supersecret" not in text
        snapshot = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]["config_snapshot"]
        assert snapshot["config"]["--hub_token"] == "***"

    @pytest.mark.trainer
    async def test_fifty_concurrent_identical_submits_make_one_job(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        body["idempotency_key"] = "ci-build-42"
        responses = await asyncio.gather(
            *(client.post("/api/cloud/jobs/submit", json=body) for _ in range(50))
        )
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
        ids = {r.json()["job_id"] for r in responses}
        assert len(ids) == 1
        assert sum(not r.json()["idempotent_hit"] for r in responses) == 1
        listing = (await client.get("/api/cloud/jobs")).json()
        assert listing["total"] == 1

    async def test_preview_lists_the_data(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post("/api/cloud/jobs/preview?provider=local", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["files"] == 8 and data["datasets"][0]["images"] == 4
        assert data["data_leaves_machine"] is False and data["blocked"] is False
        assert (await client.get("/api/cloud/jobs")).json()["total"] == 0


class TestBadInput:
    async def assert_refused(
        self, client: httpx.AsyncClient, response: httpx.Response, status: int, code: str
    ) -> None:
        assert_envelope(response, status, code)
        assert (await client.get("/api/cloud/jobs")).json()["total"] == 0

    async def test_unknown_provider(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        response = await client.post("/api/cloud/jobs/submit?provider=nowhere", json=body)
        await self.assert_refused(client, response, 400, "unknown_provider")

    async def test_malformed_config(self, client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        body["config"]["--max_train_steps"] = "lots"
        response = await client.post("/api/cloud/jobs/submit", json=body)
        await self.assert_refused(client, response, 400, "invalid_config")
        response = await client.post("/api/cloud/jobs/submit", json={"config": "not an object"})
        await self.assert_refused(client, response, 422, "validation_error")
        response = await client.post(
            "/api/cloud/jobs/submit",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        await self.assert_refused(client, response, 422, "validation_error")

    async def test_no_config_at_all(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/api/cloud/jobs/submit", json={})
        await self.assert_refused(client, response, 400, "invalid_config")

    async def test_dataset_without_instance_data_dir(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        del body["dataloader_config"][0]["instance_data_dir"]
        response = await client.post("/api/cloud/jobs/submit", json=body)
        await self.assert_refused(client, response, 400, "invalid_dataset")

    async def test_dataset_path_that_does_not_exist(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        body["dataloader_config"][0]["instance_data_dir"] = "/nonexistent/dataset"
        response = await client.post("/api/cloud/jobs/submit", json=body)
        await self.assert_refused(client, response, 400, "path_not_allowed")
        assert "/nonexistent/dataset" in response.json()["detail"]

    async def test_dataset_that_is_a_file_or_empty(
        self, client: httpx.AsyncClient, body: dict[str, Any], tmp_path: Path
    ) -> None:
        (tmp_path / "a-file").write_text("x")
        body["dataloader_config"][0]["instance_data_dir"] = str(tmp_path / "a-file")
        response = await client.post("/api/cloud/jobs/submit", json=body)
        await self.assert_refused(client, response, 400, "path_not_allowed")
        (tmp_path / "empty").mkdir()
        body["dataloader_config"][0]["instance_data_dir"] = str(tmp_path / "empty")
        response = await client.post("/api/cloud/jobs/submit", json=body)
        await self.assert_refused(client, response, 400, "dataset_empty")

    @pytest.mark.parametrize(
        "field", [{"publish": {"hub_model_id": "me/lora"}}, {"webhook_url": "https://x.example"}]
    )
    async def test_fields_not_acted_on_yet_are_refused(
        self, client: httpx.AsyncClient, body: dict[str, Any], field: dict[str, Any]
    ) -> None:
        response = await client.post("/api/cloud/jobs/submit", json=body | field)
        await self.assert_refused(client, response, 400, "unsupported_field")
        assert next(iter(field)) in response.json()["detail"]

    async def test_unknown_config_name(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/cloud/jobs/submit", json={"config_name_to_load": "never-saved"}
        )
        await self.assert_refused(client, response, 404, "config_not_found")

    async def test_model_family_the_local_provider_cannot_train(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        body["config"]["--model_family"] = "flux"
        response = await client.post("/api/cloud/jobs/submit", json=body)
        await self.assert_refused(client, response, 400, "unsupported_model_family")
        assert "replicate" in response.json()["detail"]

    @pytest.mark.parametrize(
        "query",
        [
            "limit=-1",
            "limit=0",
            "limit=501",
            "limit=100000000",
            "offset=-5",
            "status=bogus",
            "job_type=remote",
        ],
    )
    async def test_bad_list_parameters(self, client: httpx.AsyncClient, query: str) -> None:
        assert_envelope(await client.get(f"/api/cloud/jobs?{query}"), 400, "invalid_filter")

    async def test_non_integer_limit(self, client: httpx.AsyncClient) -> None:
        assert_envelope(await client.get("/api/cloud/jobs?limit=ten"), 400, "invalid_filter")

    async def test_unknown_job(self, client: httpx.AsyncClient) -> None:
        for method, path in [
            ("GET", "/api/cloud/jobs/nope"),
            ("GET", "/api/cloud/jobs/nope/logs"),
            ("GET", "/api/cloud/jobs/nope/events"),
            ("POST", "/api/cloud/jobs/nope/cancel"),
            ("DELETE", "/api/cloud/jobs/nope"),
        ]:
            assert_envelope(await client.request(method, path), 404, "job_not_found")


class TestLifecycle:
    async def test_cancel_delete_rules(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        body["config"]["--max_train_steps"] = 100000
        running = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
        queued = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
        await wait_for_status(client, running, {"running"})
        for _ in range(100):  # the reconciler records queue positions in its next pass
            job = (await client.get(f"/api/cloud/jobs/{queued}")).json()["job"]
            if job["queue_position"] is not None:
                break
            await asyncio.sleep(0.05)
        assert job["status"] == "queued" and job["queue_position"] == 1

        assert_envelope(
            await client.delete(f"/api/cloud/jobs/{running}"), 409, "invalid_job_state"
        )

        response = await client.post(f"/api/cloud/jobs/{queued}/cancel")
        assert response.json() == {"success": True, "job_id": queued, "status": "cancelled"}
        again = await client.post(f"/api/cloud/jobs/{queued}/cancel")
        assert again.status_code == 200 and again.json()["status"] == "cancelled"

        response = await client.post(f"/api/cloud/jobs/{running}/cancel")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        provider = client.app.state.ctx.providers.get("local")  # type: ignore[attr-defined]
        for _ in range(200):
            if not provider.has_running_processes():
                break
            await asyncio.sleep(0.05)
        assert not provider.has_running_processes()
        job = (await client.get(f"/api/cloud/jobs/{running}")).json()["job"]
        assert job["status"] == "cancelled"

        response = await client.delete(f"/api/cloud/jobs/{running}")
        assert response.json() == {"success": True, "job_id": running}
        assert_envelope(await client.get(f"/api/cloud/jobs/{running}"), 404, "job_not_found")

    @pytest.mark.trainer
    async def test_cancelling_a_finished_job_is_a_conflict(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        job_id = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
        job = await wait_for_status(client, job_id, TERMINAL)
        assert job["status"] == "completed"
        assert_envelope(
            await client.post(f"/api/cloud/jobs/{job_id}/cancel"), 409, "invalid_job_state"
        )

    @pytest.mark.trainer
    async def test_list_total_and_pagination(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        ids = []
        for _ in range(3):
            ids.append((await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"])
        page = (await client.get("/api/cloud/jobs?limit=1")).json()
        assert len(page["jobs"]) == 1 and page["total"] == 3
        assert page["jobs"][0]["job_id"] == ids[-1]
        assert "config_snapshot" not in page["jobs"][0]
        second = (await client.get("/api/cloud/jobs?limit=1&offset=1")).json()
        assert second["jobs"][0]["job_id"] == ids[1]
        local = (await client.get("/api/cloud/jobs?job_type=local&provider=local")).json()
        assert local["total"] == 3
        assert (await client.get("/api/cloud/jobs?job_type=cloud")).json()["total"] == 0
        synced = await client.get("/api/cloud/jobs?sync_active=true")
        assert synced.status_code == 200
        sync = await client.post("/api/cloud/jobs/sync", json={})
        assert sync.status_code == 200 and sync.json()["success"] is True


class TestTrainerWebhook:
    @pytest.mark.trainer
    async def test_progress_needs_the_jobs_own_token(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        body["config"]["--max_train_steps"] = 100000
        job_id = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
        other = (await client.post("/api/cloud/jobs/submit", json=body)).json()["job_id"]
        tokens = client.app.state.ctx.tokens  # type: ignore[attr-defined]
        url = f"/api/webhooks/trainer/{job_id}"
        event = {"type": "progress", "step": 5, "total_steps": 10, "loss": 0.25}
        assert_envelope(await client.post(url, json=event), 401)
        wrong = {"Authorization": f"Bearer {tokens.job_token(other)}"}
        assert_envelope(await client.post(url, json=event, headers=wrong), 401)
        right = {"Authorization": f"Bearer {tokens.job_token(job_id)}"}
        response = await client.post(url, json=event, headers=right)
        assert response.status_code == 200 and response.json()["applied"] is True
        # SimpleTuner's own event shape, with its header
        simpletuner_event = {
            "type": "training.status",
            "progress": {
                "current": 6,
                "total": 10,
                "eta_seconds": 12,
                "metrics": {"loss": 0.2, "learning_rate": 1e-4, "epoch": 1},
            },
        }
        headers = {"X-API-Key": tokens.job_token(job_id)}
        assert (await client.post(url, json=simpletuner_event, headers=headers)).status_code == 200
        progress = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]["progress"]
        assert progress["step"] == 6 and progress["lr"] == 1e-4 and progress["percent"] == 60.0
        bad = await client.post(url, content=b"{", headers=right)
        assert_envelope(bad, 400, "invalid_payload")


async def test_a_trainer_heard_from_while_its_job_is_queued_wakes_the_reconciler(
    client: httpx.AsyncClient,
) -> None:
    """A remote trainer that speaks while its job still reads queued (the provider has not been
    asked since it started) has the provider asked now, not at the next pass; a running job's
    events do not (every step would cost a pass)."""
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    woken: list[str] = []
    ctx.wake_reconciler = lambda: woken.append("wake")
    job = create_job(ctx.db, status=JobStatus.QUEUED, provider="local")
    url = f"/api/webhooks/trainer/{job.job_id}"
    headers = {"Authorization": f"Bearer {ctx.tokens.job_token(job.job_id)}"}
    answer = await client.post(url, json={"type": "started"}, headers=headers)
    assert answer.status_code == 200 and answer.json()["applied"] is False
    assert woken == ["wake"]
    with ctx.db.write() as session:
        job_store.switch_job_status(session, job.job_id, JobStatus.RUNNING)
    step = {"type": "progress", "step": 1, "total_steps": 10}
    assert (await client.post(url, json=step, headers=headers)).json()["applied"] is True
    assert woken == ["wake"]
