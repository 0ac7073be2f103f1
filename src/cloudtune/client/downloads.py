"""Where a downloaded output file goes, and its last checks (the sync and async clients share
these)."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cloudtune.client.errors import CloudtuneClientError

PARTIAL = ".part"
CHUNK = 1024 * 1024


class DownloadError(CloudtuneClientError):
    """A file came down wrong (its checksum differs) or would land outside its folder."""


def destination(folder: Path, relative: str) -> Path:
    """`folder/relative`, refusing a path that is absolute, climbs out, or holds NUL: the
    server's listing is not trusted to name only files inside."""
    parts = PurePosixPath(relative).parts
    if not parts or relative.startswith("/") or "\0" in relative or ".." in parts:
        raise DownloadError(f"refusing to write {relative!r}: not a plain relative path")
    target = folder.joinpath(*parts)
    root = os.path.realpath(folder)
    if not os.path.realpath(target).startswith(root + os.sep):
        raise DownloadError(f"refusing to write {relative!r}: outside {folder}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def own_path(url: str) -> str:
    """A listing's download link must be a path of the same server: the client's credential
    goes with the request, and must never go to another host a listing names."""
    if not url.startswith("/") or url.startswith("//") or "\\" in url:
        raise DownloadError(f"refusing to fetch {url!r}: not a path of this server")
    return url


def partial_size(partial: Path, expected: int) -> int:
    """The bytes of a broken download to resume from; a partial file that is not a plain file
    of ours (a link planted there) or is too long is removed, and the download starts over."""
    try:
        info = partial.lstat()
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(info.st_mode) or info.st_size > expected:
        partial.unlink()
        return 0
    return info.st_size


def open_partial(partial: Path, *, append: bool) -> BinaryIO:
    """Opened without following a link (one planted between the check and the open fails)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(partial, flags, 0o644), "ab" if append else "wb")


def finish(partial: Path, target: Path, sha256: str | None) -> Path:
    if sha256 is not None:
        digest = hashlib.sha256()
        with open(partial, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            partial.unlink()
            raise DownloadError(f"{target.name}: checksum differs from the server's; try again")
    os.replace(partial, target)
    return target
