"""Replicate hardware profiles: trainer model suffix, label, and price (reference/replicate-api.md
§10: H100 $0.001525/s, L40S $0.000975/s; multi-GPU profiles multiply)."""

from __future__ import annotations

from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import HardwareOffer

_PER_GPU_HOURLY_MICROS = {"h100": 5_490_000, "l40s": 3_510_000}
_LABELS = {"h100": "H100", "l40s": "L40S"}
PROFILES: dict[str, HardwareOffer] = {}
for _gpu, _price in _PER_GPU_HOURLY_MICROS.items():
    for _count in (1, 2, 4, 8):
        _name = _gpu if _count == 1 else f"{_gpu}-x{_count}"
        _label = _LABELS[_gpu] if _count == 1 else f"{_count}x {_LABELS[_gpu]}"
        PROFILES[_name] = HardwareOffer(_name, _label, _price * _count)


def normalise_profile(raw: str | None, default: str = "h100") -> str:
    value = (raw or default).strip().lower().replace("_", "-").removeprefix("advanced-trainer-")
    for gpu in _PER_GPU_HOURLY_MICROS:
        if value in (f"1x{gpu}", f"1x-{gpu}", f"{gpu}-x1"):
            value = gpu
    if value not in PROFILES:
        raise InvalidInputError(
            f"Invalid Replicate hardware profile '{raw}'. Valid profiles: " + ", ".join(PROFILES),
            code="invalid_hardware_profile",
        )
    return value
