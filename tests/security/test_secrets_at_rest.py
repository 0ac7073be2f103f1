"""Findings 9 and 11: named configs have owners and keep their secrets encrypted; a job's
secrets never land in a file; trainers get an allowlisted environment; the home folder, the
database and run files are the server user's alone. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cloudtune.settings import Settings
from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.api.routes.test_jobs import wait_for_status
from tests.factories import job_body, make_dataset

HUB_TOKEN = "hf_do_not_leak_4f1c9e"
SUBMIT = "/api/cloud/jobs/submit?provider=local"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    settings.data_roots = [str(tmp_path / "data")]
    return settings


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data" / "shapes", 2, size=16)


def config_with_secret(dataset: Path, **config: Any) -> dict[str, Any]:
    body = job_body(dataset, Path("lora"), steps=2)
    body["config"].update({"--hub_token": HUB_TOKEN, **config})
    body["dataloader_config"][0]["aws_secret_access_key"] = "aws-" + HUB_TOKEN
    return body


def stored_everywhere(client: httpx.AsyncClient, settings: Settings) -> str:
    """Every file under the home and every row of the tables that could hold a secret."""
    found = []
    for path in settings.home.rglob("*"):
        if path.is_file():
            found.append(path.read_bytes().decode("latin-1"))
    db = client.app.state.ctx.db  # type: ignore[attr-defined]
    with db.read() as session:
        for table in ("jobs", "job_events", "job_secrets", "named_configs", "job_logs"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608
            found.append(repr(rows))
    return "\n".join(found)


class TestNamedConfigs:
    async def test_owners_and_masked_encrypted_secrets(
        self, client: httpx.AsyncClient, dataset: Path, settings: Settings
    ) -> None:
        admin = await setup_admin(client)
        alice = await add_user(client, admin, "alice", "researcher")
        mallory = await add_user(client, admin, "mallory", "researcher")
        victor = await add_user(client, admin, "victor", "viewer")
        body = config_with_secret(dataset)
        saved = await client.put("/api/configs/alice-cfg", json=body, headers=bearer(alice))
        assert saved.status_code == 201, saved.text
        assert saved.json()["config"]["--hub_token"] == "***"

        # Her own view is masked too; the file and the database hold no plaintext.
        mine = (await client.get("/api/configs/alice-cfg", headers=bearer(alice))).json()
        assert mine["config"]["--hub_token"] == "***"
        assert mine["dataloader_config"][0]["aws_secret_access_key"] == "***"
        assert HUB_TOKEN not in stored_everywhere(client, settings)

        # A viewer and another researcher cannot see, change or use it.
        for who in (victor, mallory):
            response = await client.get("/api/configs/alice-cfg", headers=bearer(who))
            assert response.status_code == 404 and response.json()["code"] == "config_not_found"
            listing = await client.get("/api/configs", headers=bearer(who))
            assert listing.status_code == 200 and "alice-cfg" not in listing.text
        response = await client.put("/api/configs/alice-cfg", json=body, headers=bearer(mallory))
        assert response.status_code == 409 and response.json()["code"] == "config_name_taken"
        response = await client.delete("/api/configs/alice-cfg", headers=bearer(mallory))
        assert response.status_code == 404
        for url in ("/api/cloud/jobs/submit", "/api/cloud/jobs/preview"):
            response = await client.post(
                url, json={"config_name_to_load": "alice-cfg"}, headers=bearer(mallory)
            )
            assert response.status_code == 404, response.text
            assert "PUT /api/configs/alice-cfg" in response.json()["detail"]

        # An admin sees it (masked); sending `***` back keeps the stored secret.
        seen = (await client.get("/api/configs/alice-cfg", headers=bearer(admin))).json()
        assert seen["config"]["--hub_token"] == "***"
        seen_body = {"config": seen["config"], "dataloader_config": seen["dataloader_config"]}
        seen_body["config"]["--max_train_steps"] = 3
        response = await client.put(
            "/api/configs/alice-cfg", json=seen_body, headers=bearer(alice)
        )
        assert response.status_code == 200, response.text
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with ctx.db.read() as session:
            sealed = session.execute(
                text("SELECT secrets_ciphertext FROM named_configs WHERE name = 'alice-cfg'")
            ).scalar_one()
        secrets = dict(ctx.secret_box.open_secrets(sealed))
        assert secrets[("config", "--hub_token")] == HUB_TOKEN

    async def test_submit_by_name_needs_config_view(
        self, client: httpx.AsyncClient, dataset: Path
    ) -> None:
        admin = await setup_admin(client)
        alice = await add_user(client, admin, "alice", "researcher")
        await client.put(
            "/api/configs/mine", json=job_body(dataset, Path("x")), headers=bearer(alice)
        )
        key = await client.post(
            "/api/cloud/auth/api-keys",
            json={"name": "ci", "scoped_permissions": ["job.submit"]},
            headers=bearer(alice),
        )
        response = await client.post(
            "/api/cloud/jobs/preview",
            json={"config_name_to_load": "mine"},
            headers=bearer(key.json()["key"]),
        )
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"


async def test_two_users_creating_one_name_at_once(
    client: httpx.AsyncClient, dataset: Path
) -> None:
    """The name is claimed by the database before any file is written: exactly one of two
    concurrent creators wins, and the config holds the winner's values."""
    admin = await setup_admin(client)
    sessions = {
        name: await add_user(client, admin, name, "researcher") for name in ("alice", "mallory")
    }

    async def put(name: str, who: str) -> tuple[str, int]:
        body = job_body(dataset, Path(who))
        response = await client.put(
            f"/api/configs/{name}", json=body, headers=bearer(sessions[who])
        )
        return who, response.status_code

    for i in range(15):
        name = f"race{i}"
        results = dict(await asyncio.gather(put(name, "alice"), put(name, "mallory")))
        winners = [who for who, status in results.items() if status == 201]
        assert len(winners) == 1, results
        loser = "mallory" if winners == ["alice"] else "alice"
        assert results[loser] == 409
        stored = await client.get(f"/api/configs/{name}", headers=bearer(sessions[winners[0]]))
        assert stored.json()["config"]["--output_dir"] == winners[0]


