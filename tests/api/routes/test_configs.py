from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.routes.test_jobs import assert_envelope

CONFIG = {
    "config": {"--model_family": "reference", "--max_train_steps": 10},
    "dataloader_config": [{"id": "d", "type": "local", "instance_data_dir": "/data"}],
}


async def test_configs_round_trip_in_simpletuner_layout(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    assert (await client.put("/api/configs/first", json=CONFIG)).status_code == 201
    assert (await client.put("/api/configs/first", json=CONFIG)).status_code == 200
    folder = tmp_path / "home" / "configs" / "first"
    assert (folder / "config.json").is_file() and (folder / "multidatabackend.json").is_file()
    got = (await client.get("/api/configs/first")).json()
    assert got["config"]["--max_train_steps"] == 10
    assert got["dataloader_config"][0]["instance_data_dir"] == "/data"
    created = await client.post("/api/configs", json={"name": "second", **CONFIG})
    assert created.status_code == 201
    assert_envelope(await client.post("/api/configs", json={"name": "second", **CONFIG}), 409)
    listed = (await client.get("/api/configs")).json()["configs"]
    assert [c["name"] for c in listed] == ["first", "second"]
    assert (await client.delete("/api/configs/first")).json()["success"] is True
    assert_envelope(await client.get("/api/configs/first"), 404, "config_not_found")


async def test_bad_names_and_bodies(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.put("/api/configs/..hidden", json=CONFIG), 400)
    # An encoded slash is a path separator: no route matches, and nothing is written.
    assert_envelope(await client.put("/api/configs/a%2F..%2Fb", json=CONFIG), 404)
    bad = {"config": {"--max_train_steps": -3}, "dataloader_config": []}
    assert_envelope(await client.put("/api/configs/x", json=bad), 400, "invalid_config")
    assert_envelope(await client.put("/api/configs/x", json={"dataloader_config": []}), 422)


async def test_a_dropped_in_simpletuner_folder_is_read(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    folder = tmp_path / "home" / "configs" / "dropped"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"--model_family": "reference"}')
    (folder / "multidatabackend.json").write_text('[{"id": "x", "instance_data_dir": "/d"}]')
    got = (await client.get("/api/configs/dropped")).json()
    assert got["dataloader_config"][0]["id"] == "x"


async def test_a_config_keeps_its_description_and_lists_its_summary(
    client: httpx.AsyncClient,
) -> None:
    config = {"--model_family": "flux", "--model_type": "lora", "--lora_type": "lycoris"}
    body = {"name": "described", "description": "probe", "config": config}
    created = await client.post("/api/configs/", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["metadata"]["description"] == "probe"
    assert created.json()["message"] and created.json()["validation"]["warnings"] == []
    # A PUT without a description keeps it; "" clears it.
    kept = await client.put("/api/configs/described", json={"config": config})
    assert kept.json()["metadata"]["description"] == "probe"
    listed = (await client.get("/api/configs")).json()
    assert listed["count"] == listed["total"] == 1 and listed["config_type"] == "model"
    (item,) = listed["configs"]
    assert item["description"] == "probe" and item["model_family"] == "flux"
    assert item["lora_type"] == "lycoris" and item["has_dataloader"] is False
    assert item["created_at"] and item["modified_at"]
    cleared = await client.put(
        "/api/configs/described", json={"config": config, "description": ""}
    )
    assert cleared.json()["metadata"]["description"] is None


async def test_unknown_fields_and_a_second_name_are_refused(client: httpx.AsyncClient) -> None:
    body = {"name": "x", "config": {"--model_family": "flux"}, "tags": ["a"]}
    refused = await client.post("/api/configs", json=body)
    assert refused.status_code == 400 and refused.json()["code"] == "unsupported_field"
    assert "tags" in refused.json()["error"]
    other = await client.put("/api/configs/x", json={"name": "y", "config": {"a": 1}})
    assert other.status_code == 400 and other.json()["code"] == "invalid_config_name"
    assert (await client.get("/api/configs")).json()["configs"] == []
