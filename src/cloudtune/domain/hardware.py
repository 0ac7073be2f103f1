"""Hardware profiles: GPU type, count, VRAM and price per hour. Multi-GPU profiles multiply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    name: str
    provider: str
    gpu_type: str | None
    gpu_count: int
    vram_gb: int | None
    price_per_hour_micros: int
    # Training speed assumed until finished jobs of this profile teach a better figure.
    default_steps_per_second: float

    @property
    def label(self) -> str:
        if self.gpu_type is None:
            return "CPU"
        return self.gpu_type if self.gpu_count == 1 else f"{self.gpu_count}x {self.gpu_type}"

    @property
    def display_name(self) -> str:
        """The label with the memory of one GPU, as users read it: "H100 (80GB)",
        "2x L40S (48GB)"."""
        if self.vram_gb is None:
            return self.label
        return f"{self.label} ({self.vram_gb}GB)"
