"""The files in a job's output folder, for any provider (a local job's trainer writes there, a
remote job's outputs are brought there), listed and served to whoever may see the job.

The folder is the job's `output_url` when it names a folder on this machine; never one inside
the server's own state folder other than its outputs root, and, once users exist, only one under
where its owner may write: `<output root>/<username>/`, the whole output root for an admin's job
(or one made before users existed, which may otherwise name any folder its OS user owned, no
one else's to read). A requested path is relative,
plain (no `..`, no NUL, not absolute) and must still be inside the folder once symlinks are
followed; links are not listed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from cloudtune.domain.deliveries import DeliveryStatus
from cloudtune.domain.jobs import Job
from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError, NotFoundError
from cloudtune.providers.base import PART_SUFFIX
from cloudtune.services import jobs as job_service
from cloudtune.services.context import Context
from cloudtune.services.outputs.homecoming import KIND
from cloudtune.services.storage import staging
from cloudtune.services.storage.names import RESERVED
from cloudtune.store import deliveries
from cloudtune.store import users as user_store

# Files listed at most (a local job's folder may hold many checkpoints); `truncated` says so.
MAX_FILES = 2000


@dataclass(frozen=True, slots=True)
class OutputFile:
    path: str  # relative to the job's folder, with `/`
    size: int
    sha256: str | None  # known for files this server brought home
    modified_at: datetime
    url: str  # this server's download link


@dataclass(frozen=True, slots=True)
class DeliveryState:
    status: DeliveryStatus
    attempts: int
    error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OutputListing:
    job_id: str
    job_status: str
    folder: str | None
    files: list[OutputFile]
    truncated: bool
    delivery: DeliveryState | None


def list_outputs(ctx: Context, caller: Principal, job_id: str) -> OutputListing:
    job = job_service.get_job(ctx, caller, job_id)
    with ctx.db.read() as session:
        delivery = deliveries.get_delivery(session, job_id, KIND)
    known = dict(delivery.settings.get("files") or {}) if delivery else {}
    folder = served_folder(ctx, job, caller)
    files: list[OutputFile] = []
    truncated = False
    if folder is not None:
        for relative, stat in _walk(folder):
            if len(files) == MAX_FILES:
                truncated = True
                break
            entry = known.get(relative)
            files.append(
                OutputFile(
                    path=relative,
                    size=stat.st_size,
                    sha256=entry.get("sha256") if isinstance(entry, dict) else None,
                    modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
                    url=f"/api/cloud/jobs/{quote(job_id, safe='')}/outputs/{quote(relative)}",
                )
            )
    state = (
        DeliveryState(delivery.status, delivery.attempts, delivery.error, delivery.updated_at)
        if delivery
        else None
    )
    return OutputListing(
        job_id=job.job_id,
        job_status=job.status.value,
        folder=str(folder) if folder else None,
        files=files,
        truncated=truncated,
        delivery=state,
    )


def output_file(ctx: Context, caller: Principal, job_id: str, raw: str) -> Path:
    """The file at `raw` in the job's folder: 400 for a path that would leave it, 404 for one
    that is not a file there (or a job the caller may not see)."""
    job = job_service.get_job(ctx, caller, job_id)
    if not raw or "\0" in raw or "\\" in raw or raw.startswith("/"):
        raise InvalidInputError("an output path is relative, with `/`", code="invalid_path")
    parts = PurePosixPath(raw).parts
    if any(part in ("..", ".") for part in parts) or os.path.isabs(raw):
        raise InvalidInputError(
            "an output path stays inside the job's folder", code="invalid_path"
        )
    folder = served_folder(ctx, job, caller)
    missing = NotFoundError(f"Job {job_id} has no output {raw!r}", code="output_not_found")
    if folder is None:
        raise missing
    path = Path(os.path.realpath(folder / raw))
    if not path.is_relative_to(folder):  # a link inside that points out
        raise InvalidInputError(
            "an output path stays inside the job's folder", code="invalid_path"
        )
    if not path.is_file() or path.name.endswith(PART_SUFFIX) or path.name.startswith(RESERVED):
        raise missing
    return path


def served_folder(ctx: Context, job: Job, caller: Principal) -> Path | None:
    """The job's output folder on this machine, resolved; None when it has none here (or
    none this caller may be served)."""
    settings = ctx.settings
    raw = job.output_url
    if not raw or "://" in raw or "\0" in raw or not os.path.isabs(raw):
        return None
    folder = Path(os.path.realpath(raw))
    home = Path(os.path.realpath(settings.home))
    # A job whose trainer writes through the built-in endpoint has its folder in the bucket
    # `outputs` (services/storage/staging.py): the other root outputs are served from.
    roots = [Path(os.path.realpath(settings.outputs_dir))]
    roots.append(Path(os.path.realpath(staging.bucket_folder(settings))))
    if folder.is_relative_to(home) and not any(folder.is_relative_to(r) for r in roots):
        return None  # the server's own state is never served
    if home.is_relative_to(folder):
        return None  # nor a folder holding it
    if caller.user_id is not None:
        # Once users exist a job's folder is served only from where its owner may write
        # (checked on the real path: a link in one user's folder into another's is not
        # followed there).
        bases = _owner_bases(ctx, job, roots)
        if not any(folder.is_relative_to(base) for base in bases):
            return None
    return folder if folder.is_dir() else None


def _owner_bases(ctx: Context, job: Job, roots: list[Path]) -> list[Path]:
    """`<root>/<owner's username>/` of each root, the whole roots for an admin's job or one
    made before users existed; none for an owner no longer there."""
    if job.user_id is None:
        return roots
    with ctx.db.read() as session:
        owner = user_store.get_user(session, job.user_id)
    if owner is None:
        return []
    if owner.role == "admin":
        return roots
    return [root / owner.username for root in roots]


def _walk(folder: Path) -> list[tuple[str, os.stat_result]]:
    found: list[tuple[str, os.stat_result]] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            # Part files of a fetch, and the endpoint's temp files of an upload under way.
            if name.endswith(PART_SUFFIX) or name.startswith(RESERVED) or path.is_symlink():
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((path.relative_to(folder).as_posix(), stat))
            if len(found) > MAX_FILES:
                return found
    return found
