"""Finding 10 (nesting): deeply nested configs and dataloaders are refused with a 4xx, never a
500, and nothing is stored that cannot be read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import job_body, make_dataset


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def post_json(client: httpx.AsyncClient, method: str, url: str, body: Any) -> Any:
    # Sent as raw text: the client's own encoder has nothing to do with the server's limits.
    return client.request(
        method, url, content=json.dumps(body), headers={"content-type": "application/json"}
    )


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    return job_body(make_dataset(tmp_path / "ds", 2, size=16), tmp_path / "out")


@pytest.mark.parametrize("depth", [65, 300, 600, 900])
async def test_deep_configs_are_refused(
    client: httpx.AsyncClient, body: dict[str, Any], depth: int
) -> None:
    attempts = []
    deep_config = json.loads(json.dumps(body))
    deep_config["config"]["--deep"] = nested(depth)
    attempts.append(("POST", "/api/cloud/jobs/submit", deep_config))
    attempts.append(("POST", "/api/cloud/jobs/preview", deep_config))
    attempts.append(("PUT", "/api/configs/deep", deep_config))
    deep_loader = json.loads(json.dumps(body))
    deep_loader["dataloader_config"].append(nested(depth))
    attempts.append(("POST", "/api/cloud/jobs/submit", deep_loader))
    attempts.append(("PUT", "/api/configs/deep", deep_loader))
    for method, url, sent in attempts:
        response = await post_json(client, method, url, sent)
        assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
        assert response.json()["success"] is False
    listing = await client.get("/api/cloud/jobs")
    assert listing.status_code == 200 and listing.json()["total"] == 0
    assert (await client.get("/api/configs")).json()["configs"] == []


@pytest.mark.trainer
async def test_nesting_within_the_limit_is_stored_and_read_back(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    body["config"]["--deep"] = nested(60)
    response = await post_json(client, "POST", "/api/cloud/jobs/submit", body)
    assert response.status_code == 200, response.text
    job = await client.get(f"/api/cloud/jobs/{response.json()['job_id']}")
    assert job.status_code == 200
