"""Datasets uploaded to the built-in S3 endpoint's `datasets` bucket, named in a dataloader as
`s3://datasets/<name>` or `"dataset": "<name>"`: each user reads only their own."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.routes.test_auth import add_user, bearer, setup_admin
from tests.factories import job_body, make_dataset


async def upload(
    client: httpx.AsyncClient, folder: Path, key_prefix: str, headers: dict[str, str]
) -> int:
    """Each file of `folder` as an object under `datasets/<key_prefix>`; how many."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for path in files:
        url = f"/api/cloud/storage/datasets/{key_prefix}{path.name}"
        stored = await client.put(url, content=path.read_bytes(), headers=headers)
        assert stored.status_code == 200, stored.text
    return len(files)


def body_naming(dataset: dict[str, str], output: Path) -> dict[str, object]:
    body = job_body(Path("unused"), output)
    loader = body["dataloader_config"]
    assert isinstance(loader, list)
    del loader[0]["instance_data_dir"]
    loader[0].update(dataset)
    return body


async def test_an_uploaded_dataset_is_packaged_as_a_folder_would_be(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    count = await upload(client, make_dataset(tmp_path / "shapes", 3, size=16), "shapes/", {})
    for named in ({"dataset": "shapes"}, {"instance_data_dir": "s3://datasets/shapes"}):
        preview = await client.post(
            "/api/cloud/jobs/preview?provider=local", json=body_naming(named, tmp_path / "o")
        )
        assert preview.status_code == 200, preview.text
        answer = preview.json()
        # The endpoint's metadata beside the objects is never part of a dataset.
        assert answer["files"] == count and not any(
            "ct~meta" in name for name in answer["excluded_files"]
        )
    for bad in ("s3://datasets/../outputs", "s3://datasets/", "s3://datasets/a//b"):
        refused = await client.post(
            "/api/cloud/jobs/preview?provider=local",
            json=body_naming({"instance_data_dir": bad}, tmp_path / "o"),
        )
        assert refused.status_code == 400, (bad, refused.text)
    both = {"dataset": "shapes", "instance_data_dir": "/x"}
    refused = await client.post(
        "/api/cloud/jobs/preview?provider=local", json=body_naming(both, tmp_path / "o")
    )
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_dataset"


async def test_a_user_reads_only_their_own_uploaded_datasets(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    admin = await setup_admin(client)
    olga = await add_user(client, admin, "olga", "researcher")
    bob = await add_user(client, admin, "bob", "researcher")
    dataset = make_dataset(tmp_path / "shapes", 2, size=16)
    await upload(client, dataset, "olga/shapes/", bearer(olga))
    url = "/api/cloud/jobs/preview?provider=local"
    mine = await client.post(
        url, json=body_naming({"dataset": "shapes"}, Path("out")), headers=bearer(olga)
    )
    assert mine.status_code == 200, mine.text
    assert mine.json()["files"] == 4
    for named in ({"dataset": "shapes"}, {"instance_data_dir": "s3://datasets/olga/shapes"}):
        theirs = await client.post(url, json=body_naming(named, Path("out")), headers=bearer(bob))
        assert theirs.status_code == 400, theirs.text
        assert theirs.json()["code"] == "path_not_allowed"
