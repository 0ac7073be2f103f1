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
    override = env.get(COMMAND_ENV, "").strip()
    if override:
        return shlex.split(override)
    return [python, "-m", MODULE]


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
