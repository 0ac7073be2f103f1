"""Money and spending periods. Money is integer micro-dollars; no float arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import overload

MICROS_PER_USD = 1_000_000
MICROS_PER_SECOND = 1_000_000
SECONDS_PER_HOUR = 3600


def usd_to_micros(value: Decimal | float | int | str) -> int:
    return int((Decimal(str(value)) * MICROS_PER_USD).to_integral_value(ROUND_HALF_UP))


@overload
def micros_to_usd(micros: int) -> float: ...
@overload
def micros_to_usd(micros: None) -> None: ...
@overload
def micros_to_usd(micros: int | None) -> float | None: ...
def micros_to_usd(micros: int | None) -> float | None:
    """For JSON only: rounded to the micro-dollar."""
    return None if micros is None else float(Decimal(micros) / MICROS_PER_USD)


def format_usd(micros: int) -> str:
    """Money for a message: cents from $0.01 up ("$12.50"), below that two significant digits
    ("$0.002", "$0.0015") so a small cap never reads as "$0.00"."""
    usd = Decimal(micros) / MICROS_PER_USD
    sign = "-" if usd < 0 else ""
    usd = abs(usd)
    if usd == 0 or usd >= Decimal("0.01"):
        return f"{sign}${usd.quantize(Decimal('0.01'), ROUND_HALF_UP):,}"
    # -adjusted() is the position of the first significant digit after the point.
    places = min(6, -usd.adjusted() + 1)
    text = f"{usd.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP):f}".rstrip("0")
    return f"{sign}${text}"


def cost_micros(price_per_hour_micros: int, duration: timedelta | Decimal | int | float) -> int:
    """The one price × time of the code base: what `duration` costs at an hourly price, in
    integer micro-dollars, rounded half up to the micro-dollar (half a micro-dollar and more
    rounds up). A timedelta counts its exact microseconds; a number of seconds is read as its
    decimal text (a float 0.1 is 0.1 s, not 0.1000000000000000055…). A negative duration (a
    clock stepped back) costs nothing."""
    exact = Decimal(price_per_hour_micros) * _seconds(duration) / SECONDS_PER_HOUR
    return max(0, int(exact.to_integral_value(ROUND_HALF_UP)))


def estimate_cost_micros(
    price_per_hour_micros: int, steps: int, steps_per_second: Decimal | float
) -> int:
    """What `steps` training steps cost at `steps_per_second`, by `cost_micros`."""
    speed = Decimal(str(steps_per_second))
    if steps <= 0 or speed <= 0:
        raise ValueError("an estimate needs a positive number of steps and a positive speed")
    return cost_micros(price_per_hour_micros, Decimal(steps) / speed)


def _seconds(duration: timedelta | Decimal | int | float) -> Decimal:
    if isinstance(duration, timedelta):
        return Decimal(duration // timedelta(microseconds=1)) / MICROS_PER_SECOND
    if isinstance(duration, Decimal):
        return duration
    return Decimal(str(duration))


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


def period_start(period: Period, now: datetime) -> datetime:
    """Calendar-aligned in UTC: today 00:00, Monday 00:00, or the 1st 00:00."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == Period.DAILY:
        return midnight
    if period == Period.WEEKLY:
        return midnight - timedelta(days=midnight.weekday())
    return midnight.replace(day=1)


def period_end(period: Period, now: datetime) -> datetime:
    start = period_start(period, now)
    if period == Period.DAILY:
        return start + timedelta(days=1)
    if period == Period.WEEKLY:
        return start + timedelta(days=7)
    return (start + timedelta(days=32)).replace(day=1)
