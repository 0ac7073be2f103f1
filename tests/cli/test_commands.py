"""The CLI as a user runs it: a subprocess against a real server, with no users and with
users (a key from CLOUDTUNE_API_KEY, and a saved login)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.client import models
from tests.e2e.test_server import ServerProcess
from tests.factories import job_body, make_dataset

pytestmark = [pytest.mark.e2e]

ADMIN = {"username": "admin", "email": "admin@example.com", "password": "correct horse 42"}


class Cli:
    def __init__(self, server: ServerProcess, home: Path) -> None:
        self.server = server
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CLOUDTUNE_API_KEY", "SIMPLETUNER_URL", "CLOUDTUNE_URL")
        }
        self.env.update(
            CLOUDTUNE_URL=server.url,
            CLOUDTUNE_CREDENTIALS_FILE=str(home / "credentials.json"),
            COLUMNS="200",
        )

    def command(self, *args: str, **env: str) -> list[str]:
        return [sys.executable, "-m", "cloudtune.cli.main", *args]

    def run(
        self, *args: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=240,
            input=input,
        )

    def json(self, *args: str, **env: str) -> Any:
        done = self.run(*args, "--json", **env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    server = ServerProcess(tmp_path / "home", f"sqlite:///{tmp_path / 'test.db'}")
    server.start()
    try:
        yield Cli(server, tmp_path)
    finally:
        server.stop()


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    return lines[0]


@pytest.mark.trainer
def test_submit_wait_and_read_a_job_with_no_users(cli: Cli, tmp_path: Path) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=6)
    config = tmp_path / "shapes.json"
    config.write_text(json.dumps(body))
    saved = cli.run("configs", "save", "shapes", str(config), "--description", "tiny")
    assert saved.returncode == 0, saved.stderr
    assert [c["name"] for c in cli.json("configs", "list")] == ["shapes"]

    done = cli.run(
        "jobs",
        "submit",
        "shapes",
        "--provider",
        "local",
        "--run-name",
        "cli-run",
        "--idempotency-key",
        "commit-abc",
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout
    page = cli.json("jobs", "list")
    models.JobPage.model_validate(page)  # the API's schema
    api = httpx.get(f"{cli.server.url}/api/cloud/jobs").json()
    assert page["total"] == api["total"] == 1
    assert set(page["jobs"][0]) >= set(api["jobs"][0]) - {"config_snapshot"}
    job = page["jobs"][0]
    assert (job["status"], job["tracker_run_name"]) == ("completed", "cli-run")
    again = cli.json(
        "jobs", "submit", "shapes", "--provider", "local", "--idempotency-key", "commit-abc"
    )
    assert again["job_id"] == job["job_id"] and again["idempotent_hit"] is True

    assert "training done" in cli.run("jobs", "logs", job["job_id"]).stdout
    assert cli.run("jobs", "wait", job["job_id"]).returncode == 0
    folder = tmp_path / "downloaded"
    listing = cli.json("jobs", "outputs", job["job_id"], "--download", str(folder))
    names = {f["path"] for f in listing["files"]}
    assert "pytorch_lora_weights.safetensors" in names
    for name in names:
        assert (folder / name).read_bytes() == (tmp_path / "out" / name).read_bytes()
    summary = cli.json("jobs", "preview", "shapes", "--provider", "local")
    assert summary["files"] == 8 and summary["data_leaves_machine"] is False


@pytest.mark.trainer
def test_a_job_cancelled_meanwhile_makes_wait_exit_1(cli: Cli, tmp_path: Path) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=100000)
    config = tmp_path / "long.json"
    config.write_text(json.dumps(body))
    job_id = cli.json("jobs", "submit", str(config), "--provider", "local")["job_id"]
    waiting = subprocess.Popen(
        cli.command("jobs", "wait", job_id),
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while cli.server.job(job_id)["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = cli.run("jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 1, (out, err)
    assert "cancelled" in out


def test_no_server_is_one_line_and_exit_2(cli: Cli) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = cli.run("--url", f"http://127.0.0.1:{port}", "jobs", "list")
    assert done.returncode == 2
    assert "cannot reach" in _one_line_error(done)
    usage = cli.run("jobs", "list", "--no-such-flag")
    assert usage.returncode == 2


def test_multi_user_keys_login_and_refusals(cli: Cli, tmp_path: Path) -> None:
    made = cli.server.post("/api/auth/setup/first-admin", json=ADMIN)
    assert made.status_code == 200, made.text
    anonymous = cli.run("jobs", "list")
    assert anonymous.returncode == 1
    assert "authentication_required" in _one_line_error(anonymous)

    login = cli.run("login", "--username", "admin", "--password", ADMIN["password"])
    assert login.returncode == 0, login.stderr
    credentials = tmp_path / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert cli.json("whoami")["role"] == "admin"

    key = cli.json("keys", "create", "ci", "--scope", "job.view.own", "--expires-days", "7")
    assert key["key"].startswith("stk_")
    with_key = {"CLOUDTUNE_API_KEY": key["key"]}
    assert cli.json("whoami", **with_key)["auth_method"] == "api_key"
    body = job_body(make_dataset(tmp_path / "data", 2, size=32), tmp_path / "out")
    config = tmp_path / "c.json"
    config.write_text(json.dumps(body))
    scoped = cli.run("jobs", "submit", str(config), "--provider", "local", **with_key)
    assert scoped.returncode == 1
    assert "job.submit" in _one_line_error(scoped)

    limit = cli.json(
        "cost-limit", "set", "--amount", "0", "--period", "daily", "--action", "block", "--enable"
    )
    assert (limit["enabled"], limit["action"]) == (True, "block")
    users = cli.json("users", "list")
    assert [u["username"] for u in users] == ["admin"]
    made_user = cli.run(
        "users",
        "create",
        "--username",
        "rita",
        "--email",
        "rita@example.com",
        "--role",
        "viewer",
        "--password",
        "password-rita",
    )
    assert made_user.returncode == 0, made_user.stderr
    assert cli.json("users", "set-role", "rita", "researcher")["role"] == "researcher"

    revoked = cli.run("keys", "revoke", cli.json("keys", "list")[0]["id"])
    assert revoked.returncode == 0, revoked.stderr
    gone = cli.run("jobs", "list", **with_key)
    assert gone.returncode == 1 and "invalid_api_key" in _one_line_error(gone)

    assert cli.run("logout").returncode == 0
    assert not credentials.exists()
    assert cli.run("jobs", "list").returncode == 1


def test_a_refused_submit_gives_the_servers_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDTUNE_HARDWARE__LOCAL_PER_HOUR_USD", "36")
    server = ServerProcess(tmp_path / "home", f"sqlite:///{tmp_path / 'test.db'}")
    server.start()
    try:
        cli = Cli(server, tmp_path)
        cli.json(
            "cost-limit",
            "set",
            "--amount",
            "0",
            "--period",
            "daily",
            "--action",
            "block",
            "--enable",
        )
        body = job_body(make_dataset(tmp_path / "data", 2, size=32), tmp_path / "out")
        config = tmp_path / "c.json"
        config.write_text(json.dumps(body))
        refused = cli.run("jobs", "submit", str(config), "--provider", "local")
        assert refused.returncode == 1
        line = _one_line_error(refused)
        assert "cost_limit_exceeded" in line and "limit" in line
        assert cli.json("jobs", "list")["total"] == 0
    finally:
        server.stop()


@pytest.mark.trainer
def test_a_pushed_dataset_trains_and_its_log_is_followed(cli: Cli, tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", 4, size=32)
    (data / ".env").write_text("SECRET=1")  # hidden files stay home
    pushed = cli.json("datasets", "push", "shapes", str(data))
    assert pushed["files"] == 8
    assert cli.json("datasets", "list") == ["shapes"]
    body = job_body(data, tmp_path / "out", steps=5)
    loader = body["dataloader_config"][0]
    del loader["instance_data_dir"]
    loader["dataset"] = "shapes"
    config = tmp_path / "c.json"
    config.write_text(json.dumps(body))
    job_id = cli.json("jobs", "submit", str(config), "--provider", "local")["job_id"]
    followed = cli.run("jobs", "logs", job_id, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "training done" in followed.stdout
    assert not list((cli.server.home / "cloud_outputs").rglob(".env"))


def test_providers_token_validate_and_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.fakes.replicate import running_fake

    with running_fake() as fake:
        monkeypatch.setenv("CLOUDTUNE_REPLICATE_BASE_URL", fake.base_url)
        monkeypatch.delenv("REPLICATE_API_TOKEN", raising=False)
        server = ServerProcess(tmp_path / "home", f"sqlite:///{tmp_path / 'test.db'}")
        server.start()
        try:
            cli = Cli(server, tmp_path)
            listed = {p["id"]: p for p in cli.json("providers", "list")}
            assert listed["replicate"]["configured"] is False
            refused = cli.run("providers", "validate", "replicate")
            assert refused.returncode == 1
            saved = cli.run("providers", "set-token", "replicate", "--token", fake.token)
            assert saved.returncode == 0, saved.stderr
            assert fake.token not in saved.stdout + saved.stderr
            check = cli.json("providers", "validate", "replicate")
            assert check["valid"] is True
            changed = cli.json(
                "providers", "set", "replicate", "webhook_url=https://tune.example.com"
            )
            assert changed["webhook_url"] == "https://tune.example.com"
            bad = cli.run("providers", "set", "replicate", "webhook_url=ftp://x")
            assert bad.returncode == 1 and "webhook" in _one_line_error(bad).lower()
            usage = cli.run("providers", "set", "replicate", "no-equals-sign")
            assert usage.returncode == 2
        finally:
            server.stop()
