"""Replicate's own settings, saved through `PUT /api/cloud/providers/replicate`.

The trainer model, its version and the default hardware are Replicate's choices, so they live
here and nowhere in generic code. Unknown fields are refused (`extra="forbid"`).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloudtune.errors import InvalidInputError
from cloudtune.providers.replicate.profiles import normalise_profile

DEFAULT_MODEL = "simpletuner/advanced-trainer"
DEFAULT_HARDWARE_PROFILE = "h100"


class ReplicateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    webhook_url: str | None = Field(
        default=None,
        description="Public base URL of this server that Replicate posts prediction webhooks "
        "to; none: jobs are followed by polling only.",
    )
    webhook_allowed_ips: list[str] | None = Field(
        default_factory=list,
        description="Addresses or networks webhooks may come from; empty: any.",
    )
    default_hardware_profile: str | None = Field(
        default=DEFAULT_HARDWARE_PROFILE,
        description="Hardware a job runs on when its submit names none (h100, l40s, -x2...); "
        "normalised (`H100_x2` is `h100-x2`), an unknown profile is refused.",
    )
    model: str | None = Field(
        default=DEFAULT_MODEL,
        description="Trainer model `owner/name`; the hardware profile is appended "
        "(`<model>-h100`).",
    )
    version: str | None = Field(
        default=None, description="Pinned trainer version id; none: the latest one."
    )
    require_signature: bool = Field(
        default=True, description="Refuse webhooks without a valid Standard Webhooks signature."
    )

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # "" clears it, as before
        value = value.strip()
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("Invalid webhook URL: not a URL") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("Invalid webhook URL: URL must use http or https scheme")
        if not parts.hostname:
            raise ValueError("Invalid webhook URL: URL must have a host")
        return value

    @field_validator("default_hardware_profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None  # the default
        try:
            return normalise_profile(value, DEFAULT_HARDWARE_PROFILE)
        except InvalidInputError as exc:
            # Saved with a profile no submit could run on, every default submit would fail.
            raise ValueError(exc.detail) from None

    @field_validator("webhook_allowed_ips")
    @classmethod
    def _networks(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an address or network") from None
        return values

    @property
    def trainer_model(self) -> str:
        return self.model or DEFAULT_MODEL

    @property
    def hardware_profile(self) -> str:
        return self.default_hardware_profile or DEFAULT_HARDWARE_PROFILE
