"""Per-member metrics: days since last activity, engagement score, segments, inactive, at-risk and top members.

Windows are relative to the report day ``as_of`` (local days, both ends inclusive):

- *last 14 days*: ``as_of - 13 .. as_of``;
- *the 28 days before the last 14*: ``as_of - 41 .. as_of - 14``;
- *last 28 days*: ``as_of - 27 .. as_of``.

Only current members (joined by ``as_of``, not left) are segmented or listed. :func:`member_table` computes
everything once; the list functions select from its result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from analytics.activity import MONTH_DAYS, ActivityRows, as_rows, int_column, positions
from analytics.results import MemberStatus
from analytics.weeks import NO_DAY, day_number, day_numbers, local_day_numbers


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    """Points per unit of activity in the engagement score (before time decay)."""

    messages: float = 1.0
    replies: float = 1.0  # on top of the message itself: a reply to someone else is worth 2 points in total
    reactions_given: float = 0.25
    reactions_received: float = 0.5


FloatArray = NDArray[np.float64]

DEFAULT_WEIGHTS: Final = ScoreWeights()
HALF_LIFE_DAYS: Final = 14.0
"""Activity loses half its weight every 14 days."""

NEWCOMER_DAYS: Final = 14
AT_RISK_SILENT_DAYS: Final = 14
AT_RISK_BEFORE_DAYS: Final = 28
CHAMPION_SHARE: Final = 0.10
CHAMPION_MIN_MESSAGES: Final = 10
"""Messages in the last 28 days a champion needs, so that reactions received alone cannot make one."""

CHAMPIONS: Final = "champions"
REGULARS: Final = "regulars"
NEWCOMERS: Final = "newcomers"
AT_RISK: Final = "at_risk"
DORMANT: Final = "dormant"
LURKERS: Final = "lurkers"
SEGMENTS: Final = (NEWCOMERS, AT_RISK, DORMANT, LURKERS, CHAMPIONS, REGULARS)
"""Segment names in precedence order: a member gets the first segment whose rule matches."""


def engagement_scores(
    member_days: pd.DataFrame | ActivityRows,
    *,
    as_of: date,
    half_life_days: float = HALF_LIFE_DAYS,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> pd.DataFrame:
    """Time-decayed engagement score of every member with activity on or before ``as_of``.

    ``score = Σ_days 0.5 ** ((as_of - day) / half_life) × (w_m·messages + w_r·replies + w_g·reactions_given +
    w_rr·reactions_received)``: activity today counts fully, 14 days ago half, 28 days ago a quarter.

    Args:
        member_days: Member daily activity.
        as_of: The report day; later rows are ignored.
        half_life_days: Days after which activity counts half.
        weights: Points per message, reply (on top of the message), reaction given and reaction received.

    Returns:
        A frame indexed by ``member_id`` with the column ``score``, highest first (ties by ``member_id``).
    """
    end = day_number(as_of)
    rows = as_rows(member_days).until(end)
    decayed = _decayed_points(rows, end, half_life_days, weights)
    scores = pd.Series(decayed, dtype="float64").groupby(rows.member).sum()
    frame = pd.DataFrame({"member_id": scores.index.to_numpy(dtype=np.int64), "score": scores.to_numpy()})
    frame = frame.sort_values(["score", "member_id"], ascending=[False, True])
    return frame.set_index("member_id")


def _decayed_points(rows: ActivityRows, end: int, half_life_days: float, weights: ScoreWeights) -> FloatArray:
    """Each row's engagement points, decayed by its age relative to day number ``end``."""
    if half_life_days <= 0:
        raise ValueError("half_life_days must be positive")
    points = (
        weights.messages * rows.messages
        + weights.replies * rows.replies
        + weights.reactions_given * rows.reactions_given
        + weights.reactions_received * rows.reactions_received
    )
    return np.asarray(points * np.exp2(-(end - rows.day) / half_life_days), dtype=np.float64)


