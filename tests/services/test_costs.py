"""Spending limits and metrics as services, on an injected clock: amounts in micro-dollars,
periods from the clock, a warning from 8 tenths of the limit, a refusal past it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cloudtune.domain.costs import Period
from cloudtune.domain.jobs import JobStatus, JobType
from cloudtune.domain.principal import LOCAL_ADMIN, ROLE_PERMISSIONS, Principal
from cloudtune.errors import CostLimitExceededError, InvalidInputError, PermissionDeniedError
from cloudtune.services import costs
from cloudtune.services.context import Context
from cloudtune.settings import Settings
from cloudtune.store.db import Database
from tests.factories import create_job, make_context

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
RESEARCHER = Principal(user_id="u1", permissions=ROLE_PERMISSIONS["researcher"], name="rita")


@pytest.fixture
def ctx(settings: Settings, db: Database) -> Iterator[Context]:
    yield make_context(settings, db, clock=lambda: NOW)


def spend(db: Database, micros: int, *, at: datetime = NOW) -> None:
    """A finished job created at `at` that cost `micros`."""
    create_job(
        db,
        status=JobStatus.COMPLETED,
        created_at=at,
        started_at=at,
        completed_at=at + timedelta(minutes=1),
        cost_micros=micros,
    )


def test_the_limit_answers_amounts_and_period_from_the_clock(ctx: Context) -> None:
    spend(ctx.db, 3_000_000)
    spend(ctx.db, 9_000_000, at=NOW - timedelta(days=3))  # last week: not this period
    limit = costs.update_cost_limit(
        ctx, LOCAL_ADMIN, {"enabled": True, "limit_usd": "10", "period": "weekly"}
    )
    assert limit.limit_micros == 10_000_000 and limit.period is Period.WEEKLY
    assert limit.spent_micros == 3_000_000 and limit.remaining_micros == 7_000_000
    assert limit.period_start == datetime(2026, 11, 16, tzinfo=UTC)
    assert limit.period_end == datetime(2026, 11, 23, tzinfo=UTC)
    assert not limit.exceeded
    assert costs.get_cost_limit(ctx, RESEARCHER) == limit


def test_a_submit_is_warned_from_eight_tenths_and_blocked_past_the_limit(ctx: Context) -> None:
    costs.update_cost_limit(
        ctx, LOCAL_ADMIN, {"enabled": True, "limit_usd": 10, "period": "daily", "action": "block"}
    )
    spend(ctx.db, 7_000_000)
    assert costs.check_submit(ctx, 999_999) is None  # 7.999999 of 10
    warning = costs.check_submit(ctx, 1_000_000)  # exactly 8 of 10
    assert warning is not None and warning.startswith("Approaching")
    assert costs.check_submit(ctx, 3_000_000) is not None  # exactly at the limit: not past it
    with pytest.raises(CostLimitExceededError) as refused:
        costs.check_submit(ctx, 3_000_001)
    assert refused.value.extra["spent_usd"] == 7.0 and refused.value.extra["limit_usd"] == 10.0


def test_a_warn_limit_never_refuses(ctx: Context) -> None:
    costs.update_cost_limit(ctx, LOCAL_ADMIN, {"enabled": True, "limit_usd": 1})
    spend(ctx.db, 5_000_000)
    warning = costs.check_submit(ctx, 1)
    assert warning is not None and warning.startswith("Spending limit exceeded")
    assert costs.get_cost_limit(ctx, LOCAL_ADMIN).exceeded


def test_changes_are_checked_and_the_answer_fields_ignored(ctx: Context) -> None:
    with pytest.raises(InvalidInputError, match="unknown cost limit fields: colour"):
        costs.update_cost_limit(ctx, LOCAL_ADMIN, {"colour": "red"})
    with pytest.raises(InvalidInputError, match="period"):
        costs.update_cost_limit(ctx, LOCAL_ADMIN, {"period": "hourly"})
    with pytest.raises(InvalidInputError, match="limit_usd"):
        costs.update_cost_limit(ctx, LOCAL_ADMIN, {"limit_usd": 1e300})
    with pytest.raises(PermissionDeniedError):
        costs.update_cost_limit(ctx, RESEARCHER, {"enabled": True})
    # What GET answered may be sent back as it is.
    answer = {"enabled": True, "limit_usd": 2.5, "spent_usd": 1, "exceeded": False}
    assert costs.update_cost_limit(ctx, LOCAL_ADMIN, answer).limit_micros == 2_500_000


def test_metrics_count_and_cost_by_day(ctx: Context) -> None:
    spend(ctx.db, 1_500_000)
    spend(ctx.db, 250_000, at=NOW - timedelta(days=1))
    create_job(ctx.db, status=JobStatus.FAILED, created_at=NOW)
    found = costs.metrics(ctx, LOCAL_ADMIN, 7)
    assert found.job_count == 3 and found.total_cost_micros == 1_750_000
    assert [
        (d.date.isoformat(), d.jobs, d.completed, d.failed, d.cost_micros)
        for d in found.cost_by_day
    ] == [("2026-11-17", 1, 1, 0, 250_000), ("2026-11-18", 2, 1, 1, 1_500_000)]
    assert found.success_rate == pytest.approx(2 / 3, abs=1e-4)
    with pytest.raises(InvalidInputError):
        costs.metrics(ctx, LOCAL_ADMIN, 0)


def test_the_status_judges_the_spend_against_the_limit(ctx: Context) -> None:
    spend(ctx.db, 1_000_000)
    off = costs.cost_limit_status(ctx, RESEARCHER)
    assert not off.enabled and off.limit_micros is None and off.spent_micros == 1_000_000
    assert (off.percent_used, off.is_exceeded, off.is_warning) == (0.0, False, False)
    assert off.message == "Cost limits not configured"

    costs.update_cost_limit(ctx, LOCAL_ADMIN, {"enabled": True, "limit_usd": 3, "period": "daily"})
    third = costs.cost_limit_status(ctx, RESEARCHER)
    assert third.percent_used == 33.3 and third.message is None  # 1/3, one decimal
    spend(ctx.db, 1_400_000)  # 2.40 of 3: exactly 8 tenths
    warned = costs.cost_limit_status(ctx, RESEARCHER)
    assert warned.is_warning and not warned.is_exceeded and warned.percent_used == 80.0
    assert warned.message == "Approaching limit: $2.40 / $3.00 (daily)"
    spend(ctx.db, 600_000)  # exactly the limit: exceeded, as a submit would find it
    at_limit = costs.cost_limit_status(ctx, RESEARCHER)
    assert at_limit.is_exceeded and not at_limit.is_warning and at_limit.percent_used == 100.0
    assert at_limit.message == "Spending limit exceeded: $3.00 / $3.00 (daily)"

    costs.update_cost_limit(ctx, LOCAL_ADMIN, {"enabled": False})
    kept = costs.cost_limit_status(ctx, RESEARCHER)
    assert kept.limit_micros == 3_000_000 and not kept.is_exceeded  # saved, not in force
    costs.update_cost_limit(ctx, LOCAL_ADMIN, {"enabled": True, "limit_usd": 0})
    zero = costs.cost_limit_status(ctx, RESEARCHER)
    assert zero.limit_micros == 0 and zero.is_exceeded and zero.percent_used == 100.0
    with pytest.raises(InvalidInputError):
        costs.cost_limit_status(ctx, RESEARCHER, "nope")
    with pytest.raises(PermissionDeniedError):
        costs.cost_limit_status(ctx, Principal(user_id="u2", permissions=frozenset(), name="v"))


def test_metrics_split_each_day_by_where_jobs_ran(ctx: Context) -> None:
    spend(ctx.db, 500_000)  # local
    create_job(
        ctx.db,
        status=JobStatus.COMPLETED,
        created_at=NOW,
        started_at=NOW,
        completed_at=NOW + timedelta(seconds=90),
        cost_micros=250_000,
        provider="replicate",
        job_type=JobType.CLOUD,
    )
    (day,) = costs.metrics(ctx, LOCAL_ADMIN, 1).cost_by_day
    assert (day.jobs, day.local_jobs, day.cloud_jobs, day.cost_micros) == (2, 1, 1, 750_000)
    assert costs.metrics(ctx, LOCAL_ADMIN, 1).avg_duration_seconds == 75.0  # (60 + 90) / 2
