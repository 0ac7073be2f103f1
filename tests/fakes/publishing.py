"""The publishing tests' outside world, for their fixtures: the Hub stub reached through
HF_ENDPOINT, a moto S3 server on loopback, a fresh bucket on it."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer
from mypy_boto3_s3 import S3Client

from tests.fakes.hub import FakeHub, running_hub

HUB_TOKEN = "hf_stubtoken0123456789"
S3_KEY_ID = "AKIAPUBLISHTEST00001"
S3_SECRET = "publish-test-secret/abcdefghijklmnopqrstu"


def hub_on_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with running_hub() as stub:
        monkeypatch.setenv("HF_ENDPOINT", stub.url)
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        yield stub


def moto_server(port: int) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.stop()


def fresh_bucket(moto_url: str, name: str) -> Iterator[tuple[S3Client, str]]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
    )
    client.create_bucket(Bucket=name)
    yield client, name
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)
