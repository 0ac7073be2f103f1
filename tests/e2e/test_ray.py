"""The ray provider end to end: a real `cloudtune server` process and a real Ray head
(tests/ray_cluster.py), the reference trainer running as a Ray job that reaches the server only
over HTTP (datasets and outputs through the built-in S3 endpoint, progress by webhook)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from safetensors.torch import load_file

from cloudtune.trainer.simpletuner import COMMAND_ENV
from tests.e2e.test_server import ServerProcess
from tests.e2e.test_tutorial import require_tutorial
from tests.factories import job_body, make_dataset
from tests.trainer.test_simpletuner import flux_body, standin

pytestmark = [pytest.mark.e2e, pytest.mark.trainer, pytest.mark.ray]

# The test cluster has 4 CPUs and no GPU; jobs of several tests may run at once.
RAY_SETTINGS = {"entrypoint_num_gpus": 0, "entrypoint_num_cpus": 0.5, "python": sys.executable}
WEIGHTS = "pytorch_lora_weights.safetensors"


def start_server(
    home: Path,
    database_url: str,
    ray_address: str,
    env: dict[str, str] | None = None,
    **ray: Any,
) -> ServerProcess:
    home.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(home, database_url)
    added = {"CLOUDTUNE_RAY_ADDRESS": ray_address, **(env or {})}
    os.environ.update(added)  # ServerProcess starts with this process's environment
    try:
        server.start()
    finally:
        for name in added:
            del os.environ[name]
    saved = httpx.put(
        f"{server.url}/api/cloud/providers/ray", json={**RAY_SETTINGS, **ray}, timeout=30
    )
    assert saved.status_code == 200, saved.text
    return server


@pytest.fixture
def ray_server(tmp_path: Path, ray_address: str) -> Iterator[ServerProcess]:
    server = start_server(
        tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'db.sqlite'}", ray_address
    )
    yield server
    server.stop()


def ray_job(ray_address: str, job_id: str) -> dict[str, Any] | None:
    response = httpx.get(f"{ray_address}/api/jobs/{job_id}", timeout=30)
    return response.json() if response.status_code == 200 else None  # type: ignore[no-any-return]


def wait_for_ray(ray_address: str, job_id: str, wanted: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        found = ray_job(ray_address, job_id)
        status = found["status"] if found else "gone"
        if status in wanted:
            return str(status)
        assert time.monotonic() < deadline, f"Ray job {job_id} still {status}"
        time.sleep(0.3)


def submit(server: ServerProcess, body: dict[str, Any], *, sent: bool = True) -> str:
    response = server.post("/api/cloud/jobs/submit?provider=ray", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["data_uploaded"] is sent
    return str(response.json()["job_id"])


def test_a_job_completes_with_its_weights_in_its_output_folder(
    tmp_path: Path, ray_address: str
) -> None:
    # One database: what the server stores of a Ray job is what it stores of any remote job,
    # which the provider-agnostic tests run on both.
    home = tmp_path / "home"
    server = start_server(home, f"sqlite:///{home / 'db.sqlite'}", ray_address)
    try:
        dataset = make_dataset(tmp_path / "dataset", 4, size=32)
        job_id = submit(server, job_body(dataset, tmp_path / "unused-output", steps=10))
        job = server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=240)
        assert job["status"] == "completed", job.get("error_message")
        assert job["progress"]["step"] == 10  # the trainer's webhook reached the server

        # The outputs came back through the endpoint into the job's folder on the server.
        folder = Path(job["output_url"])
        assert folder.is_relative_to(home) and (folder / WEIGHTS).is_file()
        assert load_file(folder / WEIGHTS)  # a real safetensors file of LoRA tensors
        listed = server.get(f"/api/cloud/jobs/{job_id}/outputs").json()["files"]
        assert {WEIGHTS, "training_summary.json"} <= {f["path"] for f in listed}
        served = server.get(f"/api/cloud/jobs/{job_id}/outputs/{WEIGHTS}")
        assert served.status_code == 200
        digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
        assert hashlib.sha256(served.content).hexdigest() == digest
        # The staged datasets are gone once fetched; nothing of the job's key is on disk.
        assert not (folder.parent / "inputs" / "datasets.zip").exists()

        # Ray forgets the job; its log stays readable here.
        assert httpx.delete(f"{ray_address}/api/jobs/{job_id}", timeout=30).status_code == 200
        assert ray_job(ray_address, job_id) is None
        logs = server.get(f"/api/cloud/jobs/{job_id}/logs").json()["logs"]
        assert "training done" in logs and "output files sent to the server" in logs
        assert server.job(job_id)["status"] == "completed"
    finally:
        server.stop()


def test_a_running_job_is_cancelled_on_the_cluster(
    ray_server: ServerProcess, tmp_path: Path, ray_address: str
) -> None:
    dataset = make_dataset(tmp_path / "dataset", 4, size=32)
    job_id = submit(ray_server, job_body(dataset, tmp_path / "out", steps=100_000))
    deadline = time.monotonic() + 180
    while ((ray_server.job(job_id).get("progress") or {}).get("step") or 0) < 1:
        assert time.monotonic() < deadline, "the job never reported a step"
        time.sleep(0.3)
    assert processes_of(job_id), "the job's trainer is not found on the node"
    cancelled = ray_server.post(f"/api/cloud/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert wait_for_ray(ray_address, job_id, {"STOPPED"}) == "STOPPED"
    assert ray_server.job(job_id)["status"] == "cancelled"
    # Its trainer is gone: no process of this job's is left on the node (other tests' jobs
    # may be running beside it).
    assert not processes_of(job_id)


def processes_of(job_id: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "cloudtune.trainer.remote" in (proc.info.get("cmdline") or []) and (
                proc.environ().get("CLOUDTUNE_JOB_ID") == job_id
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_a_failing_entrypoint_ends_failed_with_the_error(tmp_path: Path, ray_address: str) -> None:
    home = tmp_path / "home"
    server = start_server(
        home, f"sqlite:///{home / 'db.sqlite'}", ray_address, python="/nonexistent/python3"
    )
    try:
        dataset = make_dataset(tmp_path / "dataset", 4, size=32)
        job_id = submit(server, job_body(dataset, tmp_path / "out", steps=5))
        job = server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=120)
        assert job["status"] == "failed"
        assert "exit code 127" in job["error_message"], job["error_message"]
        logs = server.get(f"/api/cloud/jobs/{job_id}/logs").json()["logs"]
        assert "/nonexistent/python3" in logs
    finally:
        server.stop()


def test_a_trainer_error_is_the_jobs_error(ray_server: ServerProcess, tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "dataset", 4, size=32)
    # A base model on a path of the nodes: refused outside the folders they share for jobs,
    base = "/nonexistent/cluster/base.safetensors"
    model = {"--pretrained_model_name_or_path": base}
    body = job_body(dataset, tmp_path / "out", steps=5, **model)
    refused = ray_server.post("/api/cloud/jobs/submit?provider=ray", json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "path_not_allowed"
    # accepted under one of them, and missing there when the trainer opens it.
    shared = {"cluster_data_roots": ["/nonexistent/cluster"]}
    assert httpx.put(f"{ray_server.url}/api/cloud/providers/ray", json=shared).status_code == 200
    job_id = submit(ray_server, body)
    job = ray_server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=120)
    assert job["status"] == "failed"
    assert job["error_message"].startswith("training failed: "), job["error_message"]
    assert base in job["error_message"]


def test_the_tutorial_flow_passes_on_ray(ray_server: ServerProcess) -> None:
    result = subprocess.run(
        ["bash", str(require_tutorial()), ray_server.url],
        env={**os.environ, "PROVIDER": "ray", "WAIT_S": "300"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: tutorial flow (core,wait,keys)" in result.stdout


def test_a_dataset_the_nodes_see_is_read_there_not_sent(tmp_path: Path, ray_address: str) -> None:
    """A folder under `cluster_data_roots` is the nodes' own: named as it is, even where this
    server may not read (its data roots are elsewhere), and nothing is staged for it."""
    home, cluster_data = tmp_path / "home", tmp_path / "cluster-data"
    server_data = tmp_path / "server-data"
    server_data.mkdir()
    dataset = make_dataset(cluster_data / "shapes", 4, size=32)
    server = start_server(
        home,
        f"sqlite:///{home / 'db.sqlite'}",
        ray_address,
        env={"CLOUDTUNE_DATA_ROOTS": str(server_data)},
        cluster_data_roots=[str(cluster_data)],
    )
    try:
        body = job_body(dataset, tmp_path / "out", steps=5)
        local = server.post("/api/cloud/jobs/submit?provider=local", json=body)
        # Outside this server's data roots: a local job may not read it.
        assert local.status_code == 400 and local.json()["code"] == "path_not_allowed"
        job_id = submit(server, body, sent=False)
        job = server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=180)
        assert job["status"] == "completed", job.get("error_message")
        assert not (Path(job["output_url"]).parent / "inputs").exists()
        escaping = job_body(cluster_data / ".." / "server-data", tmp_path / "out", steps=5)
        refused = server.post("/api/cloud/jobs/submit?provider=ray", json=escaping)
        assert refused.status_code in (400, 403, 404), refused.text
    finally:
        server.stop()


def test_a_simpletuner_job_runs_on_the_cluster(tmp_path: Path, ray_address: str) -> None:
    """A SimpleTuner family on a node, through the stand-in that speaks SimpleTuner's contract
    (tests/fakes/simpletuner_standin.py), named by the node environment setting."""
    home = tmp_path / "home"
    server = start_server(
        home,
        f"sqlite:///{home / 'db.sqlite'}",
        ray_address,
        env_vars={COMMAND_ENV: standin("--step-seconds", "2")},
    )
    try:
        dataset = make_dataset(tmp_path / "dataset", 4, size=32)
        job_id = submit(server, flux_body(dataset, tmp_path / "out", 14))
        # Its validation images reach the server while it trains, not only at the end.
        first = "validation_images/step_2_validation_0_512x512.png"
        deadline = time.monotonic() + 180
        while first not in output_paths(server, job_id):
            assert server.job(job_id)["status"] in ("queued", "running"), server.job(job_id)
            assert time.monotonic() < deadline, "no validation image arrived while it ran"
            time.sleep(0.5)
        assert server.job(job_id)["status"] == "running"
        job = server.wait(job_id, {"completed", "failed", "cancelled"}, timeout=180)
        logs = server.get(f"/api/cloud/jobs/{job_id}/logs").json()["logs"]
        assert job["status"] == "completed", (job.get("error_message"), logs)
        assert job["progress"]["step"] == 14 and job["progress"]["total_steps"] == 14
        last = "validation_images/step_14_validation_0_512x512.png"
        assert {WEIGHTS, first, last} <= output_paths(server, job_id)
    finally:
        server.stop()


def output_paths(server: ServerProcess, job_id: str) -> set[str]:
    return {f["path"] for f in server.get(f"/api/cloud/jobs/{job_id}/outputs").json()["files"]}
