"""The report: every metric of one community as of one day, assembled from the metric modules."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, timedelta

import numpy as np
import pandas as pd

from analytics.activity import (
    MONTH_DAYS,
    ActivityRows,
    activity_summary,
    daily_activity,
    sort_by_day,
    weekly_stats,
)
from analytics.channels import channel_activity
from analytics.cohorts import activation, cohort_retention
from analytics.commerce import commerce_summary
from analytics.frames import CommunityFrames
from analytics.growth import member_growth
from analytics.members import (
    at_risk_members,
    current_members,
    inactive_members,
    member_table,
    segment_counts,
    top_members,
)
from analytics.results import ChannelActivity, Report
from analytics.rhythm import hour_of_week
from analytics.subscriptions import subscription_summary
from analytics.weeks import last_complete_week_start, week_start

SUNDAY = 6
ACTIVATION_WEEKS = 4
"""The report's activation rate pools the joiners of the last four complete weeks."""

LOOKBACK_DAYS = 120
"""Days of daily data before ``as_of`` a report reads at least: the at-risk window (42 days) and the engagement
score's decay (14-day half-life: a day 120 days back weighs under 0.3 %). With ``as_of`` itself that is 121 days."""


def range_start(as_of: date, weeks: int) -> date:
    """The first day of a report of ``weeks`` ISO weeks up to ``as_of``: the Monday ``weeks - 1`` weeks before."""
    return week_start(as_of) - timedelta(weeks=weeks - 1)


def history_start(as_of: date, weeks: int) -> date:
    """The first local day of daily data a report of ``weeks`` ISO weeks up to ``as_of`` needs.

    That is the earlier of ``as_of - LOOKBACK_DAYS`` and the range's first Monday minus 27 days: the 28-day MAU
    (and 7-day WAU) of the range's first days counts activity from before the range.

    Args:
        as_of: The report day.
        weeks: The report's number of ISO weeks (at least 1).

    Returns:
        The first day to load.
    """
    first = range_start(as_of, weeks)
    return min(first - timedelta(days=MONTH_DAYS - 1), as_of - timedelta(days=LOOKBACK_DAYS))


