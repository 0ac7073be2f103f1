from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cloudtune.domain.costs import (
    Period,
    cost_micros,
    estimate_cost_micros,
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


# -- price x time: integer micro-dollars, rounded half up to the micro-dollar ---------------


def test_an_hour_costs_the_hourly_price_to_the_micro_dollar() -> None:
    assert cost_micros(5_490_000, timedelta(hours=1)) == 5_490_000
    assert cost_micros(5_490_000, 3600) == 5_490_000
    assert cost_micros(5_490_000, Decimal(3600)) == 5_490_000


@pytest.mark.parametrize(
    ("price", "duration", "cost"),
    [
        # $3.60 an hour is one micro-dollar a millisecond.
        (3_600_000, timedelta(milliseconds=1), 1),
        # 1 micro-dollar an hour for 1 800 s is exactly half a micro-dollar: rounds up.
        (1, timedelta(seconds=1800), 1),
        # Just under half rounds down, just over rounds up.
        (1, timedelta(seconds=1799, microseconds=999_999), 0),
        (1, timedelta(seconds=1800, microseconds=1), 1),
        # 2.5 micro-dollars rounds up to 3, 3.5 to 4 (half up, not to even).
        (5, timedelta(minutes=30), 3),
        (7, timedelta(minutes=30), 4),
    ],
)
def test_rounding_is_half_up_on_the_exact_product(
    price: int, duration: timedelta, cost: int
) -> None:
    assert cost_micros(price, duration) == cost


def test_a_timedelta_counts_its_exact_microseconds() -> None:
    # 1 µs at $3,600/h is exactly one micro-dollar; through a float of seconds it still is.
    assert cost_micros(3_600_000_000, timedelta(microseconds=1)) == 1
    assert cost_micros(3_600_000_000, timedelta(days=30, microseconds=1)) == (
        3_600_000_000 * 24 * 30 + 1
    )


def test_float_seconds_are_read_as_their_decimal_text() -> None:
    # 0.3 s at 6 000 µ$/h is exactly half a micro-dollar. The binary float 0.3 is a hair under
    # 0.3, which read exactly would round down; read as its text it is 0.3 and rounds up.
    assert Decimal(0.3) < Decimal("0.3")
    assert cost_micros(6_000, Decimal(0.3)) == 0
    assert cost_micros(6_000, 0.3) == 1 == cost_micros(6_000, Decimal("0.3"))


def test_a_negative_duration_costs_nothing() -> None:
    assert cost_micros(5_000_000, timedelta(seconds=-5)) == 0


def test_a_running_job_costs_its_price_for_the_time_so_far() -> None:
    start = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    job = make_job(started_at=start, price_per_hour_micros=7)
    assert job.billed_cost_micros(start + timedelta(minutes=30)) == 4  # 3.5 → 4
    assert job.billed_cost_micros(start - timedelta(minutes=1)) == 0


def test_an_estimate_is_steps_over_speed_at_the_price() -> None:
    # 10 steps at 5 steps/s is 2 s; at $3,600/h that is $2.
    assert estimate_cost_micros(3_600_000_000, 10, 5.0) == 2_000_000
    # 1 step at 3 steps/s: a third of a second at $1/h is 92.59… µ$ → 93.
    assert estimate_cost_micros(1_000_000, 1, 3) == 93
    with pytest.raises(ValueError):
        estimate_cost_micros(1_000_000, 0, 1.0)
    with pytest.raises(ValueError):
        estimate_cost_micros(1_000_000, 10, 0.0)
