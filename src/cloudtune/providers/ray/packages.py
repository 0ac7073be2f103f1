"""The files a Ray job takes with it, as Ray runtime-env packages: zip archives uploaded to the
cluster's own store through the dashboard (`PUT /api/packages/gcs/<name>`) and named by their
content, so the same files are sent once and a retried submit names the same package.

- the job's folder (`working_dir`): its config and dataloader, secrets left out, and
  `cloudtune-job.json` (where its datasets wait; nothing secret);
- this server's `cloudtune` package (`py_modules`), so the nodes need only its dependencies.
Archives are built with fixed timestamps so the same content gives the same bytes."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import cloudtune

_EPOCH = (1980, 1, 1, 0, 0, 0)
# What of the package a trainer never imports: the web UI's files and compiled caches.
_LEFT_OUT = ("__pycache__", "web/static")


def _archive(files: Iterable[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buffer.getvalue()


def package_uri(data: bytes) -> str:
    return f"gcs://_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"


def job_folder(config: dict[str, Any], dataloader: list[Any], job: dict[str, Any]) -> bytes:
    return _archive(
        [
            ("config.json", json.dumps(config, indent=2).encode()),
            ("multidatabackend.json", json.dumps(dataloader, indent=2).encode()),
            ("cloudtune-job.json", json.dumps(job, indent=2).encode()),
        ]
    )


@lru_cache(maxsize=1)
def cloudtune_module() -> bytes:
    """This server's own package as a `py_modules` archive (`cloudtune/...` at its top).
    Built once per process: the installed files do not change under a running server."""
    root = Path(cloudtune.__file__).resolve().parent
    files = []
    for path in root.rglob("*"):
        relative = path.relative_to(root).as_posix()
        if not path.is_file() or path.suffix == ".pyc" or _left_out(relative):
            continue
        files.append((f"cloudtune/{relative}", path.read_bytes()))
    return _archive(files)


def _left_out(relative: str) -> bool:
    return any(
        relative == part or relative.startswith(part + "/") or f"/{part}/" in f"/{relative}"
        for part in _LEFT_OUT
    )
