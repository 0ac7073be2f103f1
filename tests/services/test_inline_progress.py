"""A running job's stage, last line and percent, read from its stored logs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cloudtune.domain.jobs import JobStatus, JobType, Progress, utcnow
from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.services.context import Context
from cloudtune.services.inline_progress import _fraction_in, inline_progress, stage_of
from cloudtune.settings import Settings
from cloudtune.store import logs as log_store
from cloudtune.store.db import Database
from tests.factories import create_job, make_context


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Iterator[Context]:
    yield make_context(settings, db, providers=["replicate"])


@pytest.mark.parametrize(
    ("lines", "stage"),
    [
        (["loading model", "step 3/10 loss=0.2"], "Training"),
        (["step 3/10", "Saving checkpoint to /out"], "Saving checkpoint"),
        (["Running validation"], "Validation"),
        (["warmup 1/5"], "Warmup"),
        (["Preprocessing dataset"], "Preprocessing"),
        (["nothing known"], "Training"),
        ([], "Training"),
    ],
)
def test_the_latest_keyword_names_the_stage(lines: list[str], stage: str) -> None:
    assert stage_of(lines) == stage


def test_numbers_too_long_to_be_steps_are_not_read() -> None:
    # A log line is whatever a trainer printed; int() of thousands of digits raises.
    assert _fraction_in([f"step 1/{'9' * 5000}", f"step {'9' * 400}/1"]) is None
    assert _fraction_in(["epoch 3/4"]) == 75.0


def _remote_job(ctx: Context, status: JobStatus, logs: str, **fields: object) -> str:
    job = create_job(
        ctx.db,
        job_type=JobType.CLOUD,
        provider="replicate",
        provider_ref="p1",
        status=status,
        **fields,
    )
    with ctx.db.write() as session:
        log_store.save_logs(session, job.job_id, logs, utcnow())
    return job.job_id


async def test_a_running_job_reports_from_its_logs(ctx: Context) -> None:
    long_line = "step 40/200 " + "x" * 100
    job_id = _remote_job(ctx, JobStatus.RUNNING, f"loading\nstep 39/200\n{long_line}\n")
    found = await inline_progress(ctx, LOCAL_ADMIN, job_id)
    assert found.stage == "Training" and found.progress == 20.0
    assert found.last_log is not None and len(found.last_log) == 80
    assert found.last_log.endswith("...") and found.last_log.startswith("step 40/200")


async def test_the_trainers_own_progress_wins_over_the_logs(ctx: Context) -> None:
    progress = Progress(step=30, total_steps=40)
    job_id = _remote_job(ctx, JobStatus.RUNNING, "step 1/200\n", progress=progress)
    assert (await inline_progress(ctx, LOCAL_ADMIN, job_id)).progress == 75.0


async def test_a_job_not_running_has_no_stage(ctx: Context) -> None:
    job_id = _remote_job(ctx, JobStatus.COMPLETED, "step 200/200\n")
    found = await inline_progress(ctx, LOCAL_ADMIN, job_id)
    assert (found.stage, found.last_log, found.progress) == (None, None, None)