class TestJobSecrets:
    @pytest.mark.trainer
    async def test_secrets_reach_the_trainer_by_environment_only(
        self,
        client: httpx.AsyncClient,
        dataset: Path,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_server_only")
        monkeypatch.setenv("CLOUDTUNE_DATABASE_URL", "postgresql://u:pw@db/x")
        monkeypatch.setenv("SOME_OTHER_SECRET", "nope")
        body = config_with_secret(dataset, **{"--max_train_steps": 100_000})
        response = await client.post(SUBMIT, json=body)
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        await wait_for_status(client, job_id, {"running"})
        run_dir = settings.runs_dir / job_id
        pid = await _trainer_pid(run_dir)
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
            if "=" in item
        )
        assert environ["HF_TOKEN"] == HUB_TOKEN
        assert environ["AWS_SECRET_ACCESS_KEY"] == "aws-" + HUB_TOKEN
        assert json.loads(environ["CLOUDTUNE_JOB_SECRETS"])
        for leaked in ("REPLICATE_API_TOKEN", "CLOUDTUNE_DATABASE_URL", "SOME_OTHER_SECRET"):
            assert leaked not in environ
        job = (await client.get(f"/api/cloud/jobs/{job_id}")).json()["job"]
        assert job["config_snapshot"]["config"]["--hub_token"] == "***"
        assert HUB_TOKEN not in stored_everywhere(client, settings)
        await client.post(f"/api/cloud/jobs/{job_id}/cancel")

    @pytest.mark.trainer
    async def test_the_home_and_its_files_are_the_server_users_alone(
        self, client: httpx.AsyncClient, dataset: Path, settings: Settings
    ) -> None:
        response = await client.post(SUBMIT, json=job_body(dataset, Path("lora"), steps=1))
        job_id = response.json()["job_id"]
        await wait_for_status(client, job_id, {"completed", "failed"})
        assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
        for path in (settings.runs_dir / job_id / "config.json",):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        if settings.resolved_database_url.startswith("sqlite"):
            database = settings.resolved_database_url.removeprefix("sqlite:///")
            assert stat.S_IMODE(os.stat(database).st_mode) == 0o600


async def _trainer_pid(run_dir: Path) -> int:
    for _ in range(200):
        record = run_dir / "process.json"
        if record.is_file():
            return int(json.loads(record.read_text())["pid"])
        await asyncio.sleep(0.05)
    raise AssertionError("the trainer recorded no pid")
