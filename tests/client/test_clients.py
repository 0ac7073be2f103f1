"""Both SDK clients against a real server process: typed answers, typed refusals, logs that
stream while a job runs, and a wait that ends with the job."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from cloudtune.client import Client, errors
from tests.e2e.test_server import ServerProcess
from tests.factories import job_body, make_dataset

pytestmark = [pytest.mark.e2e]

ADMIN = {"username": "admin", "email": "admin@example.com", "password": "correct horse 42"}


@pytest.mark.trainer
def test_a_named_config_trains_to_completion_through_the_sync_client(
    server: ServerProcess, tmp_path: Path
) -> None:
    body = job_body(make_dataset(tmp_path / "data", 4, size=32), tmp_path / "out", steps=8)
    with Client(server.url) as client:
        saved = client.save_config("shapes", body["config"], body["dataloader_config"])
        assert saved.name == "shapes" and saved.config["--max_train_steps"] == 8
        assert [c.name for c in client.list_configs()] == ["shapes"]

        submitted = client.submit(
            {"config_name_to_load": "shapes"}, provider="local", idempotency_key="build-1"
        )
        again = client.submit(
            {"config_name_to_load": "shapes"}, provider="local", idempotency_key="build-1"
        )
        assert again.job_id == submitted.job_id and again.idempotent_hit

        seen: list[str] = []
        done = client.wait(
            submitted.job_id, interval=0.2, on_update=lambda j: seen.append(j.status)
        )
        assert done.status == "completed" and done.progress.step == 8
        assert seen[-1] == "completed"
        assert "training done" in client.logs(done.job_id)
        files = {f.path for f in client.outputs(done.job_id).files}
        assert "pytorch_lora_weights.safetensors" in files
        kinds = [
            (e.from_status, e.to_status) for e in client.events(done.job_id) if e.kind == "status"
        ]
        assert kinds[-1][1] == "completed"
        # A finished job's stream gives its log, its status, and the end.
        streamed = list(client.stream_logs(done.job_id))
        assert streamed[-1].event == "done" and streamed[-1].data == "stream_end"
        assert any(e.event is None and "training done" in e.data for e in streamed)
        assert client.list_jobs(status=["completed"]).total == 1

        client.delete_job(done.job_id)
        with pytest.raises(errors.JobNotFound) as gone:
            client.get_job(done.job_id)
        assert gone.value.status == 404 and done.job_id in gone.value.message
        client.delete_config("shapes")
        with pytest.raises(errors.ConfigNotFound):
            client.get_config("shapes")


def test_refusals_raise_their_codes_class(server: ServerProcess, tmp_path: Path) -> None:
    with Client(server.url) as client:
        with pytest.raises(errors.InvalidRequest) as bad:
            client.submit(job_body(tmp_path / "missing", tmp_path / "out"), provider="local")
        assert bad.value.code in errors.BY_CODE and bad.value.status == 400
        with pytest.raises(errors.UnknownProvider):
            client.submit(job_body(tmp_path / "missing", tmp_path / "out"), provider="nope")
        with pytest.raises(errors.UnsupportedField) as unknown:
            client.submit({"config_name_to_load": "x", "surprise": 1}, provider="local")
        assert "surprise" in unknown.value.message


def test_keys_scopes_and_the_cost_limit_in_multi_user_mode(server: ServerProcess) -> None:
    made = server.post("/api/auth/setup/first-admin", json=ADMIN)
    assert made.status_code == 200, made.text
    with Client(server.url) as anonymous, pytest.raises(errors.AuthenticationRequired):
        anonymous.list_jobs()
    with Client(server.url) as admin:
        with pytest.raises(errors.InvalidCredentials):
            admin.login(ADMIN["username"], "wrong password")
        admin.login(ADMIN["username"], ADMIN["password"])
        assert admin.me().role == "admin"
        key = admin.create_key("ci", expires_days=7, permissions=["job.view.own"])
        assert key.key_info.scoped_permissions == ["job.view.own"]
        assert key.key not in str(admin.list_keys())
        limit = admin.set_cost_limit(enabled=True, limit_usd=5, period="weekly", action="block")
        assert (limit.enabled, limit.limit_usd, limit.action) == (True, 5.0, "block")
        assert admin.cost_limit().period == "weekly"

        with Client(server.url, api_key=key.key) as scoped:
            assert scoped.me().auth_method == "api_key"
            assert scoped.list_jobs().total == 0
            with pytest.raises(errors.PermissionDenied):
                scoped.submit({"config_name_to_load": "x"}, provider="local")
            admin.revoke_key(key.key_info.id)
            with pytest.raises(errors.AuthenticationRequired):
                scoped.list_jobs()
        admin.logout()
        with pytest.raises(errors.AuthenticationRequired):
            admin.me()


def test_no_server_is_server_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as client, pytest.raises(errors.ServerUnreachable):
        client.list_jobs()
