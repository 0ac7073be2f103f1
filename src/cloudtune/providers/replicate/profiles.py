"""Replicate hardware profiles (reference/replicate-api.md §10), priced from settings."""

from __future__ import annotations

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.hardware import HardwareProfile, cloud_profiles
from cloudtune.errors import InvalidInputError
from cloudtune.settings import Settings


def replicate_profiles(settings: Settings) -> dict[str, HardwareProfile]:
    return cloud_profiles(
        h100_hourly_micros=usd_to_micros(settings.hardware.h100_per_hour_usd),
        l40s_hourly_micros=usd_to_micros(settings.hardware.l40s_per_hour_usd),
    )


def normalise_profile(raw: str | None, default: str = "h100") -> str:
    value = (raw or default).strip().lower().replace("_", "-").removeprefix("advanced-trainer-")
    for gpu in ("h100", "l40s"):
        if value in (f"1x{gpu}", f"1x-{gpu}", f"{gpu}-x1"):
            value = gpu
    valid = [f"{gpu}{suffix}" for gpu in ("h100", "l40s") for suffix in ("", "-x2", "-x4", "-x8")]
    if value not in valid:
        raise InvalidInputError(
            f"Invalid Replicate hardware profile '{raw}'. Valid profiles: " + ", ".join(valid),
            code="invalid_hardware_profile",
        )
    return value
