"""A real server process for the SDK's tests, with no credentials of the developer's around."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_server import ServerProcess


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    for name in ("CLOUDTUNE_URL", "SIMPLETUNER_URL", "CLOUDTUNE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDTUNE_CREDENTIALS_FILE", str(tmp_path / "no-credentials.json"))
    process = ServerProcess(tmp_path / "home", f"sqlite:///{tmp_path / 'test.db'}")
    process.start()
    yield process
    process.stop()
