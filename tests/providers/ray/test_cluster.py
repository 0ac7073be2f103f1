"""The shared Ray test head answers its Jobs REST API and runs a job: the ground the ray
provider's tests stand on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.ray

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@pytest.fixture
def http(ray_address: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ray_address, timeout=30) as client:
        yield client


def test_head_is_ray_2_60(http: httpx.Client) -> None:
    version = http.get("/api/version")

    assert version.status_code == 200
    assert version.json()["ray_version"].startswith("2.60.")


def test_head_has_one_alive_node_with_four_cpus(http: httpx.Client) -> None:
    body = http.get("/api/v0/nodes").json()

    nodes = body["data"]["result"]["result"]
    assert [n["state"] for n in nodes] == ["ALIVE"]
    assert nodes[0]["resources_total"]["CPU"] == 4


def test_a_submitted_job_runs_and_its_logs_hold_its_output(http: httpx.Client) -> None:
    submission_id = f"test-{uuid.uuid4().hex}"

    created = http.post(
        "/api/jobs/",
        json={"entrypoint": "python -c 'print(42)'", "submission_id": submission_id},
    )

    assert created.status_code == 200, created.text
    assert created.json()["submission_id"] == submission_id
    job = _wait_terminal(http, submission_id, timeout=120)
    assert job["status"] == "SUCCEEDED", job
    logs = http.get(f"/api/jobs/{submission_id}/logs")
    assert "42" in logs.json()["logs"].split()


def _wait_terminal(http: httpx.Client, submission_id: str, timeout: float) -> dict[str, Any]:
    # Waits on a real Ray driver process; the sleep paces the polling and asserts nothing.
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/api/jobs/{submission_id}").json()
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.2)
