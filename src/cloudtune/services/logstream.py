"""Following a job's log as a stream of events (the API turns them into SSE)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from cloudtune.domain.jobs import Job
from cloudtune.domain.principal import Principal
from cloudtune.providers.base import HasLogFile
from cloudtune.services.context import Context
from cloudtune.services.jobs import get_job, handle_of
from cloudtune.store import jobs as job_store

POLL_SECONDS = 0.25
STATUS_EVERY = 4  # polls between status checks


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: str | None  # None: a log line
    data: str


async def follow_logs(ctx: Context, caller: Principal, job_id: str) -> AsyncIterator[StreamEvent]:
    job = await ctx.in_thread(get_job, ctx, caller, job_id)
    return _follow(ctx, caller, job_id, job.status.value)


async def _follow(
    ctx: Context, caller: Principal, job_id: str, status: str
) -> AsyncIterator[StreamEvent]:
    yield StreamEvent("status", status)
    reader = _LogReader(ctx, job_id)
    polls = 0
    while True:
        for line in await reader.new_lines():
            yield StreamEvent(None, line)
        polls += 1
        if polls % STATUS_EVERY == 0:
            job = await ctx.in_thread(get_job, ctx, caller, job_id)
            if job.status.value != status:
                status = job.status.value
                yield StreamEvent("status", status)
            if job.is_terminal:
                await asyncio.sleep(POLL_SECONDS)
                for line in await reader.new_lines():
                    yield StreamEvent(None, line)
                yield StreamEvent("done", status)
                return
        await asyncio.sleep(POLL_SECONDS)


class _LogReader:
    """New complete lines since the last call, from the job's log file or provider logs."""

    def __init__(self, ctx: Context, job_id: str) -> None:
        self._ctx = ctx
        self._job_id = job_id
        self._offset = 0
        self._partial = b""

    async def new_lines(self) -> list[str]:
        job = await self._ctx.in_thread(_job_quiet, self._ctx, self._job_id)
        if job is None or job.provider_ref is None:
            return []
        provider = self._ctx.providers.get(job.provider)
        if isinstance(provider, HasLogFile):
            data = await asyncio.to_thread(self._read_file, provider.log_path(handle_of(job)))
        else:
            text = (await provider.logs(handle_of(job), None)).encode()
            data, self._offset = text[self._offset :], len(text)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace").rstrip("\r") for line in lines]

    def _read_file(self, path: Path) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read(1024 * 1024)
        except FileNotFoundError:
            return b""
        self._offset += len(data)
        return data


def _job_quiet(ctx: Context, job_id: str) -> Job | None:
    with ctx.db.read() as session:
        return job_store.get_job(session, job_id)
