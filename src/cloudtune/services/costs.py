"""What jobs cost: estimates before submit, spending limits, per-job caps, and metrics."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from cloudtune.domain.costs import (
    Period,
    estimate_cost_micros,
    format_usd,
    micros_to_usd,
    period_end,
    period_start,
    usd_to_micros,
)
from cloudtune.domain.documents import JsonObject
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.principal import Principal
from cloudtune.errors import CostLimitExceededError, InvalidInputError
from cloudtune.services.context import Context
from cloudtune.store import costs as cost_store

# A warning from 8 tenths of the limit on (integers: money is never a float here).
WARN_TENTHS = 8
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


@dataclass(frozen=True, slots=True)
class CostLimit:
    """The spending limit and where this period stands against it."""

    enabled: bool
    limit_micros: int
    period: Period
    action: str  # warn or block
    spent_micros: int
    remaining_micros: int
    period_start: datetime
    period_end: datetime
    exceeded: bool


@dataclass(frozen=True, slots=True)
class _SavedLimit:
    enabled: bool
    limit_micros: int
    period: Period
    action: str


# Fields of the cost-limit answer a client may send back unchanged; they are ignored.
_READ_ONLY_FIELDS = frozenset(
    {"spent_usd", "remaining_usd", "period_start", "exceeded", "success", "period_end"}
)
_SETTABLE_FIELDS = ("enabled", "limit_usd", "period", "action")


def get_cost_limit(ctx: Context, caller: Principal) -> CostLimit:
    if not caller.has("job.submit"):
        caller.require("cost.manage")
    return _limit_status(ctx)


def update_cost_limit(ctx: Context, caller: Principal, changes: JsonObject) -> CostLimit:
    caller.require("cost.manage")
    unknown = set(changes) - set(_SETTABLE_FIELDS) - _READ_ONLY_FIELDS
    if unknown:
        raise InvalidInputError(
            f"unknown cost limit fields: {', '.join(sorted(unknown))}", code="invalid_setting"
        )
    current = _load_limit(ctx)
    try:
        period = Period(str(changes.get("period", current.period.value)))
    except ValueError:
        raise InvalidInputError(
            "period must be daily, weekly or monthly", code="invalid_setting"
        ) from None
    action = changes.get("action", current.action)
    if action not in ("warn", "block"):
        raise InvalidInputError("action must be warn or block", code="invalid_setting")
    enabled = changes.get("enabled", current.enabled)
    if not isinstance(enabled, bool):
        raise InvalidInputError("enabled must be true or false", code="invalid_setting")
    if "limit_usd" in changes:
        raw_limit = changes["limit_usd"]
        limit = money_micros(0 if raw_limit is None else raw_limit, "limit_usd")
    else:
        limit = current.limit_micros
    with ctx.db.write() as session:
        cost_store.save_limit(
            session,
            enabled=enabled,
            limit_micros=limit,
            period=period.value,
            action=action,
            at=ctx.clock(),
        )
    return _limit_status(ctx)


@dataclass(frozen=True, slots=True)
class CostLimitStatus:
    """Where this period's spend stands against the limit, as one verdict: exceeded from the
    limit on, a warning from 8 tenths of it, and a message saying which."""

    enabled: bool
    limit_micros: int | None  # None: no limit saved
    period: Period
    action: str
    spent_micros: int
    percent_used: float  # of the limit, 1 decimal
    is_exceeded: bool
    is_warning: bool
    message: str | None


def cost_limit_status(
    ctx: Context, caller: Principal, provider: str | None = None
) -> CostLimitStatus:
    """The same limit and spend as `get_cost_limit`, judged. A disabled limit is never exceeded
    nor warned about, but its spend is still the period's real spend. The limit is one for all
    providers: `provider` must name one (400 otherwise) and changes nothing."""
    if provider is not None:
        ctx.providers.get(provider)
    limit = get_cost_limit(ctx, caller)
    amount, spent = limit.limit_micros, limit.spent_micros
    if amount > 0:
        percent = (Decimal(spent) * 100 / amount).quantize(Decimal("0.1"), ROUND_HALF_UP)
    else:
        percent = Decimal(100 if limit.enabled else 0)  # a $0 limit is used up from the start
    exceeded = limit.enabled and limit.exceeded
    warning = limit.enabled and not exceeded and spent * 10 >= amount * WARN_TENTHS
    shown = f"{format_usd(spent)} / {format_usd(amount)} ({limit.period.value})"
    if not limit.enabled:
        message: str | None = "Cost limits not configured"
    elif exceeded:
        message = f"Spending limit exceeded: {shown}"
    elif warning:
        message = f"Approaching limit: {shown}"
    else:
        message = None
    return CostLimitStatus(
        enabled=limit.enabled,
        limit_micros=amount if limit.enabled or amount > 0 else None,
        period=limit.period,
        action=limit.action,
        spent_micros=spent,
        percent_used=float(percent),
        is_exceeded=exceeded,
        is_warning=warning,
        message=message,
    )


def check_submit(ctx: Context, estimate: int | None) -> str | None:
    """Refuse (block) or warn about a submit that would cross the spending limit."""
    status = _limit_status(ctx)
    if not status.enabled:
        return None
    limit, spent = status.limit_micros, status.spent_micros
    after = spent + (estimate or 0)
    what = (
        f"{format_usd(spent)} spent + {format_usd(estimate or 0)} estimated for "
        f"this job, of the {format_usd(limit)} {status.period.value} limit "
        f"(period started {status.period_start.isoformat()})"
    )
    if after > limit:
        if status.action == "block":
            raise CostLimitExceededError(
                f"Cost limit exceeded: {what}",
                spent_usd=micros_to_usd(spent),
                limit_usd=micros_to_usd(limit),
                period=status.period.value,
            )
        return f"Spending limit exceeded: {what}"
    if after * 10 >= limit * WARN_TENTHS:
        return f"Approaching the spending limit: {what}"
    return None


def _load_limit(ctx: Context) -> _SavedLimit:
    with ctx.db.read() as session:
        row = cost_store.get_limit(session)
    if row is None:
        return _SavedLimit(enabled=False, limit_micros=0, period=Period.MONTHLY, action="warn")
    return _SavedLimit(row.enabled, row.limit_micros, Period(row.period), row.action)


def _limit_status(ctx: Context) -> CostLimit:
    saved = _load_limit(ctx)
    now = ctx.clock()
    start = period_start(saved.period, now)
    spent = spent_since(ctx, start, now)
    return CostLimit(
        enabled=saved.enabled,
        limit_micros=saved.limit_micros,
        period=saved.period,
        action=saved.action,
        spent_micros=spent,
        remaining_micros=max(0, saved.limit_micros - spent),
        period_start=start,
        period_end=period_end(saved.period, now),
        exceeded=saved.enabled and spent >= saved.limit_micros,
    )


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


@dataclass(frozen=True, slots=True)
class DayCosts:
    date: date
    jobs: int
    completed: int
    failed: int
    cancelled: int
    cost_micros: int
    local_jobs: int
    cloud_jobs: int


@dataclass(frozen=True, slots=True)
class Metrics:
    period_days: int
    jobs_by_status: dict[str, int]
    jobs_by_provider: dict[str, int]
    job_count: int
    success_rate: float | None
    total_cost_micros: int
    cost_by_day: list[DayCosts]
    avg_duration_seconds: float | None
    avg_queue_wait_seconds: float | None
    spend_this_period_micros: int
    cost_limit_period: Period


@dataclass(slots=True)
class _Day:
    jobs: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    cost_micros: int = 0
    local_jobs: int = 0
    cloud_jobs: int = 0


def metrics(ctx: Context, caller: Principal, days: int) -> Metrics:
    if not 1 <= days <= 365:
        raise InvalidInputError("days must be between 1 and 365", code="invalid_filter")
    caller.require("job.view.all")
    now = ctx.clock()
    since = period_start(Period.DAILY, now) - timedelta(days=days - 1)
    with ctx.db.read() as session:
        by_status, by_provider = cost_store.counts(session)
        jobs = cost_store.jobs_created_since(session, since)
    by_day: dict[date, _Day] = defaultdict(_Day)
    durations, waits = [], []
    for job in jobs:
        day = by_day[job.created_at.date()]
        day.jobs += 1
        if job.job_type == JobType.LOCAL:
            day.local_jobs += 1
        else:
            day.cloud_jobs += 1
        if job.status == JobStatus.COMPLETED:
            day.completed += 1
        elif job.status == JobStatus.FAILED:
            day.failed += 1
        elif job.status == JobStatus.CANCELLED:
            day.cancelled += 1
        day.cost_micros += job.billed_cost_micros(now) or 0
        if job.status == JobStatus.COMPLETED and job.duration_seconds():
            durations.append(job.duration_seconds(now) or 0.0)
        if job.started_at and job.queued_at:
            waits.append((job.started_at - job.queued_at).total_seconds())
    finished = Counter(job.status for job in jobs if job.is_terminal)
    done = sum(finished.values())
    limit = _limit_status(ctx)
    return Metrics(
        period_days=days,
        jobs_by_status=by_status,
        jobs_by_provider=by_provider,
        job_count=len(jobs),
        success_rate=round(finished[JobStatus.COMPLETED] / done, 4) if done else None,
        total_cost_micros=sum(d.cost_micros for d in by_day.values()),
        cost_by_day=[
            DayCosts(
                day,
                d.jobs,
                d.completed,
                d.failed,
                d.cancelled,
                d.cost_micros,
                d.local_jobs,
                d.cloud_jobs,
            )
            for day, d in sorted(by_day.items())
        ],
        avg_duration_seconds=round(sum(durations) / len(durations), 3) if durations else None,
        avg_queue_wait_seconds=round(sum(waits) / len(waits), 3) if waits else None,
        spend_this_period_micros=limit.spent_micros,
        cost_limit_period=limit.period,
    )
