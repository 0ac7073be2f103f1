"""Which server the SDK and the CLI talk to, and with which credential: given, else from the
environment (`CLOUDTUNE_URL`, or `SIMPLETUNER_URL` that CI scripts written for the reference
server set; `CLOUDTUNE_API_KEY`), else from the file `cloudtune login` writes, else the local
server with no credential (a server with no users takes it as its local admin).

The file is `$XDG_CONFIG_HOME/cloudtune/credentials.json` (`~/.config/...`), or
`$CLOUDTUNE_CREDENTIALS_FILE`; it is written with mode 0600 and holds one server's URL and its
session or API key."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8001"


def credentials_file() -> Path:
    named = os.environ.get("CLOUDTUNE_CREDENTIALS_FILE")
    if named:
        return Path(named).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cloudtune" / "credentials.json"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    url: str
    credential: str | None
    source: str  # where the credential came from: argument, environment, file or none

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential}"} if self.credential else {}

    @classmethod
    def resolve(cls, *, url: str | None = None, api_key: str | None = None) -> ClientSettings:
        env = os.environ
        saved = read_saved()
        chosen_url = (
            url
            or env.get("CLOUDTUNE_URL")
            or env.get("SIMPLETUNER_URL")
            or (saved[0] if saved else None)
            or DEFAULT_URL
        ).rstrip("/")
        if api_key:
            return cls(chosen_url, api_key, "argument")
        if env.get("CLOUDTUNE_API_KEY"):
            return cls(chosen_url, env["CLOUDTUNE_API_KEY"], "environment")
        # The saved credential is only sent to the server it was made for.
        if saved and saved[0].rstrip("/") == chosen_url:
            return cls(chosen_url, saved[1], "file")
        return cls(chosen_url, None, "none")


def read_saved() -> tuple[str, str] | None:
    """The saved (url, credential), or None when there is no usable file."""
    path = credentials_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    url, credential = data.get("url"), data.get("credential")
    if isinstance(url, str) and isinstance(credential, str) and url and credential:
        return url, credential
    return None


def save(url: str, credential: str) -> Path:
    """Write the file with mode 0600 from its first byte (never readable by others, even for a
    moment), through a new temporary file of a random name (never through a link planted at a
    known name), in a folder only its owner may change."""
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = path.parent.lstat()
    if stat.S_ISLNK(folder.st_mode) or folder.st_uid != os.getuid() or folder.st_mode & 0o022:
        raise PermissionError(
            f"{path.parent} must be a folder of yours that others cannot write to"
        )
    descriptor, temporary = tempfile.mkstemp(prefix=".credentials-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w") as f:
            json.dump({"url": url.rstrip("/"), "credential": credential}, f)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def forget() -> bool:
    """Remove the file; whether there was one."""
    try:
        credentials_file().unlink()
    except FileNotFoundError:
        return False
    return True
