"""Trainer processes: start one in its own process group, find one again after a restart,
read how it ended.

The run folder is the process's record: `process.json` (pid, start time) is written when it
starts and `result.json` by the trainer launcher when it ends, so a server that restarts can
tell a live trainer from a dead one without having been its parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

PROCESS_FILE = "process.json"
RESULT_FILE = "result.json"
LOG_FILE = "train.log"


@dataclass(slots=True)
class TrainerProcess:
    pid: int
    create_time: float
    started_at: datetime
    popen: subprocess.Popen[bytes] | None = None

    def exit_code(self) -> int | None:
        """None while running; the exit code once ended (-1 when not our child)."""
        if self.popen is not None:
            return self.popen.poll()
        return None if _alive(self.pid, self.create_time) else -1

    def signal_group(self, sig: int) -> None:
        try:
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, sig)
            else:
                os.kill(self.pid, sig)
        except ProcessLookupError:
            pass


def start(command: list[str], *, run_dir: Path, env: dict[str, str]) -> TrainerProcess:
    log_path = run_dir / LOG_FILE
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(  # noqa: S603 - the command is ours, not user input
            command,
            cwd=run_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    process = TrainerProcess(
        pid=popen.pid, create_time=create_time, started_at=datetime.now(UTC), popen=popen
    )
    _write_json(
        run_dir / PROCESS_FILE,
        {
            "pid": process.pid,
            "create_time": create_time,
            "started_at": process.started_at.isoformat(),
        },
    )
    return process


def find(run_dir: Path) -> TrainerProcess | None:
    """The trainer process recorded in the run folder, if it still runs."""
    record = read_json(run_dir / PROCESS_FILE)
    if not record:
        return None
    pid, create_time = int(record["pid"]), float(record["create_time"])
    if not _alive(pid, create_time):
        return None
    return TrainerProcess(
        pid=pid, create_time=create_time, started_at=datetime.fromisoformat(record["started_at"])
    )


def recorded_start(run_dir: Path) -> datetime | None:
    record = read_json(run_dir / PROCESS_FILE)
    return datetime.fromisoformat(record["started_at"]) if record else None


def read_result(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / RESULT_FILE)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"trainer process was killed by {name}"
    return f"trainer process exited with code {code}"


def _alive(pid: int, create_time: float) -> bool:
    try:
        process = psutil.Process(pid)
        if create_time and abs(process.create_time() - create_time) > 1.0:
            return False  # the pid was reused by another program
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
