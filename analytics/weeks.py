"""ISO weeks and day numbers: the calendar arithmetic every metric shares.

Days are handled as *day numbers* (``int64`` days since 1970-01-01) so that windows, weeks and differences are
plain integer arithmetic on numpy arrays. Local days come from the frames (already local) or from UTC instants
converted with the community's time zone. Weeks are ISO weeks: they start on Monday and are labelled with the ISO
year, so 2021-01-01 (a Friday) is in ``"2020-W53"``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

EPOCH = date(1970, 1, 1)
"""Day number 0 (a Thursday)."""

NO_DAY = np.iinfo(np.int64).min
"""The day number of a missing instant (NaT). Callers mask it out explicitly; never compare with it."""

IntArray = NDArray[np.int64]


def day_number(day: date) -> int:
    """The day number of a date (days since 1970-01-01)."""
    return (day - EPOCH).days


def from_day_number(number: int | np.integer[Any]) -> date:
    """The date of a day number."""
    return EPOCH + timedelta(days=int(number))


def week_start(day: date) -> date:
    """The Monday of the ISO week containing ``day``."""
    return day - timedelta(days=day.weekday())


def week_label(day: date) -> str:
    """The ISO week label of ``day``, with the ISO year: ``"2019-W48"``, ``"2020-W53"`` for 2021-01-01."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_starts(first: date, last: date) -> list[date]:
    """The Mondays of every ISO week from the one containing ``first`` to the one containing ``last``."""
    monday = week_start(first)
    end = week_start(last)
    out: list[date] = []
    while monday <= end:
        out.append(monday)
        monday += timedelta(days=7)
    return out


def last_complete_week_start(as_of: date) -> date:
    """The Monday of the last ISO week that has ended by the end of ``as_of``.

    A week is complete when its Sunday is on or before ``as_of`` (``as_of`` counts as a whole day), so on a
    Sunday the current week is complete; on any other day it is the previous week.
    """
    monday = week_start(as_of)
    return monday if as_of.weekday() == 6 else monday - timedelta(days=7)


def monday_numbers(days: IntArray) -> IntArray:
    """The day numbers of the Mondays of the ISO weeks containing ``days`` (day 0 is a Thursday)."""
    return days - (days + 3) % 7


def day_numbers(values: pd.Series[Any]) -> IntArray:
    """Day numbers of naive local days (``datetime64`` at midnight, or ``date`` objects); NaT gives ``NO_DAY``."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = pd.to_datetime(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    raw = values.to_numpy(dtype="datetime64[ns]")
    out: IntArray = raw.astype("datetime64[D]").astype(np.int64)
    out[np.isnat(raw)] = NO_DAY
    return out


def local_day_numbers(instants: pd.Series[Any], timezone: ZoneInfo) -> IntArray:
    """Day numbers of the local days (in ``timezone``) of UTC instants; NaT gives ``NO_DAY``.

    Naive instants are taken as UTC. 23:30 UTC on a Sunday is Monday in a UTC+1 community.
    """
    if len(instants) == 0:
        return np.empty(0, dtype=np.int64)
    utc = pd.to_datetime(instants, utc=True)
    local = utc.dt.tz_convert(timezone).dt.tz_localize(None)
    raw = local.to_numpy(dtype="datetime64[ns]")
    out: IntArray = raw.astype("datetime64[D]").astype(np.int64)
    out[np.isnat(raw)] = NO_DAY
    return out
