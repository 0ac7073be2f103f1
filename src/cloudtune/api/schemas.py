"""Request and response bodies of the HTTP API, and the public JSON of a job."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from cloudtune.domain.costs import micros_to_usd
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job
from cloudtune.services.jobs import JobEvent
from cloudtune.services.submission import Preview


class SubmitJobBody(BaseModel):
    # Unknown fields are kept so the service can refuse them by name (400), not drop them.
    model_config = ConfigDict(extra="allow")

    config: dict[str, Any] | None = Field(
        default=None, description="Trainer args; keys with or without `--`."
    )
    dataloader_config: list[Any] | None = Field(
        default=None, description="Datasets in SimpleTuner's multidatabackend format."
    )
    config_name_to_load: str | None = Field(default=None, max_length=128)
    config_name: str | None = Field(default=None, max_length=255)
    tracker_run_name: str | None = Field(default=None, max_length=255)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    hardware_profile: str | None = Field(default=None, max_length=64)
    webhook_url: str | None = Field(default=None, max_length=2048)
    publish: dict[str, Any] | None = None
    priority: int = Field(default=0, ge=-100, le=100)
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="Cancel the job when it has cost this much (USD, at most 1,000,000).",
    )
    upload_consent: StrictBool = Field(
        default=False,
        description="Agree to upload the local datasets; needed when the data consent setting "
        "is `ask` and the provider uploads them.",
    )

    @field_validator(
        "config_name_to_load",
        "config_name",
        "tracker_run_name",
        "idempotency_key",
        "hardware_profile",
        "webhook_url",
    )
    @classmethod
    def _valid_unicode(cls, value: str | None) -> str | None:
        # A lone surrogate escape parses as JSON but can be neither stored nor answered.
        if value is not None:
            value.encode("utf-8")
        return value


class SubmitJobResponse(BaseModel):
    success: bool = True
    job_id: str
    provider: str = Field(description="The provider the job went to.")
    status: str
    idempotent_hit: bool
    data_uploaded: bool
    cost_limit_warning: str | None
    estimated_cost_usd: float | None
    error: str | None = None
    quota_warnings: list[str] = Field(
        default=[], description="Always empty: this server has no quotas besides cost limits."
    )
    upload_id: str | None = Field(
        default=None, description="Always null: an upload is part of the submit here."
    )


class ProgressOut(BaseModel):
    step: int | None
    total_steps: int | None
    percent: float | None
    loss: float | None
    lr: float | None
    epoch: float | None
    eta_seconds: float | None
    updated_at: datetime | None


class JobOut(BaseModel):
    job_id: str
    job_type: str
    provider: str
    status: str
    config_name: str | None
    tracker_run_name: str | None
    user_id: str | None
    created_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    is_active: bool
    is_terminal: bool
    hardware_type: str | None
    hardware_profile: str | None
    price_per_hour_usd: float | None
    estimated_cost_usd: float | None
    cost_usd: float | None
    max_cost_usd: float | None
    progress: ProgressOut
    error_message: str | None
    output_url: str | None
    outputs: list[Any]
    delivery_error: str | None = Field(
        default=None,
        description="Why a remote job's outputs did not all come home (the job still completed;"
        " POST .../outputs/retry tries again).",
    )
    publish: dict[str, Any] | None = Field(
        default=None,
        description="Where the job publishes (hub, s3), each with its status, target and error.",
    )
    publish_error: str | None = Field(
        default=None,
        description="The failed publish targets' errors (POST .../publish/retry tries again).",
    )
    queue_position: int | None
    metadata: dict[str, Any]
    config_snapshot: dict[str, Any] | None = Field(
        default=None, description="Only on GET /api/cloud/jobs/{id}."
    )


class JobListResponse(BaseModel):
    jobs: list[JobOut]
    total: int
    limit: int
    offset: int


class JobResponse(BaseModel):
    job: JobOut


class CancelResponse(BaseModel):
    success: bool = True
    job_id: str
    status: str


class DeleteResponse(BaseModel):
    success: bool = True
    job_id: str


class LogsResponse(BaseModel):
    job_id: str
    logs: str


class JobEventOut(BaseModel):
    id: int
    at: datetime
    kind: str
    from_status: str | None
    to_status: str | None
    message: str | None
    data: dict[str, Any] | None


def event_to_dict(event: JobEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "message": event.message,
        "data": event.data,
    }


class EventsResponse(BaseModel):
    job_id: str
    events: list[JobEventOut]


class SyncBody(BaseModel):
    provider: str | None = None


class SyncResponse(BaseModel):
    success: bool = True
    updated: int
    discovered: int
    synced: list[int] = Field(description="[updated, discovered], as the reference server's.")
    message: str


class ConfigBody(BaseModel):
    # Unknown fields are kept so the service can refuse them by name (400), not drop them.
    model_config = ConfigDict(extra="allow")

    config: dict[str, Any]
    dataloader_config: list[Any] = []
    description: str | None = Field(
        default=None, max_length=1000, description='Left out: kept as it was; "": cleared.'
    )


class PutConfigBody(ConfigBody):
    name: str | None = Field(default=None, description="If given, the name in the path.")


class NamedConfigBody(ConfigBody):
    name: str


class ConfigMetadata(BaseModel):
    name: str
    description: str | None
    model_family: str | None
    model_type: str | None
    model_flavour: str | None
    lora_type: str | None
    created_at: datetime | None = Field(description="Null for a folder dropped in by hand.")
    modified_at: datetime | None


class ConfigValidation(BaseModel):
    warnings: list[str] = Field(default=[], description="Always empty: a bad config is refused.")
    suggestions: list[str] = []


class ConfigOut(BaseModel):
    success: bool = True
    name: str
    config: dict[str, Any]
    dataloader_config: list[Any]
    metadata: ConfigMetadata
    config_type: str = Field(default="model", description="Always model.")
    message: str | None = Field(default=None, description="On a create or an update.")
    validation: ConfigValidation | None = Field(
        default=None, description="On a create or an update."
    )


class ConfigDeleteResponse(BaseModel):
    success: bool = True
    name: str
    message: str


class ConfigListItem(ConfigMetadata):
    has_dataloader: bool


class ConfigListResponse(BaseModel):
    configs: list[ConfigListItem]
    total: int
    count: int = Field(description="The same as total, under the reference server's name.")
    active: str | None = Field(
        default=None, description="Always null: no config is the active one here."
    )
    config_type: str = Field(default="model", description="Always model.")


class ValidationProblem(BaseModel):
    loc: list[str | int] = Field(description="Where, e.g. ['body', 'config'].")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """The body of every error answer (see cloudtune.api.errors)."""

    success: Literal[False]
    code: str = Field(description="Stable snake_case code, e.g. `job_not_found`.")
    detail: str | list[ValidationProblem] = Field(
        description="A human message; for 422 `validation_error`, the list of problems."
    )
    error: str = Field(
        description="The message as one string, also for 422 (where scripts written for "
        "the reference server read it, e.g. `jq .error`)."
    )


def raw_json_body(description: str) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON object body itself (to check a
    signature or a token before parsing it)."""
    content = {"application/json": {"schema": {"type": "object"}}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


class TrainerEventResponse(BaseModel):
    success: bool = True
    job_id: str
    applied: bool = Field(description="Whether the event changed the job's progress.")


class HardwareOut(BaseModel):
    name: str
    provider: str
    hardware_type: str
    gpu_type: str | None
    gpu_count: int
    vram_gb: int | None
    price_per_hour_usd: float
    default_steps_per_second: float


class HardwareList(BaseModel):
    hardware: list[HardwareOut]


def hardware_out(profile: HardwareProfile) -> HardwareOut:
    return HardwareOut(
        name=profile.name,
        provider=profile.provider,
        hardware_type=profile.label,
        gpu_type=profile.gpu_type,
        gpu_count=profile.gpu_count,
        vram_gb=profile.vram_gb,
        price_per_hour_usd=micros_to_usd(profile.price_per_hour_micros),
        default_steps_per_second=profile.default_steps_per_second,
    )


class HealthResponse(BaseModel):
    status: str
    version: str
    database: str
    providers: list[str]
    mode: str = Field(
        default="unified",
        description="Always unified: one server runs the API and the local trainers, as the "
        "reference server's unified mode.",
    )


class PreviewDataset(BaseModel):
    id: str
    path: str
    archive_folder: str
    files: int
    images: int
    bytes: int


class PreviewExcluded(BaseModel):
    count: int
    examples: list[str]


class PreviewFile(BaseModel):
    path: str
    bytes: int


class PreviewResponse(BaseModel):
    success: bool = True
    provider: str
    config_name: str | None
    model_family: str | None
    max_train_steps: int | None
    data_leaves_machine: bool = Field(
        description="Whether local datasets would be uploaded to the provider."
    )
    consent: Literal["ask", "allow", "deny"] = Field(
        description="The data consent setting: with `deny` a submit that uploads is refused "
        "(403 `upload_refused`), with `ask` it needs `upload_consent: true`."
    )
    datasets: list[PreviewDataset]
    files: int
    bytes: int
    excluded_files: list[str]
    excluded: dict[str, PreviewExcluded] = Field(description="Per exclusion rule.")
    first_files: list[PreviewFile]
    upload_limit_bytes: int | None
    hardware_profile: str | None
    hardware_type: str | None
    price_per_hour_usd: float
    estimated_cost_usd: float | None
    warnings: list[str]
    blocked: bool = Field(
        description="A submit would be refused: over the upload limit, or uploads denied."
    )


def preview_to_dict(preview: Preview) -> dict[str, Any]:
    """The preview answer, in the key order of PreviewResponse."""
    data = dataclasses.asdict(preview)
    price = data.pop("price_per_hour_micros")
    estimate = data.pop("estimated_cost_micros")
    out: dict[str, Any] = {"success": True}
    for name in PreviewResponse.model_fields:
        if name == "price_per_hour_usd":
            out[name] = micros_to_usd(price)
        elif name == "estimated_cost_usd":
            out[name] = micros_to_usd(estimate)
        elif name != "success":
            out[name] = data[name]
    return out


def _usd(micros: int | None) -> float | None:
    return None if micros is None else micros / 1_000_000


def iso_or_none(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_to_dict(
    job: Job, *, with_snapshot: bool = False, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The public JSON of a job: no provider handle, no token, no secret. `extra`: fields read
    beside the job (its publish state)."""
    data: dict[str, Any] = {
        "job_id": job.job_id,
        "job_type": job.job_type.value,
        "provider": job.provider,
        "status": job.status.value,
        "config_name": job.config_name,
        "tracker_run_name": job.tracker_run_name,
        "user_id": job.user_id,
        "created_at": iso_or_none(job.created_at),
        "queued_at": iso_or_none(job.queued_at),
        "started_at": iso_or_none(job.started_at),
        "completed_at": iso_or_none(job.completed_at),
        "duration_seconds": job.duration_seconds(),
        "is_active": job.is_active,
        "is_terminal": job.is_terminal,
        "hardware_type": job.hardware_type,
        "hardware_profile": job.hardware_profile,
        "price_per_hour_usd": _usd(job.price_per_hour_micros),
        "estimated_cost_usd": _usd(job.estimated_cost_micros),
        "cost_usd": _usd(job.billed_cost_micros()),
        "max_cost_usd": _usd(job.max_cost_micros),
        "progress": job.progress.to_dict(),
        "error_message": job.error_message,
        "output_url": job.output_url,
        "outputs": job.outputs,
        # Mirrored into the metadata by services/outputs with the delivery row, in one write.
        "delivery_error": job.metadata.get("delivery_error"),
        "queue_position": job.queue_position
        if job.status.value in ("pending", "queued")
        else None,
        "metadata": job.metadata
        if "delivery_error" not in job.metadata
        else {k: v for k, v in job.metadata.items() if k != "delivery_error"},
    }
    if with_snapshot:
        data["config_snapshot"] = job.config_snapshot
        if job.config_snapshot is not None and "config" in job.config_snapshot:
            # The reference server's name for the (masked) config the job runs with.
            data["metadata"] = {
                **data["metadata"],
                "runtime_config": job.config_snapshot["config"],
            }
    if extra:
        data.update(extra)
    return data
