"""Where a downloaded output file goes, and its last checks (the sync and async clients share
these)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath

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
