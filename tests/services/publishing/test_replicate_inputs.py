"""A Replicate job's publishing reaches the trainer model as its predict.py inputs
(`hub_model_id` with `hf_token`, the `s3_*` inputs), through the fake Replicate; the token and
keys stay out of the job's JSON and the server's logs. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloudtune.settings import Settings
from tests.factories import job_body, make_dataset
from tests.fakes.replicate import FakeReplicate, running_fake, settings_for
from tests.services.publishing.conftest import HUB_TOKEN, S3_KEY_ID, S3_SECRET


@pytest.fixture
def fake() -> Iterator[FakeReplicate]:
    with running_fake() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, fake: FakeReplicate) -> Settings:
    return settings_for(fake, tmp_path / "home", database_url)


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    spec = job_body(make_dataset(tmp_path / "dataset", 4, size=32), tmp_path / "output")
    spec["config"]["--model_family"] = "flux"
    return spec


async def test_publish_settings_are_prediction_inputs_only(
    client: httpx.AsyncClient,
    fake: FakeReplicate,
    body: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloudtune")
    body["publish"] = {
        "hub": {"repo_id": "me/flux-lora", "token": HUB_TOKEN},
        "s3": {
            "bucket": "team-models",
            "prefix": "loras",
            "region": "eu-west-1",
            "endpoint_url": "https://s3.example.com",
            "access_key_id": S3_KEY_ID,
            "secret_access_key": S3_SECRET,
        },
    }

    submitted = await client.post("/api/cloud/jobs/submit?provider=replicate", json=body)

    assert submitted.status_code == 200, submitted.text
    job_id = submitted.json()["job_id"]
    (prediction,) = fake.predictions.values()
    inputs = prediction.input
    assert inputs["hub_model_id"] == "me/flux-lora" and inputs["hf_token"] == HUB_TOKEN
    assert {k: v for k, v in inputs.items() if k.startswith("s3_")} == {
        "s3_bucket": "team-models",
        "s3_base_path": f"loras/{job_id}",
        "s3_region": "eu-west-1",
        "s3_endpoint_url": "https://s3.example.com",
        "s3_access_key": S3_KEY_ID,
        "s3_secret_key": S3_SECRET,
    }
    for secret in (HUB_TOKEN, S3_KEY_ID, S3_SECRET):
        assert secret not in inputs["config_json"]
        assert secret not in (await client.get(f"/api/cloud/jobs/{job_id}")).text
        assert secret not in caplog.text
    # The trainer publishes a remote job's outputs itself: the server plans no publish of it.
    state = (await client.get(f"/api/cloud/jobs/{job_id}/publish")).json()
    assert state["publish"] is None
