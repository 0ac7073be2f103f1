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
pytestmark = [pytest.mark.e2e, pytest.mark.trainer]


def require_tutorial() -> Path:
    """The acceptance script and its tools. Missing ones fail the test: a skipped acceptance
    test would let CI pass without the tutorial ever having run."""
    if not TUTORIAL.is_file():
        pytest.fail(f"acceptance script not found at {TUTORIAL} (../shared beside the repo)")
    missing = [tool for tool in ("jq", "curl", "bash") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the acceptance script needs {', '.join(missing)} on PATH")
    return TUTORIAL


def test_the_tutorial_flow_passes(tmp_path: Path) -> None:
    script = require_tutorial()
    home = tmp_path / "home"
    server = ServerProcess(home, f"sqlite:///{home / 'cloudtune.db'}")
    home.mkdir()
    server.start()
    try:
        result = subprocess.run(
            ["bash", str(script), server.url],
            env={**os.environ, "WAIT_S": "300"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: tutorial flow (core,wait,keys)" in result.stdout
