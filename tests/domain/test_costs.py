from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloudtune.domain.costs import (
    Period,
    cost_micros,
    format_usd,
    period_end,
    period_start,
    usd_to_micros,
)
from tests.factories import make_job


def test_a_90_minute_h100_x2_job_costs_twice_the_h100_price_for_1_5_hours() -> None:
    h100 = usd_to_micros("5.49")
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    job = make_job(
        started_at=start,
        completed_at=start + timedelta(minutes=90),
        price_per_hour_micros=2 * h100,
    )
    assert job.billed_cost_micros() == 2 * h100 * 3 // 2 == usd_to_micros("16.47")
    assert cost_micros(2 * h100, 5400) == usd_to_micros("16.47")


def test_weekly_periods_start_on_monday_midnight_utc() -> None:
    sunday_night = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    monday = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert period_start(Period.WEEKLY, sunday_night) == datetime(2026, 11, 23, tzinfo=UTC)
    assert period_start(Period.WEEKLY, monday) == monday
    assert period_end(Period.WEEKLY, sunday_night) == monday


def test_daily_and_monthly_periods() -> None:
    now = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
    assert period_start(Period.DAILY, now) == datetime(2026, 12, 31, tzinfo=UTC)
    assert period_start(Period.MONTHLY, now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert period_end(Period.MONTHLY, now) == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("micros", "shown"),
    [
        (0, "$0.00"),
        (2_000, "$0.002"),
        (1_500, "$0.0015"),
        (123, "$0.00012"),
        (1, "$0.000001"),
        (9_999, "$0.01"),
        (10_000, "$0.01"),
        (1_500_000, "$1.50"),
        (1_234_567_891, "$1,234.57"),
        (-2_000, "-$0.002"),
    ],
)
def test_money_in_messages_keeps_enough_digits(micros: int, shown: str) -> None:
    assert format_usd(micros) == shown
