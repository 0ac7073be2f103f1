"""Running SimpleTuner's trainer from the trainer launcher (`cloudtune.trainer.launch`).

Its progress goes straight from its raw webhook to the job's trainer webhook (which reads
`training.status` events), so this module only starts it, relays its output to the job's log,
stops it on cancel and says how it ended. Success is exit 0 *and* the weights file: it also
exits 0 after SIGINT and when it finds no dataset.

Cancel: the launcher's SIGTERM handler raises in the wait below. SimpleTuner has no signal
handlers (SIGTERM kills it mid-write), so it runs in a process group of its own that the
provider's SIGTERM does not reach; this module asks it for a checkpoint through
`SIMPLETUNER_ACCELERATE_SIGNAL_FILE`, waits for it, then sends SIGINT (it cleans up and exits 0)
and SIGTERM/SIGKILL last, all within the provider's grace. It dies with the launcher if the
launcher is killed (PR_SET_PDEATHSIG), so the provider's SIGKILL still ends it.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from cloudtune.trainer.simpletuner.config import LORA_WEIGHTS, TrainerFiles, write_trainer_files
from cloudtune.trainer.simpletuner.install import COMMAND_ENV, trainer_command

GRACE_ENV = "CLOUDTUNE_CANCEL_GRACE_SECONDS"
_T = TypeVar("_T")
_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 60
# Variables that would make SimpleTuner read another config than the one written here.
_CONFIG_SELECTORS = ("ENV", "SIMPLETUNER_ENV", "SIMPLETUNER_ENVIRONMENT", "CONFIG_TYPE")


def train_with_simpletuner(run_dir: Path) -> list[str]:
    files = write_trainer_files(run_dir, os.environ)
    command = trainer_command(os.environ, sys.executable)
    if files.defaults_filled:
        print(f"SimpleTuner defaults set: {', '.join(files.defaults_filled)}", flush=True)
    if any(files.output_dir.glob("checkpoint-*")):
        print(
            f"{files.output_dir} holds checkpoints: SimpleTuner resumes from the latest one "
            "unless resume_from_checkpoint says otherwise",
            flush=True,
        )
    print(f"starting SimpleTuner: {shlex.join(command)}", flush=True)
    started = time.time()
    process = subprocess.Popen(  # noqa: S603 - the configured trainer command
        command,
        cwd=run_dir,
        env=child_environment(files),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent(),  # noqa: PLW1509 - no threads run yet in this process
    )
    assert process.stdout is not None
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    relay = threading.Thread(target=_relay, args=(process.stdout, tail), daemon=True)
    relay.start()
    try:
        code = process.wait()
    except BaseException:
        _stop(process, files, float(os.environ.get(GRACE_ENV) or 10.0))
        raise
    finally:
        relay.join(timeout=5)
    if code != 0:
        raise RuntimeError(f"SimpleTuner's trainer {_describe(code)}: {_last_error(tail)}")
    if not _has_weights(files):
        raise RuntimeError(
            f"SimpleTuner's trainer exited 0 but wrote no weights to {files.output_dir} (it "
            f"does so when it finds no dataset): {_last_error(tail)}"
        )
    outputs = collect_outputs(files.output_dir, since=started)
    print(f"SimpleTuner finished: {len(outputs)} outputs in {files.output_dir}", flush=True)
    return outputs


def child_environment(files: TrainerFiles) -> dict[str, str]:
    env = dict(os.environ)
    for name in (*_CONFIG_SELECTORS, COMMAND_ENV, GRACE_ENV, "CLOUDTUNE_JOB_SECRETS"):
        env.pop(name, None)  # the job's secrets it needs come below, by their own names
    env.update(files.env)
    env.update(
        {
            "CONFIG_BACKEND": "json",
            "SIMPLETUNER_CONFIG_BACKEND": "json",
            "CONFIG_PATH": str(files.config_path),
            "SIMPLETUNER_ACCELERATE_SIGNAL_FILE": str(files.signal_file),
            "SIMPLETUNER_DISABLE_COLORS": "1",
            "SIMPLETUNER_DISABLE_TQDM": "1",
        }
    )
    job_id = os.environ.get("CLOUDTUNE_JOB_ID")
    if job_id:
        env["SIMPLETUNER_JOB_ID"] = job_id
    # Its Hub publishing reads either name (then $HF_HOME/token); both, as its Cog image does.
    token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        env["HF_TOKEN"] = env["HUGGING_FACE_HUB_TOKEN"] = token
    return env


def collect_outputs(output_dir: Path, *, since: float) -> list[str]:
    """The files this run wrote to output_dir: weights first, then the rest (validation
    images, README.md, simpletuner_config.json, a full fine-tune's pipeline/), without the
    checkpoints, which are for resuming."""
    found: list[Path] = []
    for path in sorted(output_dir.rglob("*")):
        relative = path.relative_to(output_dir)
        if relative.parts[0].startswith(("checkpoint-", ".")) or not path.is_file():
            continue
        # A reused output_dir keeps an earlier run's files; they are not this job's outputs.
        if path.stat().st_mtime >= since - 1.0:
            found.append(path)
    found.sort(key=lambda p: (p.suffix != ".safetensors", str(p)))
    return [str(p) for p in found]


def _has_weights(files: TrainerFiles) -> bool:
    if files.model_type == "full":
        return (files.output_dir / "pipeline").is_dir()
    return (files.output_dir / LORA_WEIGHTS).is_file()


def _stop(process: subprocess.Popen[bytes], files: TrainerFiles, grace: float) -> None:
    """Checkpoint, SIGINT, then SIGTERM and SIGKILL, ending a second before the grace does."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop at a time
    start = time.monotonic()
    budget = max(0.0, grace - 1.0)
    if process.poll() is None:
        before = set(files.output_dir.glob("checkpoint-*"))
        _request_checkpoint(files.signal_file)
        print("cancel: asked SimpleTuner for a checkpoint", flush=True)
        saved = _wait(process, start + 0.6 * budget, lambda: _new_checkpoint(files, before))
        print(
            f"cancel: checkpoint {saved.name} saved" if saved else "cancel: no checkpoint in time",
            flush=True,
        )
    for sig, until in ((signal.SIGINT, start + budget), (signal.SIGTERM, start + budget + 0.5)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        _wait(process, until, lambda: None)
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    print(f"cancel: SimpleTuner's trainer {_describe(process.returncode)}", flush=True)


def _request_checkpoint(signal_file: Path) -> None:
    """Bump the cumulative counter; SimpleTuner re-reads the file when its mtime changes."""
    try:
        counters = json.loads(signal_file.read_text())
    except (OSError, ValueError):
        counters = {}
    counters["manual_checkpoint"] = int(counters.get("manual_checkpoint") or 0) + 1
    counters.setdefault("manual_validation", 0)
    tmp = signal_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(counters))
    tmp.replace(signal_file)


def _new_checkpoint(files: TrainerFiles, before: set[Path]) -> Path | None:
    """A checkpoint folder that appeared since the cancel and holds its training state (the
    last file its save hooks write beside the weights)."""
    for folder in set(files.output_dir.glob("checkpoint-*")) - before:
        if (folder / "training_state.json").is_file():
            return folder
    return None


def _wait(
    process: subprocess.Popen[bytes], until: float, done: Callable[[], _T | None]
) -> _T | None:
    while (remaining := until - time.monotonic()) > 0:
        result = done()
        if result is not None:
            return result
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=min(0.1, remaining))
            return None
    return None


def _relay(stream: IO[bytes], tail: collections.deque[str]) -> None:
    """Copy its output to ours (the job's log) and keep the last lines for the error."""
    out = sys.stdout.buffer
    for line in iter(stream.readline, b""):
        out.write(line)
        out.flush()
        text = line.decode("utf-8", errors="replace").strip()
        if text:
            tail.append(text)


def _last_error(tail: collections.deque[str]) -> str:
    lines = list(tail)
    for line in reversed(lines):
        if "Error" in line or "error" in line or "Exception" in line:
            return line[:500]
    return lines[-1][:500] if lines else "it printed nothing"


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _die_with_parent() -> Callable[[], None] | None:
    """In the child: get SIGKILL when this launcher dies (Linux), so a SIGKILL the provider
    sends this process group also ends the trainer in its own group."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the launcher died before the line above
            os._exit(1)

    return arm
