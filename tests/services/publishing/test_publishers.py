"""The two publishers on their own: huggingface_hub against the Hub stub, boto3 against a moto
server, both on loopback; files checked byte for byte where they landed."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest
from boto3.s3.transfer import TransferConfig
from huggingface_hub.errors import HfHubHTTPError
from mypy_boto3_s3 import S3Client

from cloudtune.domain.publishing import HubTarget, S3Target
from cloudtune.services.publishing.files import output_files, scrub
from cloudtune.services.publishing.hub import publish_to_hub
from cloudtune.services.publishing.s3 import publish_to_s3
from tests.fakes.hub import FakeHub
from tests.services.publishing.conftest import EXPECTED, HUB_TOKEN, S3_KEY_ID, S3_SECRET


def _contents(folder: Path) -> dict[str, bytes]:
    return {rel: (folder / rel).read_bytes() for rel in EXPECTED}


def test_output_files_skip_links(outputs: Path) -> None:
    assert {f.relpath for f in output_files(outputs)} == EXPECTED


def test_hub_gets_every_file_in_one_commit(hub: FakeHub, outputs: Path) -> None:
    url = publish_to_hub(outputs, HubTarget("me/lora", private=True), token=HUB_TOKEN, job_id="j1")

    assert url == f"{hub.url}/me/lora"
    repo = hub.repos["me/lora"]
    assert repo.private is True
    assert repo.files == _contents(outputs)
    assert repo.commits == ["Outputs of training job j1"]


def test_hub_repository_already_there_takes_a_new_commit(hub: FakeHub, outputs: Path) -> None:
    target = HubTarget("me/lora", private=False)
    publish_to_hub(outputs, target, token=HUB_TOKEN, job_id="j1")
    publish_to_hub(outputs, target, token=HUB_TOKEN, job_id="j2")

    assert hub.repos["me/lora"].commits == [
        "Outputs of training job j1",
        "Outputs of training job j2",
    ]
    assert hub.repos["me/lora"].private is False


def test_hub_large_files_go_through_lfs(
    hub: FakeHub, outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stub speaks Git LFS, not the Xet protocol huggingface_hub prefers when it can.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    hub.lfs_from_bytes = 100_000

    publish_to_hub(outputs, HubTarget("me/lora"), token=HUB_TOKEN, job_id="j1")

    assert hub.repos["me/lora"].files == _contents(outputs)
    assert sum(n for call, n in hub.calls.items() if call.startswith("PUT /lfs/upload/")) == 1


def test_hub_bad_token_fails_without_showing_it(hub: FakeHub, outputs: Path) -> None:
    with pytest.raises(HfHubHTTPError) as raised:
        publish_to_hub(outputs, HubTarget("me/lora"), token="hf_wrongtoken987654321", job_id="j")
    assert raised.value.response is not None and raised.value.response.status_code == 401
    shown = scrub(str(raised.value), ["hf_wrongtoken987654321"])
    assert "hf_wrongtoken987654321" not in shown and "401" in shown


def test_s3_gets_every_file_byte_identical(
    bucket: tuple[S3Client, str], moto_url: str, outputs: Path
) -> None:
    client, name = bucket
    target = S3Target(name, prefix="models/team", region="us-east-1", endpoint_url=moto_url)

    url = publish_to_s3(
        outputs, target, access_key_id=S3_KEY_ID, secret_access_key=S3_SECRET, job_id="j1"
    )

    assert url == f"s3://{name}/models/team/j1/"
    listed = client.list_objects_v2(Bucket=name)["Contents"]
    assert {o["Key"] for o in listed} == {f"models/team/j1/{rel}" for rel in EXPECTED}
    for rel, data in _contents(outputs).items():
        assert client.get_object(Bucket=name, Key=f"models/team/j1/{rel}")["Body"].read() == data


def test_s3_large_files_go_in_parts(
    bucket: tuple[S3Client, str], moto_url: str, outputs: Path
) -> None:
    client, name = bucket
    # Parts of 5 MiB (S3's smallest) from 5 MiB up: a 12 MiB file goes in three.
    big = outputs / "checkpoint" / "model.safetensors"
    big.parent.mkdir()
    big.write_bytes(bytes(range(256)) * (12 * 4096))
    small = 5 * 1024 * 1024
    transfer = TransferConfig(multipart_threshold=small, multipart_chunksize=small)

    publish_to_s3(
        outputs,
        S3Target(name, endpoint_url=moto_url),
        access_key_id=S3_KEY_ID,
        secret_access_key=S3_SECRET,
        job_id="j2",
        transfer=transfer,
    )

    head = client.head_object(Bucket=name, Key="j2/checkpoint/model.safetensors")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts
    body = client.get_object(Bucket=name, Key="j2/checkpoint/model.safetensors")["Body"].read()
    assert body == big.read_bytes()


def test_scrub_removes_signatures_tokens_and_given_secrets() -> None:
    text = (
        "PUT https://b.s3.amazonaws.com/k?X-Amz-Signature=abcd&X-Amz-Credential=AKIA/x failed; "
        "Authorization: Bearer hf_abcdefghijklmnop; https://user:pw@host/x; key wJalrXUtnFEMI"
    )
    shown = scrub(text, ["wJalrXUtnFEMI"])
    for secret in ("abcd", "AKIA/x", "hf_abcdefghijklmnop", "user:pw", "wJalrXUtnFEMI"):
        assert secret not in shown
    assert "https://b.s3.amazonaws.com/k?***" in shown
