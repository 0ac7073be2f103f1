"""What a Replicate prediction says, in our terms: its status, and the job id we tagged it with."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.publishing import PublishSettings
from cloudtune.errors import InvalidInputError
from cloudtune.providers.base import JobBundle, ProviderStatus

STATUS_MAP = {
    "starting": JobStatus.QUEUED,
    "processing": JobStatus.RUNNING,
    "succeeded": JobStatus.COMPLETED,
    "canceled": JobStatus.CANCELLED,
    "failed": JobStatus.FAILED,
    "aborted": JobStatus.FAILED,
}
# The key of our job id in the trainer callback config a prediction carries.
JOB_TAG = "cloudtune_job_id"


def parse_prediction(payload: dict[str, Any]) -> tuple[str, ProviderStatus]:
    """A prediction (a webhook body, a GET or a list item) as our job's status."""
    prediction_id = payload.get("id")
    if not isinstance(prediction_id, str) or not prediction_id:
        raise InvalidInputError("the prediction has no id", code="invalid_payload")
    raw = str(payload.get("status") or "").strip().lower()
    status = STATUS_MAP.get(raw)
    if status is None:
        raise InvalidInputError(f"unknown prediction status {raw!r}", code="invalid_payload")
    metrics = payload.get("metrics")
    predict_time = metrics.get("predict_time") if isinstance(metrics, dict) else None
    output = payload.get("output")
    outputs = output if isinstance(output, list) else [output] if output else None
    error = payload.get("error")
    if raw == "aborted" and not error:
        error = "Replicate aborted the prediction before it started"
    return prediction_id, ProviderStatus(
        status=status,
        started_at=_time(payload.get("started_at")),
        completed_at=_time(payload.get("completed_at")),
        error_message=str(error) if error else None,
        metadata={"prediction_id": prediction_id, "replicate_status": raw},
        outputs=outputs,
        logs=payload.get("logs") if isinstance(payload.get("logs"), str) else None,
        billed_seconds=float(predict_time) if isinstance(predict_time, int | float) else None,
    )


def tagged_job_id(prediction: dict[str, Any]) -> str | None:
    """The job id our `_input` put in a prediction's trainer callback config, if it is there
    (Replicate drops an API prediction's input after an hour)."""
    inputs = prediction.get("input")
    raw = inputs.get("webhook_config") if isinstance(inputs, dict) else None
    try:
        callbacks = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    for callback in callbacks if isinstance(callbacks, list) else []:
        if isinstance(callback, dict) and isinstance(callback.get(JOB_TAG), str):
            return str(callback[JOB_TAG])
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Replicate sends up to nanoseconds; Python takes microseconds
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def prediction_input(job_id: str, bundle: JobBundle) -> dict[str, Any]:
    """The trainer's input: config, dataloader, where to report, and our job id as its tag."""
    callback = {
        "webhook_type": "raw",
        "callback_url": bundle.webhook_url,
        "auth_token": bundle.webhook_token,
        "log_level": "info",
        JOB_TAG: job_id,  # how a lost create is found again (`tagged_job_id`)
    }
    data: dict[str, Any] = {
        "config_json": json.dumps(bundle.spec.config),
        "dataloader_json": json.dumps(bundle.remote_dataloader or bundle.spec.dataloader),
        "webhook_config": json.dumps([callback]),
    }
    if bundle.dataset_url:
        data["images"] = bundle.dataset_url
    data.update(publish_input(job_id, bundle.publish))
    return data


def publish_input(job_id: str, publish: PublishSettings | None) -> dict[str, Any]:
    """The trainer model's publishing inputs: `hub_model_id` with `hf_token` (it pushes the
    model to that repository), the `s3_*` inputs (it uploads its outputs to the bucket, under
    `<prefix>/<job id>/` as the server does for a local job). The token and keys are secret
    inputs of the model: they travel only in this request, never to a log or the job."""
    data: dict[str, Any] = {}
    hub = publish.hub if publish else None
    if hub is not None and hub.token:
        data["hub_model_id"] = hub.repo_id
        data["hf_token"] = hub.token
    s3 = publish.s3 if publish else None
    if s3 is not None and s3.has_keys:
        data["s3_bucket"] = s3.bucket
        data["s3_base_path"] = f"{s3.prefix}/{job_id}" if s3.prefix else job_id
        data["s3_access_key"] = s3.access_key_id
        data["s3_secret_key"] = s3.secret_access_key
        if s3.region:
            data["s3_region"] = s3.region
        if s3.endpoint_url:
            data["s3_endpoint_url"] = s3.endpoint_url
    return data
