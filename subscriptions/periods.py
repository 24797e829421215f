"""Calendar arithmetic for trials and billing periods."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta


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
