"""Activity by hour of the week: when the community talks, in its own time zone."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from analytics.activity import int_column
from analytics.results import HourOfWeek
from analytics.weeks import NO_DAY, day_number, day_numbers

HOURS = 24
WEEK_HOURS = 7 * HOURS


def hour_of_week(hourly: pd.DataFrame, start: date, end: date) -> list[HourOfWeek]:
    """Messages and reactions per weekday and local hour, summed over the local days ``start .. end``.

    The hours are wall-clock hours of the community's zone, as stored: on the night clocks go back, both real
    hours of the repeated hour count in that hour; the hour skipped when clocks go forward stays empty that day.

    Args:
        hourly: Per local day and hour (``HOURLY_COLUMNS``).
        start: The first day counted.
        end: The last day counted.

    Returns:
        All 168 cells, Monday 00:00 first (weekday 0 = Monday), zero cells included.
    """
    messages = np.zeros(WEEK_HOURS, dtype=np.int64)
    reactions = np.zeros(WEEK_HOURS, dtype=np.int64)
    if len(hourly):
        days = day_numbers(hourly["day"])
        hours = int_column(hourly, "hour")
        mask = (days != NO_DAY) & (days >= day_number(start)) & (days <= day_number(end))
        mask &= (hours >= 0) & (hours < HOURS)
        weekday = (days[mask] + 3) % 7  # day 0 (1970-01-01) is a Thursday
        cell = weekday * HOURS + hours[mask]
        # bincount sums integer weights as floats: back to exact integers.
        messages = np.rint(np.bincount(cell, weights=int_column(hourly, "messages")[mask], minlength=WEEK_HOURS))
        reactions = np.rint(np.bincount(cell, weights=int_column(hourly, "reactions")[mask], minlength=WEEK_HOURS))
    return [
        HourOfWeek(weekday=i // HOURS, hour=i % HOURS, messages=int(messages[i]), reactions=int(reactions[i]))
        for i in range(WEEK_HOURS)
    ]
