"""The tutorial flow with PROVIDER=replicate: a real server process pointed at the fake
Replicate server (CLOUDTUNE_REPLICATE_BASE_URL), completed by signed webhooks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_server import ServerProcess
from tests.e2e.test_tutorial import require_tutorial
from tests.fakes.replicate import FakeReplicate

pytestmark = pytest.mark.e2e


def test_the_tutorial_flow_passes_on_replicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = require_tutorial()
    fake = FakeReplicate(run_for=2.0).start()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("CLOUDTUNE_REPLICATE_BASE_URL", fake.base_url)
    monkeypatch.setenv("CLOUDTUNE_REPLICATE_OUTPUT_HOSTS", fake.file_origin)
    monkeypatch.setenv("REPLICATE_API_TOKEN", fake.token)
    monkeypatch.setenv("CLOUDTUNE_RECONCILE_BACKOFF_MAX_SECONDS", "600")  # leave it to webhooks
    server = ServerProcess(home, f"sqlite:///{home / 'cloudtune.db'}")
    server.start()
    try:
        set_webhook = httpx.put(
            f"{server.url}/api/cloud/providers/replicate", json={"webhook_url": server.url}
        )
        assert set_webhook.status_code == 200, set_webhook.text
        result = subprocess.run(
            ["bash", str(script), server.url],
            env={**os.environ, "PROVIDER": "replicate", "WAIT_S": "120"},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.stop()
        fake.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: tutorial flow (core,wait,keys)" in result.stdout
    assert fake.webhooks_sent > 0 and fake.files
