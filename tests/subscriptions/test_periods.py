"""Calendar arithmetic of billing periods: anchored cycles, month ends, leap years, UTC."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from subscriptions.periods import anchored_period_end


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def period_ends(anchor: str, count: int, unit: str, periods: int) -> list[str]:
    start = at(anchor)
    ends = []
    for _ in range(periods):
        start = anchored_period_end(at(anchor), start, count, unit)
        ends.append(start.isoformat(sep=" ")[:16])
    return ends


def test_a_cycle_anchored_on_the_31st_renews_on_each_months_last_day_and_the_31st_again():
    assert period_ends("2026-01-31 09:15", 1, "month", 4) == [
        "2026-02-28 09:15",
        "2026-03-31 09:15",
        "2026-04-30 09:15",
        "2026-05-31 09:15",
    ]


def test_a_cycle_anchored_on_the_31st_renews_on_29_february_in_a_leap_year():
    assert period_ends("2028-01-31", 1, "month", 2) == ["2028-02-29 00:00", "2028-03-31 00:00"]


def test_a_yearly_cycle_anchored_on_29_february_renews_on_28_february_and_29_in_leap_years():
    assert period_ends("2028-02-29", 1, "year", 5) == [
        "2029-02-28 00:00",
        "2030-02-28 00:00",
        "2031-02-28 00:00",
        "2032-02-29 00:00",
        "2033-02-28 00:00",
    ]


def test_quarterly_periods_count_from_the_anchor_not_from_the_shortened_period():
    assert period_ends("2026-11-30", 3, "month", 3) == [
        "2027-02-28 00:00",
        "2027-05-30 00:00",
        "2027-08-30 00:00",
    ]


def test_periods_are_counted_in_utc_so_a_late_evening_anchor_stays_on_its_day():
    # 23:30 UTC on 31 January: the February period ends at 23:30 UTC on the 28th,
    # never spilling into 1 March, whatever the customer's own clock says.
    assert period_ends("2026-01-31 23:30", 1, "month", 2) == [
        "2026-02-28 23:30",
        "2026-03-31 23:30",
    ]


def test_the_period_end_is_the_first_boundary_after_any_start_in_the_cycle():
    anchor = at("2026-01-31")
    assert anchored_period_end(anchor, at("2026-03-15"), 1, "month") == at("2026-03-31")
    assert anchored_period_end(anchor, at("2026-03-31"), 1, "month") == at("2026-04-30")
    assert anchored_period_end(anchor, at("2026-02-27"), 1, "month") == at("2026-02-28")


@pytest.mark.parametrize(("unit", "expected"), [("day", "2026-03-10"), ("week", "2026-03-22")])
def test_day_and_week_periods_are_exact_lengths_from_the_anchor(unit, expected):
    assert anchored_period_end(at("2026-03-01"), at("2026-03-08"), 3, unit) == at(expected)
