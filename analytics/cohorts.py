"""Join cohorts: weekly retention, new-member activation and second-week retention.

A member's cohort is the ISO week (community time zone) of their ``joined_at``: their first join, or their first
activity when no join was recorded. A member who leaves and rejoins stays in the cohort of their first join, and a
member who left still counts in their cohort's size (retention measures who is still around).

Only fully observed windows are reported: retention at week ``k`` needs week ``cohort + k`` to have ended by
``as_of`` (its Sunday on or before ``as_of``), and a joiner counts towards activation only once their first seven
days (``joined_day .. joined_day + 6``) have ended by ``as_of``.
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from analytics.activity import ActivityRows, BoolArray, as_rows, distinct_pairs, int_column, positions
from analytics.results import Cohort
from analytics.weeks import (
    NO_DAY,
    IntArray,
    day_number,
    last_complete_week_start,
    local_day_numbers,
    week_label,
    week_starts,
)

ACTIVATION_MESSAGES = 3
"""Messages in the first seven days that make a joiner *activated*."""

ACTIVATION_DAYS = 7


def _joiners(members: pd.DataFrame, timezone: ZoneInfo, first: int, last: int) -> tuple[IntArray, IntArray]:
    """Member ids and local join days of the members who joined between day numbers ``first`` and ``last``."""
    if len(members) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    joined = local_day_numbers(members["joined_at"], timezone)
    ids = int_column(members, "member_id")
    mask = (joined != NO_DAY) & (joined >= first) & (joined <= last)
    return ids[mask], joined[mask]


def activation_flags(rows: ActivityRows, ids: IntArray, joined: IntArray, as_of: date) -> tuple[BoolArray, BoolArray]:
    """For each joiner: whether their first seven days are observed, and whether they posted >= 3 messages in them.

    Args:
        rows: Member daily activity.
        ids: The joiners' member ids (unique).
        joined: Their local join days (day numbers).
        as_of: The report day; a joiner is *eligible* when ``joined_day + 6 <= as_of``.

    Returns:
        ``(eligible, activated)``, aligned with ``ids``; ``activated`` is only true for eligible joiners.
    """
    end = day_number(as_of)
    eligible = joined + ACTIVATION_DAYS - 1 <= end
    activated = np.zeros(len(ids), dtype=np.bool_)
    if len(ids) == 0:
        return eligible, activated
    window = rows.between(int(joined.min()), min(int(joined.max()) + ACTIVATION_DAYS - 1, end))
    position = positions(ids, window.member)
    known = position >= 0
    position, day, messages = position[known], window.day[known], window.messages[known]
    offset = day - joined[position]
    inside = (offset >= 0) & (offset < ACTIVATION_DAYS)
    counts = np.bincount(position[inside], weights=messages[inside], minlength=len(ids))
    activated = eligible & (counts >= ACTIVATION_MESSAGES)
    return eligible, activated


def cohort_retention(
    member_days: pd.DataFrame | ActivityRows,
    members: pd.DataFrame,
    *,
    timezone: ZoneInfo,
    start: date,
    as_of: date,
) -> list[Cohort]:
    """Retention of the weekly join cohorts from the week containing ``start`` to the week containing ``as_of``.

    ``retention[k]`` is the share of the cohort active at least once in ISO week ``cohort + k`` (``k = 0`` is the
    join week), for every week up to the last complete week on or before ``as_of``; a cohort of the current,
    partial week therefore has an empty ``retention``. Activation is the share of the cohort's eligible joiners
    (first seven days observed) who posted at least three messages in their first seven days.

    Args:
        member_days: Member daily activity.
        members: The members frame (``joined_at`` defines the cohort; ``member_id`` unique).
        timezone: The community's time zone (``joined_at`` is UTC).
        start: Any day of the first cohort week.
        as_of: The report day (counted whole).

    Returns:
        One :class:`Cohort` per week with at least one joiner, oldest first.
    """
    mondays = week_starts(start, as_of)
    if not mondays:
        return []
    n_weeks = len(mondays)
    m0, end = day_number(mondays[0]), day_number(as_of)
    observed_weeks = (day_number(last_complete_week_start(as_of)) - m0) // 7 + 1  # weeks 0 .. observed_weeks - 1

    rows = as_rows(member_days)
    ids, joined = _joiners(members, timezone, m0, end)
    cohort = (joined - m0) // 7
    sizes = np.bincount(cohort, minlength=n_weeks)

    eligible, activated = activation_flags(rows, ids, joined, as_of)
    eligible_per_cohort = np.bincount(cohort[eligible], minlength=n_weeks)
    activated_per_cohort = np.bincount(cohort[activated], minlength=n_weeks)

    active_counts = np.zeros((n_weeks, n_weeks), dtype=np.int64)  # [cohort, k]
    if len(ids) and observed_weeks > 0:
        window = rows.between(m0, m0 + 7 * observed_weeks - 1)
        position = positions(ids, window.member)
        known = (position >= 0) & window.active
        position, week = position[known], (window.day[known] - m0) // 7
        members_at, weeks_at = distinct_pairs(position, week, n_weeks)
        k = weeks_at - cohort[members_at]
        after_join = k >= 0
        flat = cohort[members_at][after_join] * n_weeks + k[after_join]
        active_counts = np.bincount(flat, minlength=n_weeks * n_weeks).reshape(n_weeks, n_weeks)

    out: list[Cohort] = []
    for c, monday in enumerate(mondays):
        size = int(sizes[c])
        if size == 0:
            continue
        observed = max(observed_weeks - c, 0)
        retention = tuple(float(active_counts[c, k]) / size for k in range(observed))
        n_eligible = int(eligible_per_cohort[c])
        out.append(
            Cohort(
                cohort=week_label(monday),
                start=monday,
                size=size,
                retention=retention,
                activation_rate=int(activated_per_cohort[c]) / n_eligible if n_eligible else None,
                second_week_retention=retention[1] if len(retention) > 1 else None,
                activation_eligible=n_eligible,
            )
        )
    return out


def activation_rate(
    member_days: pd.DataFrame | ActivityRows,
    members: pd.DataFrame,
    *,
    timezone: ZoneInfo,
    first_week: date,
    last_week: date,
    as_of: date,
) -> float | None:
    """The pooled activation rate of the members who joined in the ISO weeks ``first_week .. last_week``.

    See ``activation`` (this returns only the rate).
    """
    return activation(member_days, members, timezone=timezone, first_week=first_week, last_week=last_week, as_of=as_of)[
        0
    ]


def activation(
    member_days: pd.DataFrame | ActivityRows,
    members: pd.DataFrame,
    *,
    timezone: ZoneInfo,
    first_week: date,
    last_week: date,
    as_of: date,
) -> tuple[float | None, int]:
    """The pooled activation rate of the members who joined in the ISO weeks ``first_week .. last_week``.

    Activated joiners divided by eligible joiners (first seven days ended by ``as_of``), over all the weeks
    together (not a mean of weekly rates).

    Args:
        member_days: Member daily activity.
        members: The members frame.
        timezone: The community's time zone.
        first_week: Any day of the first join week.
        last_week: Any day of the last join week.
        as_of: The report day.

    Returns:
        The rate (None when no joiner is eligible) and the number of eligible joiners it is computed over.
    """
    mondays = week_starts(first_week, last_week)
    if not mondays:
        return None, 0
    first = day_number(mondays[0])
    last = min(day_number(mondays[-1]) + 6, day_number(as_of))
    ids, joined = _joiners(members, timezone, first, last)
    eligible, activated = activation_flags(as_rows(member_days), ids, joined, as_of)
    n_eligible = int(eligible.sum())
    return (int(activated.sum()) / n_eligible if n_eligible else None), n_eligible
