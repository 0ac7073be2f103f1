"""A running job's progress in one line, as the reference server's inline-progress answers it:
the stage read from the latest log lines, the last line, and the percent done."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.principal import Principal
from cloudtune.services import jobs
from cloudtune.services.context import Context

# Scanning the latest lines backwards, the first keyword found names the stage.
_STAGES = (
    (("preprocessing", "loading"), "Preprocessing"),
    (("warming up", "warmup"), "Warmup"),
    (("checkpoint",), "Saving checkpoint"),
    (("validat",), "Validation"),
    (("step", "epoch"), "Training"),
)
# At most 12 digits: a log line is whatever a trainer printed, and int() of thousands of digits
# raises.
_FRACTION = re.compile(r"\b(?:step|epoch)\s+(\d{1,12})\s*/\s*(\d{1,12})\b", re.IGNORECASE)
LINES_READ = 50
LAST_LOG_CHARS = 80


@dataclass(frozen=True, slots=True)
class InlineProgress:
    job_id: str
    stage: str | None
    last_log: str | None
    progress: float | None


async def inline_progress(ctx: Context, caller: Principal, job_id: str) -> InlineProgress:
    """Everything is None unless the job is running (a queued or finished job has no stage)."""
    job = await ctx.in_thread(jobs.get_job, ctx, caller, job_id)
    if job.status != JobStatus.RUNNING:
        return InlineProgress(job_id, None, None, None)
    logs = await jobs.logs_of(ctx, job, LINES_READ)
    lines = [line.strip() for line in logs.splitlines() if line.strip()]
    progress = job.progress.percent
    if progress is None:
        progress = _fraction_in(lines)
    return InlineProgress(job_id, stage_of(lines), _last_log(lines), progress)


def stage_of(lines: list[str]) -> str:
    for line in reversed(lines):
        lowered = line.lower()
        for keywords, stage in _STAGES:
            if any(word in lowered for word in keywords):
                return stage
    return "Training"


def _fraction_in(lines: list[str]) -> float | None:
    for line in reversed(lines):
        found = _FRACTION.search(line)
        if found and int(found.group(2)) > 0:
            return round(min(100.0, 100.0 * int(found.group(1)) / int(found.group(2))), 1)
    return None


def _last_log(lines: list[str]) -> str | None:
    if not lines:
        return None
    last = lines[-1]
    return last if len(last) <= LAST_LOG_CHARS else last[: LAST_LOG_CHARS - 3] + "..."
