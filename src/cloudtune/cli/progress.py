"""The live line of a job that `--wait` and `--follow` show: status, a bar of steps, the loss,
the time left and the cost so far. Where the output is not a terminal (CI logs), one line per
status change instead of a redrawn bar."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from cloudtune.client import models


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"ETA {hours}:{minutes:02d}:{secs:02d}" if hours else f"ETA {minutes}:{secs:02d}"


class JobProgress:
    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._console = console
        self._enabled = enabled
        self._live = enabled and console.is_terminal
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("{task.fields[cost]}"),
            console=console,
            disable=not self._live,
        )
        self._task: TaskID | None = None
        self._status: str | None = None
        self._lock = threading.Lock()  # updated from a poller thread beside the log stream

    def __enter__(self) -> JobProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._progress.__exit__(kind, error, trace)

    def update(self, job: models.Job) -> None:
        if not self._enabled:
            return
        with self._lock:
            changed = job.status != self._status
            self._status = job.status
            step, total = job.progress.step or 0, job.progress.total_steps
            loss = f"loss {job.progress.loss:.4f}" if job.progress.loss is not None else ""
            cost = job.cost_usd if job.cost_usd is not None else None
            fields = {
                "loss": loss,
                "eta": _eta(job.progress.eta_seconds),
                "cost": f"${cost:.2f}" if cost is not None else "",
            }
            if self._task is None:
                self._task = self._progress.add_task(
                    job.status, total=total, loss="", eta="", cost=""
                )
            self._progress.update(
                self._task,
                description=job.status,
                completed=step,
                total=total,
                loss=fields["loss"],
                eta=fields["eta"],
                cost=fields["cost"],
            )
            if changed and not self._live:
                parts = [job.status, f"step {step}/{total}" if total else "", fields["loss"]]
                self._console.print(" ".join(p for p in parts if p), highlight=False)
