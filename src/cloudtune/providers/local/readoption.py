"""Which replica holds a local job, and taking a replica's jobs back after it restarts.

A local job lives in one replica: its trainer is a process on that host and its run folder is
under that replica's home. The replica that starts a job writes its name (`Settings.replica`,
host and home) into the job's handle; only that replica judges the process, and the others
answer `NotMine` for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.providers.base import ProviderHandle
from cloudtune.providers.local import processes
from cloudtune.providers.local.queue import Entry, JobQueue
from cloudtune.providers.local.supervision import status_from_disk

log = logging.getLogger(__name__)

OWNER_KEY = "owner"


def owner_of(handle: ProviderHandle) -> str | None:
    owner = handle.data.get(OWNER_KEY)
    return owner if isinstance(owner, str) else None


def holds(handle: ProviderHandle, *, replica: str, runs_dir: Path) -> bool:
    owner = owner_of(handle)
    if owner is not None:
        return owner == replica
    # A job started before replicas were told apart names no owner: it is held by the replica
    # whose home has its run folder.
    return (runs_dir / handle.ref).is_dir()


def readopt(queue: JobQueue, entry: Entry, job: Job) -> None:
    """Take a job of this replica back: a live trainer is watched again, a trainer that died
    with the server ends the job by what it left on disk, a job that never started waits in
    line again. A job that has ended (cancelled while this replica was down) is taken back
    only if its trainer still runs, for the cancel to stop it: it never starts again."""
    process = processes.find(entry.run_dir)
    if process is not None:
        entry.process = process
        entry.slot = queue.take_slot()
        queue.add(entry)
        log.info("job %s: re-adopted trainer pid %s", job.job_id, process.pid)
    elif job.is_terminal:
        return
    elif job.status == JobStatus.RUNNING or (entry.run_dir / processes.PROCESS_FILE).exists():
        entry.final = status_from_disk(entry.run_dir)
        queue.add(entry)
    else:
        queue.enqueue(entry)
