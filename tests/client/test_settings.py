"""Where the SDK finds its server and credential, and the file `cloudtune login` writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cloudtune.client import settings


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CLOUDTUNE_URL", "SIMPLETUNER_URL", "CLOUDTUNE_API_KEY", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "config" / "credentials.json"
    monkeypatch.setenv("CLOUDTUNE_CREDENTIALS_FILE", str(path))
    return path


def test_nothing_set_is_the_local_server_without_a_credential() -> None:
    chosen = settings.ClientSettings.resolve()
    assert (chosen.url, chosen.credential, chosen.source) == (settings.DEFAULT_URL, None, "none")
    assert chosen.headers() == {}


def test_arguments_then_the_environment_then_the_saved_login(
    monkeypatch: pytest.MonkeyPatch, _clean: Path
) -> None:
    written = settings.save("http://ci.example:8001/", "stk_saved")
    assert written == _clean
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert settings.ClientSettings.resolve().credential == "stk_saved"
    monkeypatch.setenv("SIMPLETUNER_URL", "http://other.example:8001")
    other = settings.ClientSettings.resolve()
    # The saved credential goes only to the server it was made for.
    assert (other.url, other.credential) == ("http://other.example:8001", None)
    monkeypatch.setenv("CLOUDTUNE_URL", "http://ci.example:8001")
    monkeypatch.setenv("CLOUDTUNE_API_KEY", "stk_env")
    assert settings.ClientSettings.resolve().credential == "stk_env"
    given = settings.ClientSettings.resolve(url="http://x:1/", api_key="stk_arg")
    assert (given.url, given.source, given.headers()) == (
        "http://x:1",
        "argument",
        {"Authorization": "Bearer stk_arg"},
    )
    assert settings.forget() and not settings.forget()
    assert settings.read_saved() is None


def test_a_broken_file_is_no_login(_clean: Path) -> None:
    _clean.parent.mkdir(parents=True)
    _clean.write_text("{not json")
    assert settings.read_saved() is None
    _clean.write_text('{"url": "http://x", "credential": 5}')
    assert settings.read_saved() is None


def test_the_file_is_never_written_through_a_folder_others_may_change(_clean: Path) -> None:
    _clean.parent.mkdir(parents=True)
    os.chmod(_clean.parent, 0o777)
    with pytest.raises(PermissionError):
        settings.save("http://x", "stk_a")
    os.chmod(_clean.parent, 0o700)
    settings.save("http://x", "stk_a")
    assert stat.S_IMODE(_clean.stat().st_mode) == 0o600
    assert [p.name for p in _clean.parent.iterdir()] == ["credentials.json"]  # no temp left
