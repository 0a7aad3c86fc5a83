"""Activity metrics: DAU/WAU/MAU, stickiness, weekly totals, communicators and per-member activity spread.

A member is *active* on a local day when they posted a message or gave a reaction that day
(``messages + reactions_given > 0``); receiving reactions alone is not activity. Every function takes the frames of
``analytics.frames`` (humans only, local days) and is vectorised: the cost grows with the number of rows, never
with rows times days. Rolling distinct counts use coverage intervals: each active day ``d`` of a member covers the
windows ending on ``d .. d + window - 1``; a member's intervals are cut where the next one starts (so they are
disjoint), added to a difference array and summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analytics.results import ActivitySummary, DayActivity, WeekStats
from analytics.weeks import (
    NO_DAY,
    IntArray,
    day_number,
    day_numbers,
    local_day_numbers,
    week_label,
    week_starts,
)

BoolArray = NDArray[np.bool_]

COMMUNICATOR_MESSAGES = 3
"""Messages in a period that make a member a *communicator* (as Discord Server Insights counts them)."""

WEEK_DAYS = 7
MONTH_DAYS = 28


def int_column(frame: pd.DataFrame, name: str) -> IntArray:
    """A numeric column as ``int64`` (missing values count as 0)."""
    column = frame[name]
    if pd.api.types.is_integer_dtype(column.dtype) and not isinstance(column.dtype, pd.api.extensions.ExtensionDtype):
        return np.asarray(column.to_numpy(), dtype=np.int64)
    return np.asarray(pd.to_numeric(column, errors="coerce").fillna(0).to_numpy(), dtype=np.int64)


def sort_by_day(day: IntArray) -> IntArray | None:
    """A stable order sorting ``day`` (radix sort when the days span less than 65,536), or None if sorted."""
    if len(day) < 2 or bool((day[1:] >= day[:-1]).all()):
        return None
    valid = day != NO_DAY
    low = int(day[valid].min()) if valid.any() else 0
    high = int(day[valid].max()) if valid.any() else 0
    if high - low < np.iinfo(np.uint16).max:
        # NO_DAY sorts first, as it would as an int64.
        offsets = np.where(valid, day - low + 1, 0).astype(np.uint16)
        return np.asarray(np.argsort(offsets, kind="stable"), dtype=np.int64)
    return np.asarray(np.argsort(day, kind="stable"), dtype=np.int64)


@dataclass(frozen=True)
class ActivityRows:
    """The ``member_days`` frame as parallel numpy arrays, sorted by day (day numbers instead of timestamps).

    Build it once with :meth:`from_frame` (which sorts) and pass it to several functions to skip repeated
    conversions; every function that takes ``member_days`` also accepts this. Day windows are then slices.
    """

    member: IntArray
    day: IntArray  # ascending
    messages: IntArray
    replies: IntArray
    reactions_given: IntArray
    reactions_received: IntArray

    @classmethod
    def from_frame(cls, member_days: pd.DataFrame) -> ActivityRows:
        """Convert a ``member_days`` frame (any row order)."""
        rows = cls(
            member=int_column(member_days, "member_id"),
            day=day_numbers(member_days["day"]),
            messages=int_column(member_days, "messages"),
            replies=int_column(member_days, "replies"),
            reactions_given=int_column(member_days, "reactions_given"),
            reactions_received=int_column(member_days, "reactions_received"),
        )
        order = sort_by_day(rows.day)
        return rows if order is None else rows.take(order)

    @cached_property
    def active(self) -> BoolArray:
        """Rows on which the member was active (posted or reacted)."""
        return np.asarray((self.messages + self.reactions_given) > 0, dtype=np.bool_)

    def __len__(self) -> int:
        return len(self.day)

    def take(self, index: BoolArray | IntArray) -> ActivityRows:
        """The rows selected by a boolean mask or by positions (keep positions ascending to stay sorted)."""
        return ActivityRows(
            member=self.member[index],
            day=self.day[index],
            messages=self.messages[index],
            replies=self.replies[index],
            reactions_given=self.reactions_given[index],
            reactions_received=self.reactions_received[index],
        )

    def between(self, first: int, last: int, *, active_only: bool = False) -> ActivityRows:
        """The rows with ``first <= day <= last`` (day numbers; a view), optionally only the active ones."""
        lo = int(np.searchsorted(self.day, max(first, NO_DAY + 1), side="left"))
        hi = int(np.searchsorted(self.day, last, side="right"))
        part = self._slice(lo, max(lo, hi))
        return part.take(part.active) if active_only else part

    def until(self, last: int) -> ActivityRows:
        """The rows with a known day on or before ``last`` (a view)."""
        return self.between(NO_DAY, last)

    def _slice(self, lo: int, hi: int) -> ActivityRows:
        return ActivityRows(
            member=self.member[lo:hi],
            day=self.day[lo:hi],
            messages=self.messages[lo:hi],
            replies=self.replies[lo:hi],
            reactions_given=self.reactions_given[lo:hi],
            reactions_received=self.reactions_received[lo:hi],
        )


def as_rows(member_days: pd.DataFrame | ActivityRows) -> ActivityRows:
    """``member_days`` as :class:`ActivityRows` (converted when it is a frame)."""
    return member_days if isinstance(member_days, ActivityRows) else ActivityRows.from_frame(member_days)


def factorize(values: IntArray) -> tuple[IntArray, int]:
    """Dense codes ``0..n-1`` for ``values`` and ``n``."""
    codes, uniques = pd.factorize(values)
    return np.asarray(codes, dtype=np.int64), len(uniques)


def positions(ids: IntArray, values: IntArray) -> IntArray:
    """The position of each of ``values`` in ``ids`` (unique), -1 where absent."""
    return np.asarray(pd.Index(ids).get_indexer(pd.Index(values)), dtype=np.int64)


def distinct_pairs(codes: IntArray, buckets: IntArray, n_buckets: int) -> tuple[IntArray, IntArray]:
    """The distinct ``(code, bucket)`` pairs, sorted by code then bucket (buckets in ``0..n_buckets-1``)."""
    if len(codes) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    keys = np.sort(codes * n_buckets + buckets)
    first = np.ones(len(keys), dtype=np.bool_)
    first[1:] = keys[1:] != keys[:-1]
    keys = keys[first]
    return keys // n_buckets, keys % n_buckets


def _distinct_active_days(rows: ActivityRows, first: int, last: int) -> tuple[IntArray, IntArray]:
    """The distinct (member code, day) pairs with activity between ``first`` and ``last``, sorted by member, day."""
    rows = rows.between(first, last)
    active = rows.active
    codes, _ = factorize(rows.member[active])
    member, offset = distinct_pairs(codes, rows.day[active] - first, last - first + 1)
    return member, offset + first


def _coverage_counts(member: IntArray, day: IntArray, lo: int, hi: int, window: int) -> IntArray:
    """Distinct members with an active day in each window ``d - window + 1 .. d`` for ``d`` in ``lo .. hi``.

    ``member`` and ``day`` are distinct pairs sorted by member then day.
    """
    n_days = hi - lo + 1
    if len(day) == 0:
        return np.zeros(n_days, dtype=np.int64)
    # Each active day covers the windows ending on day .. day + window - 1; cut that interval where the member's
    # next active day starts, so that a member's intervals are disjoint and their union is the member's coverage.
    stop = day + window - 1
    same_member_next = np.zeros(len(day), dtype=np.bool_)
    same_member_next[:-1] = member[1:] == member[:-1]
    next_day = np.empty_like(day)
    next_day[:-1] = day[1:]
    next_day[-1] = hi + window
    stop = np.where(same_member_next, np.minimum(stop, next_day - 1), stop)
    begin = np.maximum(day, lo)
    stop = np.minimum(stop, hi)
    keep = begin <= stop
    diff = np.bincount(begin[keep] - lo, minlength=n_days + 1) - np.bincount(stop[keep] - lo + 1, minlength=n_days + 1)
    return np.asarray(np.cumsum(diff[:n_days]), dtype=np.int64)


def rolling_distinct_active_windows(
    member_days: pd.DataFrame | ActivityRows, start: date, end: date, windows: tuple[int, ...]
) -> dict[int, IntArray]:
    """:func:`rolling_distinct_active` for several window lengths at once (one sort shared by all)."""
    if any(window < 1 for window in windows):
        raise ValueError("windows must be at least 1 day")
    lo, hi = day_number(start), day_number(end)
    if hi < lo or not windows:
        return {window: np.zeros(0, dtype=np.int64) for window in windows}
    member, day = _distinct_active_days(as_rows(member_days), lo - max(windows) + 1, hi)
    return {window: _coverage_counts(member, day, lo, hi, window) for window in windows}


def capped_sums(keys: IntArray, values: IntArray, cap: int) -> tuple[IntArray, IntArray]:
    """Per distinct key, ``min(sum of values, cap)`` (values >= 0), by sorting one packed int64 array.

    Enough to test ``sum >= cap`` (communicators, activation) without a hash group-by or an argsort.
    """
    if len(keys) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    base = cap + 1
    packed = np.sort(keys * base + np.minimum(values, cap))
    distinct = packed // base
    starts = np.flatnonzero(np.r_[True, distinct[1:] != distinct[:-1]])
    sums = np.add.reduceat(packed % base, starts)
    return distinct[starts], np.minimum(sums, cap)


def rolling_distinct_active(member_days: pd.DataFrame | ActivityRows, start: date, end: date, window: int) -> IntArray:
    """Distinct active members in the ``window`` days ending on each day from ``start`` to ``end``.

    ``window=1`` gives DAU, 7 WAU and 28 MAU. Each member's sorted active days become coverage intervals
    ``[d, d + window - 1]``, cut where the member's next active day starts (so they are disjoint), and are added to
    a difference array whose running sum is the count: O(rows log rows), independent of days × members.

    Args:
        member_days: The ``member_days`` frame (or its :class:`ActivityRows`).
        start: The first local day to report.
        end: The last local day to report (inclusive).
        window: The window length in days (at least 1).

    Returns:
        One count per day from ``start`` to ``end``.
    """
    return rolling_distinct_active_windows(member_days, start, end, (window,))[window]


def daily_activity(member_days: pd.DataFrame | ActivityRows, start: date, end: date) -> list[DayActivity]:
    """DAU, WAU (7 days) and MAU (28 days) for every local day from ``start`` to ``end``.

    Args:
        member_days: The ``member_days`` frame (or its :class:`ActivityRows`); activity before ``start`` is used
            for the rolling windows.
        start: The first day listed.
        end: The last day listed (inclusive).

    Returns:
        One :class:`DayActivity` per day, days without activity included (with zeros).
    """
    counts = rolling_distinct_active_windows(member_days, start, end, (1, WEEK_DAYS, MONTH_DAYS))
    dau, wau, mau = counts[1], counts[WEEK_DAYS], counts[MONTH_DAYS]
    return [
        DayActivity(day=start + timedelta(days=i), dau=int(dau[i]), wau=int(wau[i]), mau=int(mau[i]))
        for i in range(len(dau))
    ]


def _day_sums(frame: pd.DataFrame, column: str, first: int, last: int) -> int:
    """The sum of ``column`` over the rows of ``frame`` with ``first <= day <= last``."""
    if len(frame) == 0:
        return 0
    days = day_numbers(frame["day"])
    mask = (days >= first) & (days <= last) & (days != NO_DAY)
    return int(int_column(frame, column)[mask].sum())


def _weekly_sums(frame: pd.DataFrame, column: str, m0: int, hi: int, n_weeks: int) -> IntArray:
    """Per-week sums of ``column`` for weeks starting at day number ``m0``, days up to ``hi``."""
    if len(frame) == 0:
        return np.zeros(n_weeks, dtype=np.int64)
    days = day_numbers(frame["day"])
    mask = (days >= m0) & (days <= hi) & (days != NO_DAY)
    weights = int_column(frame, column)[mask]
    out = np.bincount((days[mask] - m0) // 7, weights=weights, minlength=n_weeks)
    return np.asarray(np.rint(out), dtype=np.int64)


def weekly_stats(
    member_days: pd.DataFrame | ActivityRows,
    members: pd.DataFrame,
    community_days: pd.DataFrame,
    channel_days: pd.DataFrame,
    *,
    start: date,
    end: date,
    timezone: ZoneInfo,
) -> list[WeekStats]:
    """Totals for every ISO week from the one containing ``start`` to the one containing ``end``.

    Only days up to ``end`` count, so the last week is partial when ``end`` is not a Sunday (its numbers are the
    week so far). Weeks without any activity are listed with zeros.

    Args:
        member_days: Per-member daily activity (active members, communicators).
        members: The members frame (``new``: members whose ``joined_at``, in ``timezone``, falls in the week).
        community_days: Daily community totals (``messages``, ``reactions``, ``leaves``).
        channel_days: Messages per channel and day (``active_channels``).
        start: Any day of the first week.
        end: The last day counted (usually the report's ``as_of``).
        timezone: The community's time zone (for ``joined_at``).

    Returns:
        One :class:`WeekStats` per ISO week, oldest first.
    """
    mondays = week_starts(start, end)
    if not mondays:
        return []
    n_weeks = len(mondays)
    m0, hi = day_number(mondays[0]), day_number(end)

    rows = as_rows(member_days).between(m0, hi)
    week = (rows.day - m0) // 7
    codes, _ = factorize(rows.member)
    active_rows = rows.active
    _, active_weeks = distinct_pairs(codes[active_rows], week[active_rows], n_weeks)
    active = np.bincount(active_weeks, minlength=n_weeks)

    posted = rows.messages > 0
    keys, totals = capped_sums(codes[posted] * n_weeks + week[posted], rows.messages[posted], COMMUNICATOR_MESSAGES)
    communicators = np.bincount(keys[totals >= COMMUNICATOR_MESSAGES] % n_weeks, minlength=n_weeks)

    joined = local_day_numbers(members["joined_at"], timezone)
    joined = joined[(joined != NO_DAY) & (joined >= m0) & (joined <= hi)]
    new = np.bincount((joined - m0) // 7, minlength=n_weeks)

    messages = _weekly_sums(community_days, "messages", m0, hi, n_weeks)
    reactions = _weekly_sums(community_days, "reactions", m0, hi, n_weeks)
    left = _weekly_sums(community_days, "leaves", m0, hi, n_weeks)

    channels = np.zeros(n_weeks, dtype=np.int64)
    if len(channel_days):
        cdays = day_numbers(channel_days["day"])
        mask = (cdays >= m0) & (cdays <= hi) & (cdays != NO_DAY) & (int_column(channel_days, "messages") > 0)
        channel_codes, _ = pd.factorize(channel_days["channel_id"].to_numpy()[mask])
        _, channel_weeks = distinct_pairs(np.asarray(channel_codes, dtype=np.int64), (cdays[mask] - m0) // 7, n_weeks)
        channels = np.bincount(channel_weeks, minlength=n_weeks)

    return [
        WeekStats(
            week=week_label(monday),
            start=monday,
            active=int(active[i]),
            new=int(new[i]),
            left=int(left[i]),
            messages=int(messages[i]),
            reactions=int(reactions[i]),
            communicators=int(communicators[i]),
            active_channels=int(channels[i]),
        )
        for i, monday in enumerate(mondays)
    ]


def messages_per_active_member(member_days: pd.DataFrame | ActivityRows, first: date, last: date) -> pd.Series[Any]:
    """Messages of each member active between ``first`` and ``last`` (inclusive), indexed by ``member_id``.

    Members active only through reactions are included with 0 messages.
    """
    rows = as_rows(member_days).between(day_number(first), day_number(last))
    active = rows.active
    if not active.any():
        return pd.Series(dtype="int64")
    totals = pd.Series(rows.messages).groupby(rows.member).sum()
    active_members = np.unique(rows.member[active])
    return totals.reindex(pd.Index(active_members)).astype("int64")


def activity_summary(
    member_days: pd.DataFrame | ActivityRows,
    community_days: pd.DataFrame,
    channel_days: pd.DataFrame,
    *,
    as_of: date,
) -> ActivitySummary:
    """Activity as of ``as_of`` over the trailing 28 days (``as_of - 27 .. as_of``) unless named otherwise.

    Stickiness is the mean DAU over the 28 days divided by the MAU on ``as_of``. The per-member mean and standard
    deviation are over the members active in the 28 days, of their message counts in the 28 days; the standard
    deviation is the population one (``ddof=0``).

    Args:
        member_days: Per-member daily activity.
        community_days: Daily community totals (messages, reactions).
        channel_days: Messages per channel and day.
        as_of: The report day (counted whole).

    Returns:
        The :class:`ActivitySummary`; ``stickiness`` and the per-member numbers are None when nobody was active.
    """
    rows = as_rows(member_days)
    first = as_of - timedelta(days=MONTH_DAYS - 1)
    lo, hi = day_number(first), day_number(as_of)
    counts = rolling_distinct_active_windows(rows, first, as_of, (1, WEEK_DAYS, MONTH_DAYS))
    dau_28 = counts[1]
    wau = int(counts[WEEK_DAYS][-1])
    mau = int(counts[MONTH_DAYS][-1])

    per_member = messages_per_active_member(rows, first, as_of)
    values = per_member.to_numpy(dtype=np.float64)

    channels = 0
    if len(channel_days):
        cdays = day_numbers(channel_days["day"])
        mask = (cdays >= lo) & (cdays <= hi) & (cdays != NO_DAY) & (int_column(channel_days, "messages") > 0)
        channels = int(pd.Series(channel_days["channel_id"].to_numpy()[mask]).nunique())

    return ActivitySummary(
        dau=int(dau_28[-1]),
        wau=wau,
        mau=mau,
        stickiness=float(dau_28.mean()) / mau if mau else None,
        messages_7d=_day_sums(community_days, "messages", hi - WEEK_DAYS + 1, hi),
        messages_28d=_day_sums(community_days, "messages", lo, hi),
        reactions_28d=_day_sums(community_days, "reactions", lo, hi),
        communicators_28d=int((values >= COMMUNICATOR_MESSAGES).sum()),
        active_channels_28d=channels,
        messages_per_active_member_mean=float(values.mean()) if len(values) else None,
        messages_per_active_member_std=float(values.std(ddof=0)) if len(values) else None,
    )
