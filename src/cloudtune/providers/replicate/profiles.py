"""Replicate hardware profiles (reference/replicate-api.md §10), priced from settings."""

from __future__ import annotations

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.errors import InvalidInputError
from cloudtune.settings import Settings

# Replicate's GPUs: name, label, VRAM (GB) and the speed assumed before jobs teach better.
_GPUS = (("h100", "H100", 80, 1.0), ("l40s", "L40S", 48, 0.5))
_COUNTS = (1, 2, 4, 8)


def replicate_profiles(settings: Settings) -> dict[str, HardwareProfile]:
    """Every profile, one to eight GPUs of a kind; several GPUs multiply price and speed."""
    hourly = {
        "h100": usd_to_micros(settings.hardware.h100_per_hour_usd),
        "l40s": usd_to_micros(settings.hardware.l40s_per_hour_usd),
    }
    profiles: dict[str, HardwareProfile] = {}
    for gpu, label, vram, speed in _GPUS:
        for count in _COUNTS:
            name = gpu if count == 1 else f"{gpu}-x{count}"
            profiles[name] = HardwareProfile(
                name, "replicate", label, count, vram, hourly[gpu] * count, speed * count
            )
    return profiles


def normalise_profile(raw: str | None, default: str) -> str:
    value = (raw or default).strip().lower().replace("_", "-").removeprefix("advanced-trainer-")
    gpus = [gpu for gpu, *_ in _GPUS]
    for gpu in gpus:
        if value in (f"1x{gpu}", f"1x-{gpu}", f"{gpu}-x1"):
            value = gpu
    valid = [gpu if n == 1 else f"{gpu}-x{n}" for gpu in gpus for n in _COUNTS]
    if value not in valid:
        raise InvalidInputError(
            f"Invalid Replicate hardware profile '{raw}'. Valid profiles: " + ", ".join(valid),
            code="invalid_hardware_profile",
        )
    return value


def replicate_sku(profile: str) -> str:
    """Replicate's hardware id (SKU) of a profile, as its pricing lists them
    (reference/replicate-api.md §10): several H100s are `gpu-h100-2x`, several L40S
    `gpu-2x-l40s`; one GPU is `gpu-<gpu>`."""
    gpu, _, count = profile.partition("-x")
    if not count:
        return f"gpu-{gpu}"
    return f"gpu-{gpu}-{count}x" if gpu == "h100" else f"gpu-{count}x-{gpu}"
