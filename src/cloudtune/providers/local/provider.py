"""Runs trainers as subprocesses on this machine: one job per free GPU (one at a time on the CPU),
a FIFO queue ordered by priority (`queue`), SIGTERM then SIGKILL on cancel (`supervision`), and
re-adoption of this replica's live trainers after a server restart (`readoption`)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.training import TrainingSpec, split_secrets
from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import (
    JobBundle,
    NotMine,
    ProviderAccount,
    ProviderHandle,
    ProviderStatus,
    RestoredJob,
)
from cloudtune.providers.local import processes, readoption, supervision
from cloudtune.providers.local.environment import trainer_environment
from cloudtune.providers.local.hardware import detect_hardware
from cloudtune.providers.local.queue import Entry, JobQueue
from cloudtune.settings import Settings
from cloudtune.trainer import simpletuner

log = logging.getLogger(__name__)

REFERENCE_FAMILY = "reference"


class LocalProvider:
    name = "local"
    job_type = JobType.LOCAL.value
    poll_with_backoff = False

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._runs_dir = settings.runs_dir
        self._replica = settings.replica
        hardware = detect_hardware()
        self._gpu_slots = hardware.gpu_count > 0
        self._queue = JobQueue(settings.local.max_concurrent_jobs or max(1, hardware.gpu_count))
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
        missing = simpletuner.unavailable_reason(family, os.environ, self._settings.local.python)
        if missing is not None:
            raise InvalidInputError(missing, code="unsupported_model_family", model_family=family)
        problems = simpletuner.config_problems(spec.config, spec.dataloader)
        if problems:
            raise InvalidInputError("; ".join(problems), code="invalid_config")

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
        env = self._trainer_env(job.job_id, run_dir, bundle)
        self._enqueue(self._entry(job, run_dir, env))
        data = {"run_dir": str(run_dir), readoption.OWNER_KEY: self._replica}
        return ProviderHandle(ref=job.job_id, data=data)

    async def status(self, handle: ProviderHandle) -> ProviderStatus | NotMine:
        entry = self._queue.entries.get(handle.ref)
        if entry is None:
            if not self.holds(handle):
                return NotMine(owner=readoption.owner_of(handle))
            return supervision.status_from_disk(self._runs_dir / handle.ref)
        if entry.final is not None:
            return entry.final
        if entry.process is None:
            return ProviderStatus(
                status=JobStatus.QUEUED, queue_position=self._queue.position(entry)
            )
        return ProviderStatus(
            status=JobStatus.RUNNING,
            started_at=entry.process.started_at,
            metadata={"pid": entry.process.pid},
        )

    async def cancel(self, handle: ProviderHandle) -> None:
        """Stop a job this replica holds; a job it does not hold is left to its holder (the
        caller records the request for it). Asked again while its trainer stops, it does
        nothing: a second SIGTERM would put the SIGKILL off by another grace period."""
        entry = self._queue.entries.get(handle.ref)
        if entry is None or entry.final is not None or entry.cancel_requested:
            return
        entry.cancel_requested = True
        if entry.process is None:
            self._queue.withdraw(entry)
            entry.final = supervision.cancelled()
        else:
            supervision.stop(entry, self._settings.local.cancel_grace_seconds)
        self._wake.set()

    async def logs(self, handle: ProviderHandle, tail: int | None) -> str:
        return await asyncio.to_thread(supervision.read_log, self.log_path(handle), tail)

    async def validate(self) -> ProviderAccount:
        return ProviderAccount(ok=True, detail="local machine", hardware=self.hardware_type())

    # -- optional abilities -----------------------------------------------------------------

    def holds(self, handle: ProviderHandle) -> bool:
        if handle.ref in self._queue.entries:
            return True
        return readoption.holds(handle, replica=self._replica, runs_dir=self._runs_dir)

    def log_path(self, handle: ProviderHandle) -> Path:
        return self._runs_dir / handle.ref / processes.LOG_FILE

    def forget(self, handle: ProviderHandle) -> None:
        entry = self._queue.entries.pop(handle.ref, None)
        if entry is not None and entry.running:
            return  # still running: keep its folder
        run_dir = self._runs_dir / handle.ref
        if run_dir.is_dir() and run_dir.parent == self._runs_dir:
            shutil.rmtree(run_dir, ignore_errors=True)

    async def restore(self, jobs: Sequence[RestoredJob]) -> None:
        """Rebuild the queue and re-adopt live trainers after a restart (also of ended jobs
        whose cancel waits for us: `readoption.readopt`); jobs another replica holds are not
        ours to judge and are skipped."""
        for restored in jobs:
            if not self.holds(restored.handle):
                continue
            job, run_dir = restored.job, self._runs_dir / restored.handle.ref
            env = self._trainer_env(job.job_id, run_dir, restored)
            readoption.readopt(self._queue, self._entry(job, run_dir, env), job)
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
        return any(entry.running for entry in self._queue.entries.values())

    # -- internals --------------------------------------------------------------------------

    def _entry(self, job: Job, run_dir: Path, env: dict[str, str]) -> Entry:
        return Entry(
            job_id=job.job_id,
            run_dir=run_dir,
            priority=job.priority,
            seq=self._queue.next_seq(),
            env=env,
        )

    def _enqueue(self, entry: Entry) -> None:
        self._queue.enqueue(entry)
        self._wake.set()

    def _trainer_env(
        self, job_id: str, run_dir: Path, start: JobBundle | RestoredJob
    ) -> dict[str, str]:
        env = trainer_environment(os.environ, start.secrets)
        if start.storage is not None:
            env.update(start.storage.environment())
        env.update(
            {
                "CLOUDTUNE_JOB_ID": job_id,
                "CLOUDTUNE_RUN_DIR": str(run_dir),
                "CLOUDTUNE_WEBHOOK_URL": start.webhook_url,
                "CLOUDTUNE_WEBHOOK_TOKEN": start.webhook_token,
                "CLOUDTUNE_TRAINER__CPU_MAX_RESOLUTION": str(
                    self._settings.trainer.cpu_max_resolution
                ),
                "PYTHONUNBUFFERED": "1",
                # The SimpleTuner adapter ends its trainer within the time SIGKILL waits.
                simpletuner.GRACE_ENV: str(self._settings.local.cancel_grace_seconds),
            }
        )
        if os.environ.get(simpletuner.COMMAND_ENV):
            env[simpletuner.COMMAND_ENV] = os.environ[simpletuner.COMMAND_ENV]
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
        for entry in list(self._queue.entries.values()):
            if entry.running and supervision.check(entry):
                self._queue.free_slot(entry)
                changed = True
        while (startable := self._queue.pop_startable()) is not None:
            env = dict(startable.env)
            if self._gpu_slots and startable.slot is not None:
                env["CUDA_VISIBLE_DEVICES"] = str(startable.slot)
            python = self._settings.local.python or sys.executable
            command = [python, "-m", "cloudtune.trainer.launch", str(startable.run_dir)]
            if not supervision.launch(startable, command, env):
                self._queue.free_slot(startable)
            changed = True
        return changed


def _write_json(path: Path, data: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2))
