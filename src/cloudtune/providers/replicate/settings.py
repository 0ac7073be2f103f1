"""Replicate's own settings, saved through `PUT /api/cloud/providers/replicate`.

The trainer model, its version and the default hardware are Replicate's choices, so they live
here and nowhere in generic code. Unknown fields are refused (`extra="forbid"`).
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_MODEL = "simpletuner/advanced-trainer"
DEFAULT_HARDWARE_PROFILE = "h100"


class ReplicateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    webhook_url: str | None = Field(
        default=None,
        pattern=r"^(https?://|$)",
        description="Public base URL of this server that Replicate posts prediction webhooks "
        "to; none: jobs are followed by polling only.",
    )
    webhook_allowed_ips: list[str] | None = Field(
        default_factory=list,
        description="Addresses or networks webhooks may come from; empty: any.",
    )
    default_hardware_profile: str | None = Field(
        default=DEFAULT_HARDWARE_PROFILE,
        description="Hardware a job runs on when its submit names none (h100, l40s, -x2...).",
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
