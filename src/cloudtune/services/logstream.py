"""Following a job's log as a stream of events (the API turns them into SSE).

A local job's log is its file on this machine, read from where the last read stopped. A remote
job's log is the copy the reconciler keeps in the database: a follower polls that copy and never
the provider, and only asks the reconciler to look at the job soon (paced per job, so a hundred
followers cost the provider what one does).
"""

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
from cloudtune.services.reconciler import Reconciler
from cloudtune.store import jobs as job_store
from cloudtune.store import logs as log_store

POLL_SECONDS = 0.25
STATUS_EVERY = 4  # polls between status checks


# The last message of every stream, after the job's final status.
STREAM_END = "stream_end"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    event: str | None  # None: a log line
    data: str


async def follow_logs(
    ctx: Context, caller: Principal, job_id: str, reconciler: Reconciler | None = None
) -> AsyncIterator[StreamEvent]:
    job = await ctx.in_thread(get_job, ctx, caller, job_id)
    return _follow(ctx, caller, job_id, job.status.value, reconciler)


async def _follow(
    ctx: Context, caller: Principal, job_id: str, status: str, reconciler: Reconciler | None
) -> AsyncIterator[StreamEvent]:
    yield StreamEvent("status", status)
    reader = _LogReader(ctx, job_id, reconciler)
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
                for line in [*await reader.new_lines(), *reader.unfinished_line()]:
                    yield StreamEvent(None, line)
                yield StreamEvent("done", status)
                # The reference server's stream ends so, and clients written for it wait for it.
                yield StreamEvent("done", STREAM_END)
                return
        await asyncio.sleep(POLL_SECONDS)


class _LogReader:
    """New complete lines since the last call, from the job's log file or its stored log."""

    def __init__(self, ctx: Context, job_id: str, reconciler: Reconciler | None) -> None:
        self._ctx = ctx
        self._job_id = job_id
        self._reconciler = reconciler
        self._offset = 0  # bytes of a log file, characters of a stored log
        self._partial = b""

    async def new_lines(self) -> list[str]:
        job, stored = await self._ctx.in_thread(_load, self._ctx, self._job_id, self._offset)
        if job is None or job.provider_ref is None:
            return []
        provider = self._ctx.providers.get(job.provider)
        if isinstance(provider, HasLogFile):
            data = await asyncio.to_thread(self._read_file, provider.log_path(handle_of(job)))
        else:
            if self._reconciler is not None and job.is_active:
                self._reconciler.ask([job])
            data = self._take_stored(stored)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [_decode(line) for line in lines]

    def unfinished_line(self) -> list[str]:
        """The last line when the log ended without a newline (once the job is over)."""
        rest, self._partial = self._partial, b""
        return [_decode(rest)] if rest else []

    def _take_stored(self, stored: tuple[int, str] | None) -> bytes:
        if stored is None:
            return b""
        length, text = stored
        if length < self._offset:
            # The copy was replaced by a shorter log: go on from its end rather than repeat it.
            self._offset = length
            return b""
        self._offset += len(text)
        return text.encode()

    def _read_file(self, path: Path) -> bytes:
        try:
            with open(path, "rb") as f:
                f.seek(self._offset)
                data = f.read(1024 * 1024)
        except FileNotFoundError:
            return b""
        self._offset += len(data)
        return data


def _decode(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r")


def _load(ctx: Context, job_id: str, start: int) -> tuple[Job | None, tuple[int, str] | None]:
    """The job, and for a remote job its stored log from `start` on (one read)."""
    with ctx.db.read() as session:
        job = job_store.get_job(session, job_id)
        if job is None or isinstance(ctx.providers.get(job.provider), HasLogFile):
            return job, None
        return job, log_store.get_logs_from(session, job_id, start)
