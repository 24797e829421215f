"""Calendar arithmetic for trials and billing periods."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction


def add_interval(moment: datetime, count: int | None, unit: str) -> datetime:
    """`moment` plus `count` days/weeks/months/years; month ends are clamped (31 Jan + 1 month = 28/29 Feb)."""
    if not count:
        return moment
    if unit == "day":
        return moment + timedelta(days=count)
    if unit == "week":
        return moment + timedelta(weeks=count)
    months = count * 12 if unit == "year" else count
    if unit not in ("month", "year"):
        raise ValueError(f"Unknown interval “{unit}”.")
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


# How many of each billing period fit in a month, as exact fractions.
UNITS_PER_MONTH = {
    "day": Fraction(365, 12),
    "week": Fraction(52, 12),
    "month": Fraction(1),
    "year": Fraction(1, 12),
}


def monthly_rate(amount: Decimal, time_interval: int | None, billing_period: str) -> Fraction:
    """`amount` charged every `time_interval` `billing_period`s, as an exact amount per month.

    A year is 12 months, a week 52/12 of a month, a day 365/12; callers round once,
    for display.
    """
    units_per_month = UNITS_PER_MONTH[billing_period]
    return Fraction(amount) * units_per_month / (time_interval or 1)
