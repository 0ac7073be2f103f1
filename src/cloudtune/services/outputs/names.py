"""Where a job's outputs live on this machine, and the names its remote files get there.

A name comes from a link's last path segment, which a trainer controls: it is reduced to one
plain file name (no folder part, no `..`, no NUL or control characters, no leading dot that
would hide it or clash with our part files), so a file always lands directly in the folder."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from sqlalchemy.orm import Session

from cloudtune.domain.jobs import Job
from cloudtune.settings import Settings
from cloudtune.store import users as user_store

MAX_NAME = 150
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def file_name(url: str, index: int) -> str:
    try:
        segment = PurePosixPath(unquote(urlsplit(url).path)).name
    except ValueError:
        segment = ""
    name = _UNSAFE.sub("_", segment).strip().lstrip(".")
    if not name:
        return f"output-{index + 1}"
    if len(name) > MAX_NAME:  # keep the suffix: it says what the file is
        stem, dot, suffix = name.rpartition(".")
        suffix = suffix[:20] if dot else ""
        name = (stem if dot else name)[: MAX_NAME - len(suffix) - 1] + (
            f".{suffix}" if suffix else ""
        )
    return name


def file_names(urls: Sequence[str]) -> list[str]:
    """One distinct name per link, in order (`a.bin`, `a-2.bin`, ...)."""
    names: list[str] = []
    for index, url in enumerate(urls):
        name = file_name(url, index)
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem:
            stem, suffix = name, ""
        candidate, n = name, 2
        while candidate.lower() in {taken.lower() for taken in names}:
            candidate = f"{stem}-{n}" + (f".{suffix}" if suffix else "")
            n += 1
        names.append(candidate)
    return names


def inside(folder: Path, name: str) -> Path:
    """`folder/name`, refused (ValueError) if it would not sit directly in the folder."""
    path = folder / name
    if name in ("", ".", "..") or path.parent != folder or os.path.isabs(name):
        raise ValueError(f"output name {name!r} would leave the job's folder")
    return path


def job_folder(session: Session, settings: Settings, job: Job) -> Path:
    """`<output root>/<owner's username, or "local">/<job id>`: where the file access policy
    lets that owner write and read back their outputs."""
    owner = "local"
    if job.user_id is not None:
        user = user_store.get_user(session, job.user_id)
        if user is not None:
            owner = user.username
    root = Path(os.path.realpath(settings.outputs_dir))
    return inside(inside(root, _UNSAFE.sub("_", owner).lstrip(".") or "local"), job.job_id)