def member_table(
    member_days: pd.DataFrame | ActivityRows,
    members: pd.DataFrame,
    *,
    as_of: date,
    timezone: ZoneInfo,
    half_life_days: float = HALF_LIFE_DAYS,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
    last_active_before: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per member (indexed by ``member_id``) with everything the member lists and segments need.

    Columns: ``name``, ``platform``, ``opt_out``, ``is_member`` (joined by ``as_of`` or join unknown, and not
    left by ``as_of``), ``days_since_joined`` and ``days_since_active`` (float, NaN when unknown / never active),
    ``messages_28d``, ``active_28d``, ``active_last_14``, ``active_before_14`` (active in ``as_of - 41 ..
    as_of - 14``), ``score`` and ``segment`` (None for former members).

    The last active day is the latest active row of ``member_days`` on or before ``as_of``, or the local day of
    ``last_active_at`` when that is later and still on or before ``as_of`` (so a shortened ``member_days``
    history does not make long-silent members look never active), else the member's day in
    ``last_active_before`` (for members active again after ``as_of``, whose ``last_active_at`` cannot say).

    Args:
        member_days: Member daily activity.
        members: The members frame (``member_id`` unique).
        as_of: The report day (counted whole).
        timezone: The community's time zone (for ``joined_at``, ``left_at``, ``last_active_at``).
        half_life_days: The engagement score's half-life.
        weights: The engagement score's weights.
        last_active_before: Last active days from before ``member_days`` begins (``member_id``, ``day``), for
            members whose ``last_active_at`` is after ``as_of``.

    Returns:
        The member table.
    """
    end = day_number(as_of)
    n = len(members)
    ids = int_column(members, "member_id")
    joined = local_day_numbers(members["joined_at"], timezone)
    left = local_day_numbers(members["left_at"], timezone)
    last_seen = local_day_numbers(members["last_active_at"], timezone)
    is_member = ((joined == NO_DAY) | (joined <= end)) & ((left == NO_DAY) | (left > end))

    rows = as_rows(member_days).until(end)
    position = positions(ids, rows.member)
    known = position >= 0
    active = rows.active & known
    last_active = np.full(n, NO_DAY, dtype=np.int64)
    np.maximum.at(last_active, position[active], rows.day[active])
    score = np.bincount(
        position[known], weights=_decayed_points(rows, end, half_life_days, weights)[known], minlength=n
    ).astype(np.float64)

    # Windows: the last 28 days, the last 14, and the 28 before those (as_of - 41 .. as_of - 14).
    recent = rows.between(end - AT_RISK_SILENT_DAYS - AT_RISK_BEFORE_DAYS + 1, end)
    where = positions(ids, recent.member)
    recent_known = where >= 0
    recent_active = recent.active & recent_known
    age = end - recent.day
    in_28 = recent_known & (age < MONTH_DAYS)
    in_last_14 = age < AT_RISK_SILENT_DAYS
    messages_28d = np.rint(np.bincount(where[in_28], weights=recent.messages[in_28], minlength=n)).astype(np.int64)
    active_28d = np.bincount(where[recent_active & (age < MONTH_DAYS)], minlength=n) > 0
    active_last_14 = np.bincount(where[recent_active & in_last_14], minlength=n) > 0
    active_before_14 = np.bincount(where[recent_active & ~in_last_14], minlength=n) > 0

    # A last_active_at later than what member_days holds still counts as activity on its day.
    use_seen = (last_seen != NO_DAY) & (last_seen <= end) & (last_seen > last_active)
    last_active = np.where(use_seen, last_seen, last_active)
    if last_active_before is not None and len(last_active_before):
        # Older than the loaded history (at least 120 days before as_of), so no window above can contain it.
        where_before = positions(ids, int_column(last_active_before, "member_id"))
        before = np.full(n, NO_DAY, dtype=np.int64)
        found = where_before >= 0
        np.maximum.at(before, where_before[found], day_numbers(last_active_before["day"])[found])
        last_active = np.where((last_active == NO_DAY) & (before <= end), before, last_active)
    seen_age = end - last_active
    active_28d |= use_seen & (seen_age < MONTH_DAYS)
    active_last_14 |= use_seen & (seen_age < AT_RISK_SILENT_DAYS)
    active_before_14 |= (
        use_seen & (seen_age >= AT_RISK_SILENT_DAYS) & (seen_age < AT_RISK_SILENT_DAYS + AT_RISK_BEFORE_DAYS)
    )

    days_since_active = np.where(last_active == NO_DAY, np.nan, (end - last_active).astype(np.float64))
    days_since_joined = np.where(joined == NO_DAY, np.nan, (end - joined).astype(np.float64))
    opt_out = members["leaderboard_opt_out"].fillna(False).astype(bool).to_numpy() if n else np.zeros(0, bool)
    table = pd.DataFrame(
        {
            "name": members["name"].astype("object").to_numpy() if n else np.empty(0, object),
            "platform": members["platform"].astype("object").to_numpy() if n else np.empty(0, object),
            "opt_out": opt_out,
            "is_member": is_member,
            "days_since_joined": days_since_joined,
            "days_since_active": days_since_active,
            "messages_28d": messages_28d,
            "active_28d": active_28d,
            "active_last_14": active_last_14,
            "active_before_14": active_before_14,
            "score": score,
        },
        index=pd.Index(ids, name="member_id"),
    )
    table["segment"] = assign_segments(table)
    return table


def assign_segments(table: pd.DataFrame) -> pd.Series[Any]:
    """The segment of each current member of a :func:`member_table` (None for former members).

    Precedence (the first matching rule wins):

    1. ``newcomers``: joined within the last 14 days (``days_since_joined <= 13``);
    2. ``at_risk``: active in ``as_of - 41 .. as_of - 14`` and not in ``as_of - 13 .. as_of``;
    3. ``dormant``: not active in the last 28 days (never-active members included);
    4. ``lurkers``: active in the last 28 days, but only by reacting (no message);
    5. ``champions``: among the remaining members (who all posted in the last 28 days and were active in the last
       14), the top 10 % by score (``ceil(0.1 × n)`` places, ties by ``member_id``) who posted at least 10
       messages in the last 28 days;
    6. ``regulars``: everyone else (posted in the last 28 days).

    Args:
        table: A :func:`member_table` frame (the ``segment`` column is ignored).

    Returns:
        Segment names aligned with ``table``'s index.
    """
    n = len(table)
    segment = np.full(n, None, dtype=object)
    unassigned = table["is_member"].to_numpy(dtype=np.bool_).copy()

    def take(rule: np.ndarray[Any, np.dtype[np.bool_]], name: str) -> None:
        hit = unassigned & rule
        segment[hit] = name
        unassigned[hit] = False

    joined_days = table["days_since_joined"].to_numpy(dtype=np.float64)
    active_28d = table["active_28d"].to_numpy(dtype=np.bool_)
    messages_28d = table["messages_28d"].to_numpy(dtype=np.int64)
    take(joined_days < NEWCOMER_DAYS, NEWCOMERS)  # NaN (join unknown) compares False
    take(
        table["active_before_14"].to_numpy(dtype=np.bool_) & ~table["active_last_14"].to_numpy(dtype=np.bool_), AT_RISK
    )
    take(~active_28d, DORMANT)
    take(messages_28d == 0, LURKERS)

    candidates = np.flatnonzero(unassigned)
    if len(candidates):
        places = math.ceil(CHAMPION_SHARE * len(candidates))
        scores = table["score"].to_numpy(dtype=np.float64)[candidates]
        member_ids = table.index.to_numpy(dtype=np.int64)[candidates]
        ranked = candidates[np.lexsort((member_ids, -scores))][:places]
        top = np.zeros(n, dtype=np.bool_)
        top[ranked] = True
        take(top & (messages_28d >= CHAMPION_MIN_MESSAGES), CHAMPIONS)
    take(np.ones(n, dtype=np.bool_), REGULARS)
    return pd.Series(segment, index=table.index, dtype="object")


def segment_counts(table: pd.DataFrame) -> dict[str, int]:
    """Members per segment, every segment listed (in precedence order), zeros included."""
    counts = table["segment"].value_counts()
    return {name: int(counts.get(name, 0)) for name in SEGMENTS}


def _statuses(table: pd.DataFrame) -> list[MemberStatus]:
    # Tens of thousands on a big community (every inactive and at-risk member): the columns are converted to
    # Python values once, whole, and each object built with positional arguments.
    days = table["days_since_active"].to_numpy(dtype=np.float64)
    never = np.isnan(days)
    days_active: list[int | None] = np.where(never, 0, days).astype(np.int64).tolist()
    for i in np.flatnonzero(never).tolist():
        days_active[i] = None
    return [
        MemberStatus(member_id, str(name), str(platform), active, score, None if segment is None else str(segment), n)
        for member_id, name, platform, active, score, segment, n in zip(
            table.index.to_numpy(dtype=np.int64).tolist(),
            table["name"].tolist(),
            table["platform"].tolist(),
            days_active,
            table["score"].to_numpy(dtype=np.float64).tolist(),
            table["segment"].tolist(),
            table["messages_28d"].to_numpy(dtype=np.int64).tolist(),
            strict=True,
        )
    ]


def inactive_members(table: pd.DataFrame, *, inactive_after_days: int = 14) -> list[MemberStatus]:
    """Current members with no activity for ``inactive_after_days`` days who joined at least that long ago.

    A member is inactive when ``days_since_active >= inactive_after_days`` (or they were never active) and
    ``days_since_joined >= inactive_after_days`` (a member whose join is unknown counts as joined long ago).
    Members who left are never listed.

    Args:
        table: A :func:`member_table` frame.
        inactive_after_days: The silence (and membership) length in days.

    Returns:
        The inactive members, the most recently active first (the easiest to win back), never-active members
        last; ties by ``member_id``.
    """
    days_active = table["days_since_active"]
    days_joined = table["days_since_joined"]
    silent = days_active.isna() | (days_active >= inactive_after_days)
    old_enough = days_joined.isna() | (days_joined >= inactive_after_days)
    chosen = table[table["is_member"] & silent & old_enough]
    order = np.lexsort(
        (
            chosen.index.to_numpy(dtype=np.int64),
            chosen["days_since_active"].fillna(np.inf).to_numpy(dtype=np.float64),
        )
    )
    return _statuses(chosen.iloc[order])


def at_risk_members(table: pd.DataFrame) -> list[MemberStatus]:
    """Current members active in ``as_of - 41 .. as_of - 14`` and silent in ``as_of - 13 .. as_of``.

    Args:
        table: A :func:`member_table` frame.

    Returns:
        The members at risk, highest engagement score first (the most valuable to win back); ties by ``member_id``.
    """
    mask = table["is_member"] & table["active_before_14"] & ~table["active_last_14"]
    chosen = table[mask]
    order = np.lexsort((chosen.index.to_numpy(dtype=np.int64), -chosen["score"].to_numpy(dtype=np.float64)))
    return _statuses(chosen.iloc[order])


def top_members(table: pd.DataFrame, n: int = 10) -> list[MemberStatus]:
    """The ``n`` current members with the highest engagement score, without those who opted out of leaderboards.

    Members with a score of 0 are never listed. Ties by ``member_id``.

    Args:
        table: A :func:`member_table` frame.
        n: How many members to list.

    Returns:
        Up to ``n`` members, highest score first.
    """
    if n <= 0:
        return []
    chosen = table[table["is_member"] & ~table["opt_out"] & (table["score"] > 0)]
    order = np.lexsort((chosen.index.to_numpy(dtype=np.int64), -chosen["score"].to_numpy(dtype=np.float64)))
    return _statuses(chosen.iloc[order[:n]])


def current_member_mask(members: pd.DataFrame, *, as_of: date, timezone: ZoneInfo) -> NDArray[np.bool_]:
    """Which rows of ``members`` are members on ``as_of``: joined by then (or join unknown) and not left by then."""
    if len(members) == 0:
        return np.zeros(0, dtype=np.bool_)
    end = day_number(as_of)
    joined = local_day_numbers(members["joined_at"], timezone)
    left = local_day_numbers(members["left_at"], timezone)
    return np.asarray(((joined == NO_DAY) | (joined <= end)) & ((left == NO_DAY) | (left > end)), dtype=np.bool_)


def current_members(members: pd.DataFrame, *, as_of: date, timezone: ZoneInfo) -> int:
    """Members on ``as_of``: joined by then (or join unknown) and not left by then (docs/metrics.md, "Members")."""
    return int(current_member_mask(members, as_of=as_of, timezone=timezone).sum())
