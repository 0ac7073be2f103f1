"""What jobs cost: estimates before submit, spending limits, per-job caps, and metrics."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloudtune.domain.costs import (
    Period,
    estimate_cost_micros,
    format_usd,
    micros_to_usd,
    period_end,
    period_start,
    usd_to_micros,
)
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.domain.principal import Principal
from cloudtune.errors import CostLimitExceededError, InvalidInputError
from cloudtune.services.context import Context
from cloudtune.store import costs as cost_store

WARN_SHARE = 0.8
# Every amount a user sets is a finite number of USD within this, far under what a 64-bit
# micro-dollar column holds.
MAX_MONEY_USD = Decimal(1_000_000)
LEARN_FROM = 20  # finished jobs whose speed an estimate averages


def estimate_micros(
    ctx: Context, profile: HardwareProfile, model_family: str | None, steps: int | None
) -> tuple[int | None, float]:
    """(estimated cost, steps per second used): the speed is learned from finished jobs of the
    same model family and profile, else the profile's stated default."""
    speed = profile.default_steps_per_second
    with ctx.db.read() as session:
        finished = cost_store.recent_completed(session, profile.name, limit=100)
    rates = [
        job.progress.total_steps / seconds
        for job in finished
        if job.metadata.get("model_family") == model_family
        and job.progress.total_steps
        and (seconds := job.duration_seconds() or 0) > 0
    ][:LEARN_FROM]
    if rates:
        speed = sum(rates) / len(rates)
    if not steps or steps < 0 or speed <= 0:
        return None, speed
    return estimate_cost_micros(profile.price_per_hour_micros, steps, speed), speed


# -- spending limits ------------------------------------------------------------------------


def money_micros(value: object, field: str) -> int:
    """A user-set amount of USD as micro-dollars; 400 unless a finite number from 0 to
    MAX_MONEY_USD (checked before any arithmetic, so 1e300 or 1e999999 costs nothing)."""
    refusal = InvalidInputError(
        f"{field} must be a number from 0 to {MAX_MONEY_USD:,}", code="invalid_setting"
    )
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise refusal
    try:
        amount = Decimal(str(value).strip())
    except ArithmeticError:
        raise refusal from None
    if not amount.is_finite() or not 0 <= amount <= MAX_MONEY_USD:
        raise refusal
    return usd_to_micros(amount)


def get_cost_limit(ctx: Context, caller: Principal) -> dict[str, Any]:
    if not caller.has("job.submit"):
        caller.require("cost.manage")
    return _limit_status(ctx, estimate=0)


def update_cost_limit(ctx: Context, caller: Principal, changes: dict[str, Any]) -> dict[str, Any]:
    caller.require("cost.manage")
    current = _load_limit(ctx)
    merged = {**current, **{k: v for k, v in changes.items() if k in current}}
    unknown = (
        set(changes)
        - set(current)
        - {"spent_usd", "remaining_usd", "period_start", "exceeded", "success", "period_end"}
    )
    if unknown:
        raise InvalidInputError(
            f"unknown cost limit fields: {', '.join(sorted(unknown))}", code="invalid_setting"
        )
    try:
        period = Period(str(merged["period"]))
    except ValueError:
        raise InvalidInputError(
            "period must be daily, weekly or monthly", code="invalid_setting"
        ) from None
    if merged["action"] not in ("warn", "block"):
        raise InvalidInputError("action must be warn or block", code="invalid_setting")
    if not isinstance(merged["enabled"], bool):
        raise InvalidInputError("enabled must be true or false", code="invalid_setting")
    raw_limit = merged["limit_usd"]
    limit = money_micros(0 if raw_limit is None else raw_limit, "limit_usd")
    with ctx.db.write() as session:
        cost_store.save_limit(
            session,
            enabled=merged["enabled"],
            limit_micros=limit,
            period=period.value,
            action=merged["action"],
            at=ctx.clock(),
        )
    return {"success": True, **_limit_status(ctx, estimate=0)}


def check_submit(ctx: Context, estimate: int | None) -> str | None:
    """Refuse (block) or warn about a submit that would cross the spending limit."""
    status = _limit_status(ctx, estimate=estimate or 0)
    if not status["enabled"]:
        return None
    limit = usd_to_micros(status["limit_usd"])
    spent = usd_to_micros(status["spent_usd"])
    after = spent + (estimate or 0)
    what = (
        f"{format_usd(spent)} spent + {format_usd(estimate or 0)} estimated for "
        f"this job, of the {format_usd(limit)} {status['period']} limit "
        f"(period started {status['period_start']})"
    )
    if after > limit:
        if status["action"] == "block":
            raise CostLimitExceededError(
                f"Cost limit exceeded: {what}",
                spent_usd=status["spent_usd"],
                limit_usd=status["limit_usd"],
                period=status["period"],
            )
        return f"Spending limit exceeded: {what}"
    if after >= limit * WARN_SHARE:
        return f"Approaching the spending limit: {what}"
    return None


