"""Where a job's outputs go once it has trained, and how far each delivery got."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class DeliveryKind(StrEnum):
    OUTPUTS = "outputs"  # a remote job's outputs, home to its output folder
    HUB = "hub"  # Hugging Face Hub
    S3 = "s3"  # an external bucket


# The kinds that publish the model elsewhere (a job JSON's `publish`).
PUBLISH_KINDS = (DeliveryKind.HUB, DeliveryKind.S3)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    job_id: str
    kind: DeliveryKind
    status: DeliveryStatus
    attempts: int
    error: str | None
    target: str | None
    settings: dict[str, Any]
    updated_at: datetime
