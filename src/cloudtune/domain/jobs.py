"""Jobs, their statuses and the one table of allowed status changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cloudtune.domain.costs import cost_micros


class JobStatus(StrEnum):
    PENDING = "pending"
    UPLOADING = "uploading"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        return not self.is_terminal


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset(set(JobStatus) - TERMINAL_STATUSES)
# An active job with no provider reference this long after submit is lost (a crash between
# writing it and handing it over, or a create the provider may not have made): one the provider
# does not turn out to hold by then is failed.
ORPHAN_AFTER = timedelta(minutes=15)

# Every status change must be in this table; anything else is refused (and logged) by the one
# function that changes a job's status, `cloudtune.store.jobs.switch_job_status`.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(
        {
            JobStatus.UPLOADING,
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        }
    ),
    JobStatus.UPLOADING: frozenset(
        {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.QUEUED: frozenset(
        {JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    ),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


def can_transition(current: JobStatus, new: JobStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


class JobType(StrEnum):
    LOCAL = "local"
    CLOUD = "cloud"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Progress:
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    eta_seconds: float | None = None
    updated_at: datetime | None = None

    @property
    def percent(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return round(min(100.0, 100.0 * self.step / self.total_steps), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "percent": self.percent,
            "loss": self.loss,
            "lr": self.lr,
            "epoch": self.epoch,
            "eta_seconds": self.eta_seconds,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Progress:
        if not data:
            return cls()
        updated = data.get("updated_at")
        return cls(
            step=data.get("step"),
            total_steps=data.get("total_steps"),
            loss=data.get("loss"),
            lr=data.get("lr"),
            epoch=data.get("epoch"),
            eta_seconds=data.get("eta_seconds"),
            updated_at=datetime.fromisoformat(updated) if updated else None,
        )


@dataclass(slots=True)
class Job:
    job_id: str
    job_type: JobType
    provider: str
    status: JobStatus
    created_at: datetime
    config_name: str | None = None
    tracker_run_name: str | None = None
    user_id: str | None = None
    queued_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    hardware_type: str | None = None
    hardware_profile: str | None = None
    price_per_hour_micros: int | None = None
    estimated_cost_micros: int | None = None
    cost_micros: int | None = None
    max_cost_micros: int | None = None
    progress: Progress = field(default_factory=Progress)
    error_message: str | None = None
    output_url: str | None = None
    outputs: list[Any] = field(default_factory=list)
    queue_position: int | None = None
    priority: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    config_snapshot: dict[str, Any] | None = None
    provider_ref: str | None = None
    provider_data: dict[str, Any] = field(default_factory=dict)
    publishes: bool = False  # it has a publish target (Hub or external S3)

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    @property
    def is_active(self) -> bool:
        return self.status.is_active

    def billed_cost_micros(self, now: datetime | None = None) -> int | None:
        """The stored final cost, or price snapshot x seconds so far (integer micro-dollars)."""
        if self.cost_micros is not None:
            return self.cost_micros
        if self.price_per_hour_micros is None or self.started_at is None:
            return None
        end = self.completed_at or now or utcnow()
        return cost_micros(self.price_per_hour_micros, end - self.started_at)

    def duration_seconds(self, now: datetime | None = None) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at or now or utcnow()
        return round(max(0.0, (end - self.started_at).total_seconds()), 3)
