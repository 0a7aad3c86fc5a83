"""Member growth: joins, leaves and members on every day of a range, consistent with the report's own counts."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.activity import int_column
from analytics.results import GrowthDay
from analytics.weeks import NO_DAY, day_number, day_numbers, local_day_numbers

_BEFORE_ALL = np.iinfo(np.int64).min + 1  # a join that is unknown counts as long ago
_NEVER = np.iinfo(np.int64).max  # no leave


def member_growth(
    members: pd.DataFrame, community_days: pd.DataFrame, *, start: date, end: date, timezone: ZoneInfo
) -> list[GrowthDay]:
    """Joins, leaves and members at the end of each local day from ``start`` to ``end``.

    The three agree with the rest of the report by construction: ``joins`` are the members whose join (or first
    activity) falls on the day, which ``WeekStats.new`` sums per week; ``leaves`` are the day's leave events
    (``community_days.leaves``), which ``WeekStats.left`` sums; ``members`` is the report's member count
    (``Report.members``) taken as of each day, so on ``end`` it equals ``Report.members``. A member who left and
    came back is a member throughout (a member is counted from the first join to a leave that was not followed by
    a return), so a leave that was undone moves ``leaves`` but not ``members``.

    Args:
        members: The members frame (``joined_at``, ``left_at``).
        community_days: Daily community totals (``leaves``).
        start: The first day.
        end: The last day.
        timezone: The community's time zone (for ``joined_at`` and ``left_at``).

    Returns:
        One :class:`GrowthDay` per day, oldest first.
    """
    lo, hi = day_number(start), day_number(end)
    if hi < lo:
        return []
    n_days = hi - lo + 1
    days = np.arange(lo, hi + 1, dtype=np.int64)
    joined = local_day_numbers(members["joined_at"], timezone) if len(members) else np.empty(0, dtype=np.int64)
    left = local_day_numbers(members["left_at"], timezone) if len(members) else np.empty(0, dtype=np.int64)
    # A member on day d joined by d (or has no known join) and had not left by d: join <= d < leave.
    # count(d) = #{join <= d} - #{max(join, leave) <= d}, which also gives 0 for a leave on or before the join.
    join_key = np.where(joined == NO_DAY, _BEFORE_ALL, joined)
    leave_key = np.where(left == NO_DAY, _NEVER, left)
    gone_key = np.maximum(join_key, leave_key)
    counted = np.searchsorted(np.sort(join_key), days, side="right") - np.searchsorted(
        np.sort(gone_key), days, side="right"
    )
    new = joined[(joined != NO_DAY) & (joined >= lo) & (joined <= hi)]
    joins = np.bincount(new - lo, minlength=n_days)
    leaves = np.zeros(n_days, dtype=np.int64)
    if len(community_days):
        cdays = day_numbers(community_days["day"])
        mask = (cdays != NO_DAY) & (cdays >= lo) & (cdays <= hi)
        leaves = np.asarray(
            np.rint(
                np.bincount(cdays[mask] - lo, weights=int_column(community_days, "leaves")[mask], minlength=n_days)
            ),
            dtype=np.int64,
        )
    return [
        GrowthDay(day=start + timedelta(days=i), joins=int(joins[i]), leaves=int(leaves[i]), members=int(counted[i]))
        for i in range(n_days)
    ]
