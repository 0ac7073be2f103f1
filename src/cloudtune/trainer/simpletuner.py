"""Runs SimpleTuner's own trainer for real model families, when it is installed here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def train_with_simpletuner(run_dir: Path) -> list[str]:
    """Hand the run folder to SimpleTuner's trainer (it reads config.json and
    multidatabackend.json from CONFIG_PATH / the same folder) and wait for it."""
    env = dict(os.environ)
    env["SIMPLETUNER_CONFIG_BACKEND"] = "json"
    env["CONFIG_PATH"] = str(run_dir / "config")
    env["ENV"] = "default"
    completed = subprocess.run(  # noqa: S603 - fixed command
        [sys.executable, "-m", "simpletuner.train"], cwd=run_dir, env=env, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"SimpleTuner's trainer exited with code {completed.returncode}")
    return []