def build_report(
    frames: CommunityFrames,
    *,
    weeks: int = 12,
    inactive_after_days: int = 14,
    top_n: int = 10,
    cohort_weeks: int | None = None,
    compare_through: date | None = None,
    table: pd.DataFrame | None = None,
) -> Report:
    """Build the report of ``frames.community`` as of ``frames.as_of``.

    The range is ``weeks`` ISO weeks ending with the week containing ``as_of`` (that last week is partial unless
    ``as_of`` is a Sunday, and counts the days up to ``as_of``). ``weekly`` lists every week of the range, zero
    weeks included; ``daily`` every day from the range's first Monday to ``as_of``; ``cohorts`` the join weeks of
    the last ``cohort_weeks`` weeks (default: the same range) that have joiners. ``commerce`` is None when the
    purchases frame is empty (no ledger at all). ``growth`` lists every day of the range; ``hour_of_week`` and
    ``channels`` cover the range when their frames were loaded (for channels: for this range), else are empty.

    Args:
        frames: The community's frames.
        weeks: How many ISO weeks the report covers (at least 1).
        inactive_after_days: Days of silence (and of membership) after which a member is inactive.
        top_n: How many top members to list.
        cohort_weeks: How many join weeks of cohorts to show (default: ``weeks``).
        compare_through: The last day the week in progress is compared over (default ``as_of``): the last
            complete day with data, so that an unfinished or unmeasured day is never compared.
        table: The member table of these frames (``analytics.members.member_table`` of ``frames.member_days``,
            ``frames.members``, ``as_of`` and ``frames.last_active_before``), when the caller built it already
            (the dashboard shows it too); computed here otherwise.

    Returns:
        The :class:`Report`.
    """
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    if cohort_weeks is not None and cohort_weeks < 1:
        raise ValueError("cohort_weeks must be at least 1")
    if inactive_after_days < 1:
        raise ValueError("inactive_after_days must be at least 1")
    as_of, tz = frames.as_of, frames.timezone
    last_monday = week_start(as_of)
    start = range_start(as_of, weeks)
    cohort_start = last_monday - timedelta(weeks=(cohort_weeks or weeks) - 1)
    last_complete = last_complete_week_start(as_of)

    rows = ActivityRows.from_frame(frames.member_days)
    if table is None:
        table = member_table(
            rows, frames.members, as_of=as_of, timezone=tz, last_active_before=frames.last_active_before
        )
    activation_rate, activation_eligible = activation(
        rows,
        frames.members,
        timezone=tz,
        first_week=last_complete - timedelta(weeks=ACTIVATION_WEEKS - 1),
        last_week=last_complete,
        as_of=as_of,
    )
    weekly = tuple(
        weekly_stats(
            rows,
            frames.members,
            frames.community_days,
            frames.channel_days,
            start=start,
            end=as_of,
            timezone=tz,
        )
    )
    # The week in progress is compared with the same weekdays of the week before, never with a whole week, and
    # only over its measured days (up to compare_through: not an unfinished day, not after the data ends).
    through = min(as_of, compare_through or as_of)
    so_far = previous_same_days = None
    if through >= last_monday and through.weekday() != SUNDAY:
        so_far, previous_same_days = (
            weekly_stats(
                rows,
                frames.members,
                frames.community_days,
                frames.channel_days,
                start=monday,
                end=monday + timedelta(days=(through - last_monday).days),
                timezone=tz,
            )[0]
            for monday in (last_monday, last_monday - timedelta(weeks=1))
        )
    return Report(
        community=frames.community,
        timezone=tz.key,
        as_of=as_of,
        members=current_members(frames.members, as_of=as_of, timezone=tz),
        weekly=weekly,
        daily=tuple(daily_activity(rows, start, as_of)),
        summary=activity_summary(rows, frames.community_days, frames.channel_days, as_of=as_of),
        cohorts=tuple(cohort_retention(rows, frames.members, timezone=tz, start=cohort_start, as_of=as_of)),
        activation_rate=activation_rate,
        activation_eligible=activation_eligible,
        inactive=tuple(inactive_members(table, inactive_after_days=inactive_after_days)),
        at_risk=tuple(at_risk_members(table)),
        segments=segment_counts(table),
        top_members=tuple(top_members(table, top_n)),
        commerce=(
            commerce_summary(
                frames.purchases, frames.members, _buyer_history(frames, rows), timezone=tz, start=start, as_of=as_of
            )
            if len(frames.purchases)
            else None
        ),
        week_so_far=so_far,
        previous_week_same_days=previous_same_days,
        hour_of_week=() if frames.hourly is None else tuple(hour_of_week(frames.hourly, start, as_of)),
        channels=_channels(frames, start),
        growth=tuple(member_growth(frames.members, frames.community_days, start=start, end=as_of, timezone=tz)),
        subscriptions=(
            None
            if frames.subscription_periods is None
            else subscription_summary(frames.subscription_periods, timezone=tz, start=start, as_of=as_of)
        ),
    )


def _channels(frames: CommunityFrames, start: date) -> tuple[ChannelActivity, ...]:
    """The range's channels, when their active members were loaded for exactly this range."""
    if frames.channels is None or frames.channel_members is None or frames.channel_members_start != start:
        return ()
    return tuple(
        channel_activity(frames.channel_days, frames.channels, frames.channel_members, start=start, end=frames.as_of)
    )


def _buyer_history(frames: CommunityFrames, rows: ActivityRows) -> ActivityRows:
    """The activity commerce looks at: the loaded days, plus buyers' older days when a purchase predates them."""
    if frames.buyer_days is None or not len(frames.buyer_days):
        return rows
    # Joined array by array: no frame of a million rows is concatenated and converted again. The buyers' days come
    # before the loaded ones (``storage.report_frames`` reads them so), and the rows stay sorted by day.
    older = ActivityRows.from_frame(frames.buyer_days)
    joined = ActivityRows(
        *(np.concatenate([getattr(older, f.name), getattr(rows, f.name)]) for f in fields(ActivityRows))
    )
    order = sort_by_day(joined.day)
    return joined if order is None else joined.take(order)
