"""Fixtures of the publishing tests: a job's output folder, the Hub stub, a moto S3 server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client

from tests.conftest import free_port
from tests.fakes.hub import FakeHub, running_hub

HUB_TOKEN = "hf_stubtoken0123456789"
S3_KEY_ID = "AKIAPUBLISHTEST00001"
S3_SECRET = "publish-test-secret/abcdefghijklmnopqrstu"


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A trained model's folder: weights, a nested sample, a link out that must not be sent."""
    folder = tmp_path / "outputs" / "run"
    (folder / "validation_images").mkdir(parents=True)
    (folder / "pytorch_lora_weights.safetensors").write_bytes(os.urandom(300_000))
    (folder / "README.md").write_text("# a LoRA\n")
    (folder / "validation_images" / "step_5_0.png").write_bytes(os.urandom(2_000))
    secret = tmp_path / "server-secret.txt"
    secret.write_text("not for publishing")
    (folder / "leak.txt").symlink_to(secret)
    return folder


EXPECTED = {"pytorch_lora_weights.safetensors", "README.md", "validation_images/step_5_0.png"}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with running_hub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
        yield stub


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(moto_url: str, request: pytest.FixtureRequest) -> Iterator[tuple[S3Client, str]]:
    """A fresh bucket on the moto server, and a client to read it with."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    name = f"pub-{abs(hash(request.node.nodeid)) % 10**10}"
    client.create_bucket(Bucket=name)
    yield client, name
    listed = client.list_objects_v2(Bucket=name).get("Contents", [])
    for obj in listed:
        client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)
