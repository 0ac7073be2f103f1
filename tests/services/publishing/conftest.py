"""Fixtures of the publishing tests: a job's output folder, the Hub stub, a moto S3 server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from tests.conftest import free_port
from tests.fakes.hub import FakeHub
from tests.fakes.publishing import (
    HUB_TOKEN,
    S3_KEY_ID,
    S3_SECRET,
    fresh_bucket,
    hub_on_endpoint,
    moto_server,
)

__all__ = ["HUB_TOKEN", "S3_KEY_ID", "S3_SECRET"]


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
    yield from hub_on_endpoint(monkeypatch)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    yield from moto_server(free_port())


@pytest.fixture
def bucket(moto_url: str) -> Iterator[tuple[S3Client, str]]:
    yield from fresh_bucket(moto_url, f"pub-{uuid.uuid4().hex[:12]}")
