"""The user tutorial's API flow (shared acceptance script) against a real server process with
the embedded default database, as `make run` starts it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_server import ServerProcess

TUTORIAL = Path(__file__).resolve().parents[3] / "shared" / "acceptance" / "tutorial.sh"


@pytest.mark.skipif(not TUTORIAL.is_file(), reason=f"acceptance script not found at {TUTORIAL}")
@pytest.mark.skipif(not (shutil.which("jq") and shutil.which("curl")), reason="needs jq and curl")
def test_the_tutorial_flow_passes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = ServerProcess(home, f"sqlite:///{home / 'cloudtune.db'}")
    home.mkdir()
    server.start()
    try:
        result = subprocess.run(
            ["bash", str(TUTORIAL), server.url],
            env={**os.environ, "WAIT_S": "300"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: tutorial flow (core,wait,keys)" in result.stdout
