"""What this machine trains on: visible NVIDIA GPUs, or the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class LocalHardware:
    gpu_names: tuple[str, ...]
    cpu_count: int

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_names)

    def describe(self) -> str:
        if not self.gpu_names:
            return f"CPU ({self.cpu_count} cores)"
        return f"{self.gpu_count}x {self.gpu_names[0]}"


@lru_cache
def detect_hardware() -> LocalHardware:
    return LocalHardware(gpu_names=tuple(_gpu_names()), cpu_count=os.cpu_count() or 1)


def _gpu_names() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = [line.strip() for line in out.splitlines() if line.strip()]
    if visible:
        wanted = [int(i) for i in visible.split(",") if i.strip().isdigit()]
        names = [names[i] for i in wanted if i < len(names)]
    return names
