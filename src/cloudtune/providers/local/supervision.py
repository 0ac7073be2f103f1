"""Watching trainer processes: start one for a queue entry, send it SIGTERM and then SIGKILL
on cancel, and say how it ended, from its exit code, its `result.json` and its log."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cloudtune.domain.jobs import JobStatus
from cloudtune.providers.base import ProviderStatus, tail_lines
from cloudtune.providers.local import processes
from cloudtune.providers.local.queue import Entry

log = logging.getLogger(__name__)

_LOG_READ_LIMIT = 1024 * 1024


def launch(entry: Entry, command: Sequence[str], env: dict[str, str]) -> bool:
    """Start the entry's trainer; on failure the entry ends failed. True if it started."""
    try:
        entry.process = processes.start(list(command), run_dir=entry.run_dir, env=env)
    except OSError as exc:
        entry.final = ProviderStatus(
            status=JobStatus.FAILED,
            completed_at=datetime.now(UTC),
            error_message=f"could not start the trainer: {exc}",
        )
        return False
    log.info("job %s: started trainer pid %s", entry.job_id, entry.process.pid)
    return True


def stop(entry: Entry, grace_seconds: float) -> None:
    """Ask a running trainer to stop; `check` kills it once the grace has passed."""
    assert entry.process is not None
    log.info("job %s: SIGTERM to trainer pid %s", entry.job_id, entry.process.pid)
    entry.process.signal_group(signal.SIGTERM)
    entry.kill_at = time.monotonic() + grace_seconds


def check(entry: Entry) -> bool:
    """Look at a running trainer: kill it if it outlived its grace, and record how it ended.
    True once it has ended."""
    assert entry.process is not None
    code = entry.process.exit_code()
    if code is None:
        if entry.kill_at is not None and time.monotonic() >= entry.kill_at:
            log.warning("job %s: trainer ignored SIGTERM, sending SIGKILL", entry.job_id)
            entry.process.signal_group(signal.SIGKILL)
            entry.kill_at = None
        return False
    entry.final = final_status(entry, code)
    return True


def final_status(entry: Entry, code: int) -> ProviderStatus:
    assert entry.process is not None
    started = entry.process.started_at
    result = processes.read_result(entry.run_dir)
    if entry.cancel_requested:
        return cancelled(started)
    if result is not None:
        return status_from_result(result, started)
    if code == 0:
        return ProviderStatus(
            status=JobStatus.COMPLETED, started_at=started, completed_at=datetime.now(UTC)
        )
    reason = (
        f"trainer process (pid {entry.process.pid}) ended without reporting a result"
        if code == -1
        else processes.describe_exit(code)
    )
    last = _last_error_line(entry.run_dir / processes.LOG_FILE)
    return ProviderStatus(
        status=JobStatus.FAILED,
        started_at=started,
        completed_at=datetime.now(UTC),
        error_message=f"{reason}: {last}" if last else reason,
    )


def status_from_disk(run_dir: Path) -> ProviderStatus:
    """How a job of this replica ended when no process of it is watched: its result if it
    left one, else it died (with the server, or in a crash)."""
    started = processes.recorded_start(run_dir)
    result = processes.read_result(run_dir)
    if result is not None:
        return status_from_result(result, started)
    if started is not None:
        return ProviderStatus(
            status=JobStatus.FAILED,
            started_at=started,
            completed_at=datetime.now(UTC),
            error_message="the trainer process was no longer running after the server "
            "restarted and left no result (it was killed or crashed)",
        )
    return ProviderStatus(
        status=JobStatus.FAILED,
        completed_at=datetime.now(UTC),
        error_message="the local provider has no record of this job",
    )


def cancelled(started: datetime | None = None) -> ProviderStatus:
    return ProviderStatus(
        status=JobStatus.CANCELLED,
        started_at=started,
        completed_at=datetime.now(UTC),
        error_message="cancelled",
    )


def status_from_result(result: dict[str, object], started: datetime | None) -> ProviderStatus:
    try:
        status = JobStatus(str(result.get("status")))
    except ValueError:
        status = JobStatus.FAILED
    finished = result.get("finished_at")
    completed_at = datetime.fromisoformat(finished) if isinstance(finished, str) else None
    error = result.get("error")
    outputs = result.get("outputs")
    return ProviderStatus(
        status=status,
        started_at=started,
        completed_at=completed_at or datetime.now(UTC),
        error_message=str(error) if error else None,
        outputs=list(outputs) if isinstance(outputs, list) else None,
    )


def read_log(path: Path, tail: int | None) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _LOG_READ_LIMIT))
            data = f.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > _LOG_READ_LIMIT:
        text = text.split("\n", 1)[-1]
    return tail_lines(text, tail)


def _last_error_line(path: Path) -> str | None:
    lines = [line.strip() for line in read_log(path, 40).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:500]
    return lines[-1][:500] if lines else None