def _load_limit(ctx: Context) -> dict[str, Any]:
    with ctx.db.read() as session:
        row = cost_store.get_limit(session)
    if row is None:
        return {"enabled": False, "limit_usd": 0.0, "period": "monthly", "action": "warn"}
    return {
        "enabled": row.enabled,
        "limit_usd": micros_to_usd(row.limit_micros),
        "period": row.period,
        "action": row.action,
    }


def _limit_status(ctx: Context, *, estimate: int) -> dict[str, Any]:
    limit = _load_limit(ctx)
    now = ctx.clock()
    period = Period(limit["period"])
    start = period_start(period, now)
    spent = spent_since(ctx, start, now)
    limit_micros = usd_to_micros(limit["limit_usd"])
    return {
        **limit,
        "spent_usd": micros_to_usd(spent),
        "remaining_usd": micros_to_usd(max(0, limit_micros - spent)),
        "period_start": start.isoformat(),
        "period_end": period_end(period, now).isoformat(),
        "exceeded": limit["enabled"] and spent >= limit_micros,
    }


def spent_since(ctx: Context, start: datetime, now: datetime) -> int:
    """Finished jobs' cost plus running jobs' cost so far, for jobs created since `start`."""
    with ctx.db.read() as session:
        jobs = cost_store.jobs_created_since(session, start)
    return sum(job.billed_cost_micros(now) or 0 for job in jobs)


# -- per-job caps ---------------------------------------------------------------------------


def jobs_over_their_cap(ctx: Context, jobs: list[Job]) -> list[tuple[Job, int]]:
    now = ctx.clock()
    over = []
    for job in jobs:
        cap = job.max_cost_micros
        cost = job.billed_cost_micros(now)
        if cap is not None and cost is not None and job.is_active and cost >= cap:
            over.append((job, cost))
    return over


# -- metrics --------------------------------------------------------------------------------


def metrics(ctx: Context, caller: Principal, days: int) -> dict[str, Any]:
    if not 1 <= days <= 365:
        raise InvalidInputError("days must be between 1 and 365", code="invalid_filter")
    caller.require("job.view.all")
    now = ctx.clock()
    since = period_start(Period.DAILY, now) - timedelta(days=days - 1)
    with ctx.db.read() as session:
        by_status, by_provider = cost_store.counts(session)
        jobs = cost_store.jobs_created_since(session, since)
    days_out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"jobs": 0, "completed": 0, "failed": 0, "cancelled": 0, "cost_micros": 0}
    )
    durations, waits = [], []
    for job in jobs:
        day = days_out[job.created_at.date().isoformat()]
        day["jobs"] += 1
        if job.status.value in ("completed", "failed", "cancelled"):
            day[job.status.value] += 1
        day["cost_micros"] += job.billed_cost_micros(now) or 0
        if job.status == JobStatus.COMPLETED and job.duration_seconds():
            durations.append(job.duration_seconds(now) or 0.0)
        if job.started_at and job.queued_at:
            waits.append((job.started_at - job.queued_at).total_seconds())
    finished = Counter(job.status for job in jobs if job.is_terminal)
    done = sum(finished.values())
    limit = _limit_status(ctx, estimate=0)
    return {
        "period_days": days,
        "jobs_by_status": by_status,
        "jobs_by_provider": by_provider,
        "job_count": len(jobs),
        "success_rate": round(finished[JobStatus.COMPLETED] / done, 4) if done else None,
        "total_cost_usd": micros_to_usd(sum(d["cost_micros"] for d in days_out.values())),
        "cost_by_day": [
            {
                "date": date,
                **{k: v for k, v in d.items() if k != "cost_micros"},
                "cost_usd": micros_to_usd(d["cost_micros"]),
            }
            for date, d in sorted(days_out.items())
        ],
        "avg_duration_seconds": round(sum(durations) / len(durations), 3) if durations else None,
        "avg_queue_wait_seconds": round(sum(waits) / len(waits), 3) if waits else None,
        "spend_this_period_usd": limit["spent_usd"],
        "cost_limit_period": limit["period"],
    }
