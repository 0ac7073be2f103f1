"""Progress reports from trainers (our own format and SimpleTuner's webhook events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.jobs import JobStatus, Progress, utcnow
from cloudtune.errors import AuthenticationError, InvalidInputError, job_not_found
from cloudtune.services.context import Context
from cloudtune.store import jobs as job_store


@dataclass(frozen=True, slots=True)
class TrainerEvent:
    job_id: str
    applied: bool  # whether the event changed the job's progress
    job_waiting: bool = False  # the job still reads pending or queued


def record_trainer_event(
    ctx: Context, job_id: str, token: str | None, body: bytes
) -> TrainerEvent:
    """One event a trainer posted: ours (`{"type": "progress", ...}`) or SimpleTuner's
    webhook payload. Events that carry no progress are accepted and not applied."""
    # The token is checked before the body is read or the job looked up, so a caller without
    # it learns nothing, not even whether its body parses.
    if not ctx.tokens.check_job_token(job_id, token):
        raise AuthenticationError(
            "a valid trainer token for this job is required", code="invalid_token"
        )
    try:
        payload: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise InvalidInputError("the event is not valid JSON", code="invalid_payload") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the event must be a JSON object", code="invalid_payload")
    progress = parse_progress(payload)
    with ctx.db.write() as session:
        job = job_store.get_job(session, job_id)
        if job is None:
            raise job_not_found(job_id)
        applied = False
        if progress is not None:
            progress.updated_at = utcnow()
            applied = job_store.record_progress(session, job_id, progress)
    # The trainer runs while the job still reads queued: its provider is worth asking now
    # rather than at the next pass (the provider, not the trainer, says it runs).
    waiting = job.status in (JobStatus.PENDING, JobStatus.QUEUED)
    return TrainerEvent(job_id=job_id, applied=applied, job_waiting=waiting)


def parse_progress(payload: JsonObject) -> Progress | None:
    kind = payload.get("type")
    if kind == "progress":
        return Progress(
            step=_int(payload.get("step")),
            total_steps=_int(payload.get("total_steps")),
            loss=_float(payload.get("loss")),
            lr=_float(payload.get("lr")),
            epoch=_float(payload.get("epoch")),
            eta_seconds=_float(payload.get("eta_seconds")),
        )
    if kind == "training.status" and isinstance(payload.get("progress"), dict):
        block = payload["progress"]
        metrics = block.get("metrics") if isinstance(block.get("metrics"), dict) else {}
        return Progress(
            step=_int(block.get("current")),
            total_steps=_int(block.get("total")),
            loss=_float(metrics.get("loss")),
            lr=_float(metrics.get("learning_rate")),
            epoch=_float(metrics.get("epoch")),
            eta_seconds=_float(block.get("eta_seconds")),
        )
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
