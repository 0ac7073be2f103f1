"""What a publish sends (the regular files of a job's output folder, never through a link) and
how its errors are told (without secrets or signed URLs)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class OutputFile:
    path: Path
    relpath: str  # with `/`, relative to the output folder
    size: int


def output_files(folder: Path) -> list[OutputFile]:
    """Every regular file under `folder`, sorted. Links are skipped, files and folders alike: a
    trainer could otherwise point one at a server file and have it published."""
    root = Path(folder)
    if root.is_symlink() or not root.is_dir():
        raise FileNotFoundError(f"the job's output folder {root.name!r} does not exist")
    found: list[OutputFile] = []
    for current, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not (Path(current) / d).is_symlink())
        for name in sorted(names):
            path = Path(current) / name
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                found.append(OutputFile(path, path.relative_to(root).as_posix(), info.st_size))
    return found


# A URL's query (signatures, tokens), credentials in a URL, bearer tokens, Hub and AWS tokens.
_QUERY = re.compile(r"(https?://[^\s?#'\"]+)\?[^\s'\"]*")
_USERINFO = re.compile(r"(https?://)[^/\s@'\"]+@")
_BEARER = re.compile(r"(?i)(bearer|authorization[\"']?\s*[:=]\s*[\"']?)\s*[^\s'\",]+")
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}")
_SIGNATURE = re.compile(r"(?i)(signature|credential|x-amz-security-token)=[^\s&'\"]+")
MAX_ERROR = 500


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """An error's text, safe to show and store: the given secrets, URL queries and credentials
    and anything token-like replaced, bounded, printable."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _QUERY.sub(r"\1?***", text)
    text = _USERINFO.sub(r"\1***@", text)
    text = _BEARER.sub(r"\1 ***", text)
    text = _HF_TOKEN.sub("hf_***", text)
    text = _SIGNATURE.sub(r"\1=***", text)
    text = " ".join(text.split())
    if len(text) > MAX_ERROR:
        text = text[: MAX_ERROR - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
