"""Finding 10 and the probe after it: text that cannot be answered (lone surrogate escapes,
undecodable file names), unknown fields, and oversized lists are refused with a 4xx, never a
500, and nothing is stored that cannot be read back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.factories import job_body, make_dataset

SUBMIT = "/api/cloud/jobs/submit?provider=local"
PREVIEW = "/api/cloud/jobs/preview?provider=local"
SURROGATE = '"\\ud800"'  # as JSON text: a lone surrogate escape


@pytest.fixture
def body(tmp_path: Path) -> dict[str, Any]:
    return job_body(make_dataset(tmp_path / "ds", 2, size=16), tmp_path / "out")


def with_surrogate(body: dict[str, Any], where: str) -> str:
    """The body as JSON text with one value replaced by a lone surrogate escape."""
    marked = {**body, "config": dict(body["config"])}
    marked["dataloader_config"] = [dict(body["dataloader_config"][0])]
    if where == "config value":
        marked["config"]["--note"] = "MARK"
    elif where == "model_family":
        marked["config"]["--model_family"] = "MARK"
    elif where == "output_dir":
        marked["config"]["--output_dir"] = "MARK"
    elif where == "dataset id":
        marked["dataloader_config"][0]["id"] = "MARK"
    elif where == "config key":
        marked["config"]["MARK"] = 1
    else:
        marked[where] = "MARK"
    return json.dumps(marked).replace('"MARK"', SURROGATE)


@pytest.mark.parametrize(
    "where",
    [
        "config value",
        "model_family",
        "output_dir",
        "dataset id",
        "config key",
        "tracker_run_name",
        "idempotency_key",
    ],
)
async def test_lone_surrogates_are_refused(
    client: httpx.AsyncClient, body: dict[str, Any], where: str
) -> None:
    text = with_surrogate(body, where)
    for url in (SUBMIT, PREVIEW):
        response = await client.post(
            url, content=text, headers={"content-type": "application/json"}
        )
        assert response.status_code in (400, 422), (where, response.status_code, response.text)
    listing = await client.get("/api/cloud/jobs")
    assert listing.status_code == 200 and listing.json()["total"] == 0


async def test_an_undecodable_file_name_is_left_out(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    dataset = body["dataloader_config"][0]["instance_data_dir"]
    with open(os.path.join(os.fsencode(dataset), b"\xff\xfe.png"), "wb") as f:
        f.write(b"not really an image")
    response = await client.post(PREVIEW, json=body)
    assert response.status_code == 200, response.text
    excluded = response.json()["excluded"]["name not valid UTF-8"]
    assert excluded["examples"] == ["training-images/\\udcff\\udcfe.png"]


async def test_unknown_fields_are_refused_by_name(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await client.post(SUBMIT, json=body | {"snapshot_name": "x", "upload_id": "y"})
    assert response.status_code == 400, response.text
    data = response.json()
    assert data["code"] == "unsupported_field"
    assert data["fields"] == ["snapshot_name", "upload_id"]


async def test_too_many_datasets_are_refused(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    body["dataloader_config"] = body["dataloader_config"] * 257
    response = await client.post(PREVIEW, json=body)
    assert response.status_code == 400 and response.json()["code"] == "invalid_config"


async def test_a_named_config_key_overridden_without_dashes(
    client: httpx.AsyncClient, body: dict[str, Any], tmp_path: Path
) -> None:
    assert (await client.put("/api/configs/base", json=body)).status_code == 201
    response = await client.post(
        PREVIEW,
        json={"config_name_to_load": "base", "config": {"max_train_steps": 7}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["max_train_steps"] == 7
