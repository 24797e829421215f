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


def anchored_period_end(anchor: datetime, start: datetime, count: int, unit: str) -> datetime:
    """The end of the billing period that runs from `start`, on a cycle anchored at `anchor`.

    Every boundary is counted from the anchor, not from the previous boundary,
    so a cycle anchored on 31 January ends periods on 28/29 February, 31 March
    and 30 April instead of drifting to the 28th for good; a yearly cycle
    anchored on 29 February ends on 28 February, and on 29 February in leap
    years (as Stripe and Kill Bill bill). The result is the first boundary
    after `start` (the anchor itself for a start before it).
    """
    if count < 1:
        raise ValueError("A billing period is at least one interval long.")
    index = max(0, _intervals_between(anchor, start, count, unit))
    while index > 0 and add_interval(anchor, (index - 1) * count, unit) > start:
        index -= 1
    while (end := add_interval(anchor, index * count, unit)) <= start:
        index += 1
    return end


def _intervals_between(anchor: datetime, start: datetime, count: int, unit: str) -> int:
    """About how many periods lie between the anchor and `start`: a first guess to adjust."""
    if unit in ("day", "week"):
        length = timedelta(days=count) if unit == "day" else timedelta(weeks=count)
        return (start - anchor) // length + 1
    months = (start.year - anchor.year) * 12 + start.month - anchor.month
    return months // (count * 12 if unit == "year" else count) + 1


def first_paid_period_start(
    *, started: datetime, trial_ends: datetime, inside: bool, count: int, unit: str
) -> datetime:
    """When the first paid period of a service with a trial begins.

    An outside trial comes before it. An inside trial is its start, unless the
    trial lasts one billing period or longer: that period would be over before
    its invoice falls due at the trial end, so the first paid period begins
    when the trial ends instead, as after an outside trial. No invoice is ever
    issued for time already past.
    """
    if inside and trial_ends < add_interval(started, count, unit):
        return started
    return trial_ends
