"""End to end: real `cloudtune server` processes, real trainers, real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import TERMINAL, free_port
from tests.factories import job_body, make_dataset

pytestmark = [pytest.mark.e2e, pytest.mark.trainer]


class ServerProcess:
    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.port = free_port()
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            CLOUDTUNE_HOME=str(self.home),
            CLOUDTUNE_DATABASE_URL=self.database_url,
            CLOUDTUNE_RECONCILE_INTERVAL_SECONDS="0.5",
        )
        log = open(self.home.parent / f"server-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cloudtune.cli.main", "server", "--port", str(self.port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited at start"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not answer /health")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=30, **kwargs)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/api/cloud/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()["job"]  # type: ignore[no-any-return]

    def wait(self, job_id: str, wanted: set[str], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in wanted:
                return job
            assert time.monotonic() < deadline, f"job still {job['status']}"
            time.sleep(0.2)


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "home", database_url)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "dataset", 4, size=32)


def test_a_local_job_runs_to_completion(
    server: ServerProcess, dataset: Path, tmp_path: Path
) -> None:
    body = job_body(dataset, tmp_path / "output", steps=10)
    submitted = server.post("/api/cloud/jobs/submit?provider=local", json=body)
    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]

    lines, events = [], []
    with httpx.stream(
        "GET", f"{server.url}/api/cloud/jobs/{job_id}/logs/stream", timeout=120
    ) as sse:
        assert sse.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in sse.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data = line.split(":", 1)[1].strip()
                (events if event else lines).append((event, data) if event else data)
                event = None
    # The stream ends by itself: the final status, then the end marker clients wait for.
    assert events[-2:] == [("done", "completed"), ("done", "stream_end")]
    assert ("status", "running") in events or ("status", "completed") in events
    assert any(line.startswith("step 10/10") for line in lines)

    job = server.job(job_id)
    assert job["status"] == "completed" and job["progress"]["step"] == 10
    logs = server.get(f"/api/cloud/jobs/{job_id}/logs", params={"tail": 3}).json()["logs"]
    assert "training done" in logs
    assert (tmp_path / "output" / "pytorch_lora_weights.safetensors").is_file()


def wait_until_gone(pid: int, message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def _trainer_pid(server: ServerProcess, job_id: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = server.job(job_id)
        if job["status"] == "running" and job["metadata"].get("pid"):
            return int(job["metadata"]["pid"])
        time.sleep(0.2)
    raise AssertionError("the job never reported a trainer pid")


def _kill_server_during_a_job(
    server: ServerProcess, dataset: Path, output: Path
) -> tuple[str, int]:
    """Submit a long job, wait for its trainer, SIGKILL the server: (job id, trainer pid)."""
    body = job_body(dataset, output, steps=100000)
    job_id = server.post("/api/cloud/jobs/submit?provider=local", json=body).json()["job_id"]
    pid = _trainer_pid(server, job_id)
    server.kill()
    return job_id, pid


def test_a_sigkilled_server_re_adopts_its_running_trainer(
    server: ServerProcess, dataset: Path, tmp_path: Path
) -> None:
    job_id, pid = _kill_server_during_a_job(server, dataset, tmp_path / "output")
    assert psutil.pid_exists(pid), "the trainer must survive its server"

    server.start()
    job = server.job(job_id)
    assert job["status"] == "running" and job["metadata"]["pid"] == pid
    before = job["progress"]["step"] or 0
    deadline = time.monotonic() + 60
    while (server.job(job_id)["progress"]["step"] or 0) <= before:
        assert time.monotonic() < deadline, "no progress reached the restarted server"
        time.sleep(0.2)
    assert server.post(f"/api/cloud/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    wait_until_gone(pid, "the re-adopted trainer was not stopped")


def test_a_trainer_that_died_with_its_server_is_failed_with_a_reason(
    server: ServerProcess, dataset: Path, tmp_path: Path
) -> None:
    job_id, pid = _kill_server_during_a_job(server, dataset, tmp_path / "output")
    os.killpg(pid, signal.SIGKILL)
    wait_until_gone(pid, "the killed trainer is still there")

    server.start()
    job = server.wait(job_id, TERMINAL, timeout=30)
    assert job["status"] == "failed"
    assert "no longer running after the server restarted" in job["error_message"]
