"""Runs trainers as subprocesses on this machine: one job per free GPU (one at a time on the CPU),
a FIFO queue ordered by priority, SIGTERM then SIGKILL on cancel, and re-adoption of live
trainers after a server restart."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.training import TrainingSpec, split_secrets
from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import (
    JobBundle,
    ProviderAccount,
    ProviderHandle,
    ProviderStatus,
    RestoredJob,
    tail_lines,
)
from cloudtune.providers.local import processes
from cloudtune.providers.local.environment import trainer_environment
from cloudtune.providers.local.hardware import detect_hardware
from cloudtune.settings import Settings

log = logging.getLogger(__name__)

REFERENCE_FAMILY = "reference"
_LOG_READ_LIMIT = 1024 * 1024


@dataclass(slots=True)
class _Entry:
    job_id: str
    run_dir: Path
    priority: int
    seq: int
    env: dict[str, str] = field(default_factory=dict)
    process: processes.TrainerProcess | None = None
    slot: int | None = None
    final: ProviderStatus | None = None
    cancel_requested: bool = False
    kill_at: float | None = None


class LocalProvider:
    name = "local"
    job_type = JobType.LOCAL.value
    poll_with_backoff = False

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._runs_dir = settings.runs_dir
        hardware = detect_hardware()
        slots = settings.local.max_concurrent_jobs or max(1, hardware.gpu_count)
        self._gpu_slots = hardware.gpu_count > 0
        self._free_slots: list[int] = list(range(slots))
        self._entries: dict[str, _Entry] = {}
        self._queue: list[_Entry] = []
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._on_change: Callable[[], None] = lambda: None
        self._wake = asyncio.Event()

    # -- the Provider protocol --------------------------------------------------------------

    def check(self, spec: TrainingSpec) -> None:
        family = spec.model_family
        if family is None:
            raise InvalidInputError(
                "config lacks model_family; the local provider trains model_family "
                f"'{REFERENCE_FAMILY}' with the built-in reference trainer",
                code="invalid_config",
            )
        if family == REFERENCE_FAMILY:
            if importlib.util.find_spec("torch") is None:
                raise InvalidInputError(
                    "the reference trainer needs PyTorch: install cloudtune's trainer extra "
                    "(pip install 'cloudtune[trainer]')",
                    code="trainer_unavailable",
                )
            return
        if importlib.util.find_spec("simpletuner") is None:
            raise InvalidInputError(
                f"model_family '{family}' cannot be trained by the local provider: its built-in "
                f"reference trainer trains only model_family '{REFERENCE_FAMILY}', and "
                "SimpleTuner is not installed on this machine. Install SimpleTuner here, or "
                "submit with provider=replicate to train it on cloud GPUs.",
                code="unsupported_model_family",
                model_family=family,
            )

    def hardware_type(self) -> str | None:
        return detect_hardware().describe()

    def profiles(self) -> list[HardwareProfile]:
        hardware = detect_hardware()
        price = usd_to_micros(self._settings.hardware.local_per_hour_usd)
        if hardware.gpu_count:
            return [
                HardwareProfile(
                    "local-gpu",
                    self.name,
                    hardware.gpu_names[0],
                    hardware.gpu_count,
                    None,
                    price,
                    20.0,
                )
            ]
        # The reference trainer makes about 10 steps a second at 64 px on two cores.
        return [HardwareProfile("cpu", self.name, None, 0, None, price, 5.0)]

    def offer(self, profile: str | None) -> HardwareProfile:
        mine = self.profiles()[0]
        if profile not in (None, "", "local", mine.name):
            raise InvalidInputError(
                f"the local provider runs on '{mine.name}' ({mine.label}); "
                f"hardware_profile '{profile}' is not available here",
                code="invalid_hardware_profile",
            )
        return mine

    async def submit(self, job: Job, bundle: JobBundle) -> ProviderHandle:
        run_dir = self._runs_dir / job.job_id
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config, dataloader, _ = split_secrets(bundle.spec.config, bundle.spec.dataloader)
        _write_json(run_dir / "config.json", config)
        _write_json(run_dir / "multidatabackend.json", dataloader)
        entry = _Entry(
            job_id=job.job_id,
            run_dir=run_dir,
            priority=job.priority,
            seq=next(self._seq),
            env=self._trainer_env(
                job.job_id, run_dir, bundle.webhook_url, bundle.webhook_token, bundle.secrets
            ),
        )
        self._enqueue(entry)
        return ProviderHandle(ref=job.job_id, data={"run_dir": str(run_dir)})

    async def status(self, handle: ProviderHandle) -> ProviderStatus:
        entry = self._entries.get(handle.ref)
        if entry is None:
            return self._status_from_disk(handle)
        if entry.final is not None:
            return entry.final
        if entry.process is None:
            position = self._queue.index(entry) + 1 if entry in self._queue else None
            return ProviderStatus(status=JobStatus.QUEUED, queue_position=position)
        return ProviderStatus(
            status=JobStatus.RUNNING,
            started_at=entry.process.started_at,
            metadata={"pid": entry.process.pid},
        )

    async def cancel(self, handle: ProviderHandle) -> None:
        entry = self._entries.get(handle.ref)
        if entry is None or entry.final is not None:
            return
        entry.cancel_requested = True
        if entry.process is None:
            if entry in self._queue:
                self._queue.remove(entry)
            entry.final = _cancelled()
        else:
            log.info("job %s: SIGTERM to trainer pid %s", entry.job_id, entry.process.pid)
            entry.process.signal_group(signal.SIGTERM)
            entry.kill_at = time.monotonic() + self._settings.local.cancel_grace_seconds
        self._wake.set()

    async def logs(self, handle: ProviderHandle, tail: int | None) -> str:
        return await asyncio.to_thread(_read_log, self.log_path(handle), tail)

    async def validate(self) -> ProviderAccount:
        return ProviderAccount(ok=True, detail="local machine", hardware=self.hardware_type())

    # -- optional abilities -----------------------------------------------------------------

    def log_path(self, handle: ProviderHandle) -> Path:
        return self._runs_dir / handle.ref / processes.LOG_FILE

    def forget(self, handle: ProviderHandle) -> None:
        entry = self._entries.pop(handle.ref, None)
        if entry is not None and entry.process is not None and entry.final is None:
            return  # still running: keep its folder
        run_dir = self._runs_dir / handle.ref
        if run_dir.is_dir() and run_dir.parent == self._runs_dir:
            shutil.rmtree(run_dir, ignore_errors=True)

    async def restore(self, jobs: Sequence[RestoredJob]) -> None:
        """Rebuild the queue and re-adopt live trainers after a restart."""
        for restored in jobs:
            job, run_dir = restored.job, self._runs_dir / restored.handle.ref
            entry = _Entry(
                job_id=job.job_id,
                run_dir=run_dir,
                priority=job.priority,
                seq=next(self._seq),
                env=self._trainer_env(
                    job.job_id,
                    run_dir,
                    restored.webhook_url,
                    restored.webhook_token,
                    restored.secrets,
                ),
            )
            process = processes.find(run_dir)
            if process is not None:
                entry.process = process
                entry.slot = self._take_slot()
                self._entries[job.job_id] = entry
                log.info("job %s: re-adopted trainer pid %s", job.job_id, process.pid)
            elif job.status == JobStatus.RUNNING or (run_dir / processes.PROCESS_FILE).exists():
                entry.final = self._status_from_disk(restored.handle)
                self._entries[job.job_id] = entry
            else:
                self._enqueue(entry)
        self._wake.set()

    async def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="local-provider")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def has_running_processes(self) -> bool:
        return any(e.process is not None and e.final is None for e in self._entries.values())

    # -- internals --------------------------------------------------------------------------

    def _enqueue(self, entry: _Entry) -> None:
        self._entries[entry.job_id] = entry
        self._queue.append(entry)
        self._queue.sort(key=lambda e: (-e.priority, e.seq))
        self._wake.set()

    def _take_slot(self) -> int | None:
        return self._free_slots.pop(0) if self._free_slots else None

    def _trainer_env(
        self,
        job_id: str,
        run_dir: Path,
        webhook_url: str,
        webhook_token: str,
        secrets: Sequence[tuple[tuple[str | int, ...], Any]] = (),
    ) -> dict[str, str]:
        env = trainer_environment(os.environ, secrets)
        env.update(
            {
                "CLOUDTUNE_JOB_ID": job_id,
                "CLOUDTUNE_RUN_DIR": str(run_dir),
                "CLOUDTUNE_WEBHOOK_URL": webhook_url,
                "CLOUDTUNE_WEBHOOK_TOKEN": webhook_token,
                "CLOUDTUNE_TRAINER__CPU_MAX_RESOLUTION": str(
                    self._settings.trainer.cpu_max_resolution
                ),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    async def _run(self) -> None:
        interval = self._settings.local.poll_interval_seconds
        while True:
            try:
                if self._tick():
                    self._on_change()
            except Exception:  # the loop must outlive one bad tick
                log.exception("local provider tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()

    def _tick(self) -> bool:
        changed = False
        for entry in list(self._entries.values()):
            if entry.process is None or entry.final is not None:
                continue
            code = entry.process.exit_code()
            if code is None:
                if entry.kill_at is not None and time.monotonic() >= entry.kill_at:
                    log.warning("job %s: trainer ignored SIGTERM, sending SIGKILL", entry.job_id)
                    entry.process.signal_group(signal.SIGKILL)
                    entry.kill_at = None
                continue
            entry.final = self._final_status(entry, code)
            if entry.slot is not None:
                self._free_slots.append(entry.slot)
                self._free_slots.sort()
                entry.slot = None
            changed = True
        while self._queue and self._free_slots:
            entry = self._queue.pop(0)
            entry.slot = self._take_slot()
            self._launch(entry)
            changed = True
        return changed

    def _launch(self, entry: _Entry) -> None:
        env = dict(entry.env)
        if self._gpu_slots and entry.slot is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(entry.slot)
        python = self._settings.local.python or sys.executable
        command = [python, "-m", "cloudtune.trainer.launch", str(entry.run_dir)]
        try:
            entry.process = processes.start(command, run_dir=entry.run_dir, env=env)
            log.info("job %s: started trainer pid %s", entry.job_id, entry.process.pid)
        except OSError as exc:
            entry.final = ProviderStatus(
                status=JobStatus.FAILED,
                completed_at=datetime.now(UTC),
                error_message=f"could not start the trainer: {exc}",
            )
            if entry.slot is not None:
                self._free_slots.append(entry.slot)
                entry.slot = None

    def _final_status(self, entry: _Entry, code: int) -> ProviderStatus:
        assert entry.process is not None
        started = entry.process.started_at
        result = processes.read_result(entry.run_dir)
        if entry.cancel_requested:
            return _cancelled(started)
        if result is not None:
            return _status_from_result(result, started)
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

    def _status_from_disk(self, handle: ProviderHandle) -> ProviderStatus:
        run_dir = self._runs_dir / handle.ref
        started = processes.recorded_start(run_dir)
        result = processes.read_result(run_dir)
        if result is not None:
            return _status_from_result(result, started)
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


def _cancelled(started: datetime | None = None) -> ProviderStatus:
    return ProviderStatus(
        status=JobStatus.CANCELLED,
        started_at=started,
        completed_at=datetime.now(UTC),
        error_message="cancelled",
    )


def _status_from_result(result: dict[str, object], started: datetime | None) -> ProviderStatus:
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


def _read_log(path: Path, tail: int | None) -> str:
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
    lines = [line.strip() for line in _read_log(path, 40).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:500]
    return lines[-1][:500] if lines else None


def _write_json(path: Path, data: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2))
