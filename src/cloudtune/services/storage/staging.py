"""A job's prefix in the bucket `outputs` as the only way between this server and a trainer
that runs away from it (providers.base.StagesThroughStorage): the server stages the packaged
datasets under `<prefix>inputs/`, the trainer reads them and writes its outputs under
`<prefix>output/` with the job's own key, and that folder is the job's output folder here, so
its files are listed, served and published where they landed, with no second copy."""

from __future__ import annotations

from pathlib import Path

from cloudtune.domain.jobs import Job
from cloudtune.domain.storage import JobStorageCredentials
from cloudtune.providers.base import StagesThroughStorage
from cloudtune.services.context import Context
from cloudtune.services.storage.credentials import JOB_BUCKET, job_prefix
from cloudtune.services.storage.names import object_path
from cloudtune.services.storage.objects import delete, place_file
from cloudtune.settings import Settings

INPUTS = "inputs/"
OUTPUT = "output/"
DATASETS_ARCHIVE = "datasets.zip"


def stage_datasets(ctx: Context, storage: JobStorageCredentials, archive: Path) -> str:
    """The packaged datasets as an object of the job's, and its `s3://bucket/key`."""
    key = f"{storage.prefix}{INPUTS}{DATASETS_ARCHIVE}"
    place_file(ctx.settings.storage_dir, storage.bucket, key, archive)
    return f"s3://{storage.bucket}/{key}"


def clear_inputs(ctx: Context, job: Job) -> None:
    """Remove what was staged for an ended job of such a provider (its trainer deletes it
    once fetched; a job cancelled before it started never did); nothing for other jobs."""
    if not isinstance(ctx.providers.get(job.provider), StagesThroughStorage):
        return
    key = job_prefix(ctx, job.job_id, job.user_id) + INPUTS + DATASETS_ARCHIVE
    if object_path(ctx.settings.storage_dir, JOB_BUCKET, key).data.exists():
        delete(ctx.settings.storage_dir, JOB_BUCKET, key)


def output_folder(ctx: Context, job_id: str, user_id: str | None) -> Path:
    """Where such a job's outputs land on this machine: its `<prefix>output/` in `outputs`."""
    key = job_prefix(ctx, job_id, user_id) + OUTPUT
    return object_path(ctx.settings.storage_dir, JOB_BUCKET, key).data


def bucket_folder(settings: Settings) -> Path:
    """The bucket `outputs` on disk: such jobs' output folders are under it."""
    return settings.storage_dir / JOB_BUCKET
