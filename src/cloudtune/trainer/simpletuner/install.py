"""Which command runs SimpleTuner's trainer, and whether it is installed where jobs run.

By default that is `<trainer python> -m simpletuner.train` (the contract's entry point; the
`simpletuner-train` console script is broken in 4.10.1). `CLOUDTUNE_SIMPLETUNER_COMMAND` names
another command (a wrapper script, a virtual environment of its own, or a stand-in in tests);
it goes through the same code path, and only its presence is checked here.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping

COMMAND_ENV = "CLOUDTUNE_SIMPLETUNER_COMMAND"
MODULE = "simpletuner.train"
INSTALL_HINT = "pip install 'simpletuner[cuda]' (Python 3.12 or newer)"

# Interpreters found to have SimpleTuner; a missing one is probed again on the next submit,
# so installing it needs no restart.
_HAVE_IT: set[str] = set()


def trainer_command(env: Mapping[str, str], python: str) -> list[str]:
    """The command, and on several visible GPUs SimpleTuner's multi-GPU form: accelerate
    launching one process per GPU (`accelerate launch --multi_gpu --num_processes=N
    --mixed_precision=bf16 -m simpletuner.train`). The GPUs a job may use are the ones its
    provider made visible (`CUDA_VISIBLE_DEVICES`: the local provider's slot, the GPUs Ray
    reserved for the job). A command named by CLOUDTUNE_SIMPLETUNER_COMMAND is run as it is."""
    override = env.get(COMMAND_ENV, "").strip()
    if override:
        return shlex.split(override)  # the operator's command launches what it launches
    gpus = visible_gpus(env)
    if gpus < 2:
        return [python, "-m", MODULE]
    launch = ["--multi_gpu", f"--num_processes={gpus}", "--mixed_precision=bf16"]
    return [python, "-m", "accelerate.commands.launch", *launch, "-m", MODULE]


def visible_gpus(env: Mapping[str, str]) -> int:
    """How many GPUs the job was given; an unset CUDA_VISIBLE_DEVICES is one trainer."""
    devices = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if not devices or devices == "-1":
        return 0 if devices == "-1" else 1
    return len([d for d in devices.split(",") if d.strip()])


def unavailable_reason(family: str, env: Mapping[str, str], python: str | None) -> str | None:
    """Why jobs of `family` cannot run here (None when they can)."""
    python = python or sys.executable
    override = env.get(COMMAND_ENV, "").strip()
    if override:
        try:
            program = shlex.split(override)[0]
        except (ValueError, IndexError):
            return f"{COMMAND_ENV} is not a command line: {override!r}"
        if shutil.which(program) is None:
            return (
                f"model_family '{family}' is trained by SimpleTuner through {COMMAND_ENV}, "
                f"but its program '{program}' is not found on this machine"
            )
        return None
    if _has_simpletuner(python):
        return None
    return (
        f"model_family '{family}' is trained by SimpleTuner, which is not installed for the "
        f"local trainer's Python ({python}); the built-in reference trainer trains only "
        f"model_family 'reference'. Install SimpleTuner there ({INSTALL_HINT}), or set "
        f"{COMMAND_ENV} to the command that runs its trainer, or submit with "
        "provider=replicate to train it on cloud GPUs."
    )


def _has_simpletuner(python: str) -> bool:
    if python in _HAVE_IT:
        return True
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        found = importlib.util.find_spec("simpletuner") is not None
    else:
        probe = "import importlib.util as u, sys; sys.exit(u.find_spec('simpletuner') is None)"
        try:
            found = (
                subprocess.run(  # noqa: S603 - the configured interpreter, fixed code
                    [python, "-c", probe], capture_output=True, timeout=30, check=False
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            found = False
    if found:
        _HAVE_IT.add(python)
    return found
