"""What the SDK returns: the server's answers as typed models. Each keeps fields it does not
name (a newer server's) in `model_extra`, so an older SDK reads a newer server."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Progress(Model):
    step: int | None = None
    total_steps: int | None = None
    percent: float | None = None
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    eta_seconds: float | None = None
    updated_at: datetime | None = None


class Job(Model):
    job_id: str
    job_type: str
    provider: str
    status: str
    config_name: str | None = None
    tracker_run_name: str | None = None
    user_id: str | None = None
    created_at: datetime
    queued_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    hardware_type: str | None = None
    hardware_profile: str | None = None
    price_per_hour_usd: float | None = None
    estimated_cost_usd: float | None = None
    cost_usd: float | None = None
    max_cost_usd: float | None = None
    progress: Progress = Field(default_factory=Progress)
    error_message: str | None = None
    output_url: str | None = None
    outputs: list[Any] = Field(default_factory=list)
    delivery_error: str | None = None
    publish: dict[str, Any] | None = None
    publish_error: str | None = None
    queue_position: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    config_snapshot: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class JobPage(Model):
    jobs: list[Job]
    total: int
    limit: int
    offset: int


class SubmitResult(Model):
    job_id: str
    provider: str
    status: str
    idempotent_hit: bool = False
    data_uploaded: bool = False
    cost_limit_warning: str | None = None
    estimated_cost_usd: float | None = None


class Preview(Model):
    """The upload summary: what would leave the machine, and what the job would cost."""

    provider: str
    config_name: str | None = None
    model_family: str | None = None
    data_leaves_machine: bool = False
    consent: str | None = None
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    files: int = 0
    bytes: int = 0
    excluded_files: list[str] = Field(default_factory=list)
    hardware_profile: str | None = None
    price_per_hour_usd: float | None = None
    estimated_cost_usd: float | None = None
    warnings: list[str] = Field(default_factory=list)
    blocked: bool = False


class JobEvent(Model):
    id: int
    at: datetime
    kind: str
    from_status: str | None = None
    to_status: str | None = None
    message: str | None = None
    data: dict[str, Any] | None = None


class OutputFile(Model):
    path: str
    size: int
    sha256: str | None = None
    modified_at: datetime
    url: str


class Outputs(Model):
    job_id: str
    job_status: str
    folder: str | None = None
    files: list[OutputFile] = Field(default_factory=list)
    truncated: bool = False
    delivery_error: str | None = None


class ConfigSummary(Model):
    name: str
    description: str | None = None
    model_family: str | None = None
    model_type: str | None = None
    modified_at: datetime | None = None
    has_dataloader: bool = False


class Config(Model):
    name: str
    config: dict[str, Any]
    dataloader_config: list[Any] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


class ApiKey(Model):
    id: str
    name: str
    key_prefix: str
    user_id: str | None = None
    created_at: str
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    is_active: bool = True
    scoped_permissions: list[str] | None = None


class NewApiKey(Model):
    """The one answer that carries the key itself."""

    key: str
    key_info: ApiKey


class CostLimit(Model):
    enabled: bool
    limit_usd: float
    period: str
    action: str
    spent_usd: float
    remaining_usd: float
    period_start: str
    period_end: str
    exceeded: bool


class HardwareProfile(Model):
    id: str
    label: str
    hardware_type: str
    cost_per_hour: float


class Provider(Model):
    id: str
    name: str
    available: bool
    configured: bool
    reason: str | None = None
    hardware_profiles: list[HardwareProfile] = Field(default_factory=list)


class AccountCheck(Model):
    """A provider's token, checked with the provider."""

    valid: bool
    detail: str
    error: str | None = None
    user_info: dict[str, Any] | None = None


class TokenState(Model):
    token_configured: bool
    error: str | None = None


class User(Model):
    id: str | None = None
    username: str
    email: str | None = None
    role: str
    is_active: bool = True


class Me(User):
    permissions: list[str] = Field(default_factory=list)
    auth_method: str
    storage_prefix: str = ""


class Login(Model):
    token: str
    csrf_token: str
    expires_at: str
    user: User
