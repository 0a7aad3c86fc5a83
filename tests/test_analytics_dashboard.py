"""Hour of week, channels and member growth on small hand-built frames; expectations are computed by hand."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd

from analytics.channels import channel_activity
from analytics.frames import (
    CHANNEL_DAYS_COLUMNS,
    CHANNEL_MEMBERS_COLUMNS,
    CHANNELS_COLUMNS,
    COMMUNITY_DAYS_COLUMNS,
    HOURLY_COLUMNS,
    MEMBER_DAYS_COLUMNS,
    PURCHASES_COLUMNS,
    CommunityFrames,
    empty_frame,
)
from analytics.growth import member_growth
from analytics.render import render_json
from analytics.report import build_report
from analytics.results import ChannelActivity, GrowthDay
from analytics.rhythm import hour_of_week
from tests import analytics_frames as af

BERLIN = ZoneInfo("Europe/Berlin")


def _frame(rows: list[tuple[object, ...]], columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    if "day" in frame:
        frame["day"] = pd.to_datetime(frame["day"]).astype("datetime64[ns]")
    return frame


# --- hour of week ----------------------------------------------------------------------------------------------


def test_hour_of_week_sums_each_weekday_and_hour_over_the_range_only() -> None:
    hourly = _frame(
        [
            ("2024-10-20", 23, 9, 9),  # Sunday before the range: not counted
            ("2024-10-21", 9, 3, 1),  # Monday 09:00
            ("2024-10-28", 9, 2, 0),  # the next Monday 09:00: same cell
            ("2024-10-27", 2, 5, 4),  # Sunday 02:00 (the clocks went back: both real hours are in it)
            ("2024-11-03", 23, 1, 1),  # after the range: not counted
        ],
        HOURLY_COLUMNS,
    )
    cells = hour_of_week(hourly, date(2024, 10, 21), date(2024, 11, 2))
    assert len(cells) == 168
    assert [(c.weekday, c.hour) for c in cells[:2]] == [(0, 0), (0, 1)]
    assert (cells[-1].weekday, cells[-1].hour) == (6, 23)
    busy = {(c.weekday, c.hour): (c.messages, c.reactions) for c in cells if c.messages or c.reactions}
    assert busy == {(0, 9): (5, 1), (6, 2): (5, 4)}


def test_hour_of_week_of_no_data_is_168_zero_cells() -> None:
    cells = hour_of_week(empty_frame(HOURLY_COLUMNS), date(2024, 10, 21), date(2024, 10, 27))
    assert len(cells) == 168
    assert all(c.messages == 0 and c.reactions == 0 for c in cells)


# --- channels --------------------------------------------------------------------------------------------------


def _channels() -> pd.DataFrame:
    return _frame(
        [(1, "general", None), (2, "help", None), (3, "how do I log in?", "help"), (4, "quiet", None)],
        CHANNELS_COLUMNS,
    )


def test_channels_rank_by_messages_with_threads_under_their_parent_and_a_weekly_trend() -> None:
    # Range: Monday 2024-03-11 .. Sunday 2024-03-24 (two ISO weeks, 14 days); the previous range is 02-26 .. 03-10.
    days = _frame(
        [
            (1, "general", "2024-02-25", 50),  # before the previous range: not counted anywhere
            (1, "general", "2024-02-26", 7),  # previous range
            (1, "general", "2024-03-10", 3),  # previous range, its last day
            (1, "general", "2024-03-11", 4),  # week 1
            (1, "general", "2024-03-24", 6),  # week 2, the range's last day
            (2, "help", "2024-03-12", 2),
            (2, "help", "2024-03-19", 1),
            (3, "how do I log in?", "2024-03-20", 3),  # a thread in help
            (4, "quiet", "2024-03-01", 9),  # only in the previous range: not listed
        ],
        CHANNEL_DAYS_COLUMNS,
    )
    active = _frame([(1, 3), (2, 2), (3, 2)], CHANNEL_MEMBERS_COLUMNS)
    result = channel_activity(days, _channels(), active, start=date(2024, 3, 11), end=date(2024, 3, 24))
    assert result == [
        ChannelActivity(
            1, "general", None, messages=10, active_members=3, previous_messages=10, weekly_messages=(4, 6)
        ),
        ChannelActivity(2, "help", None, messages=3, active_members=2, previous_messages=0, weekly_messages=(2, 1)),
        ChannelActivity(3, "how do I log in?", "help", 3, 2, previous_messages=0, weekly_messages=(0, 3)),
    ]


def test_a_partial_last_week_has_its_own_trend_point() -> None:
    # Range Monday 03-11 .. Wednesday 03-20: 10 days, weeks W11 (whole) and W12 (three days).
    days = _frame([(2, "help", "2024-03-01", 4), (2, "help", "2024-03-18", 1)], CHANNEL_DAYS_COLUMNS)
    active = _frame([(2, 1)], CHANNEL_MEMBERS_COLUMNS)
    (help_channel,) = channel_activity(days, _channels(), active, start=date(2024, 3, 11), end=date(2024, 3, 20))
    assert help_channel.weekly_messages == (0, 1)
    assert help_channel.previous_messages == 4  # 03-01 .. 03-10 is the previous 10 days


# --- growth ----------------------------------------------------------------------------------------------------


def _growth_members() -> pd.DataFrame:
    # Times are UTC; Berlin is UTC+1 in March before the 31st.
    return af.members(
        (1, "2024-01-01 10:00", None),  # a long-standing member
        (2, "2024-03-12 09:00", "2024-03-14 18:00"),  # joined Tuesday, left Thursday, gone
        (3, "2024-02-01 10:00", None),  # left 03-13 and rejoined 03-15: the frame knows no leave (returned)
        (4, "2024-03-15 23:30", None),  # 23:30 UTC is Saturday 00:30 in Berlin: joins on 03-16
        (5, None, None),  # join unknown (no join, activity or first sighting): counted throughout
    )


def _growth_days() -> pd.DataFrame:
    # Leave events: member 2 on 03-14, member 3 on 03-13 (before rejoining).
    return _frame([("2024-03-13", 0, 0, 1, 1), ("2024-03-14", 0, 0, 0, 1)], COMMUNITY_DAYS_COLUMNS)


def test_growth_counts_joins_leaves_and_members_per_local_day() -> None:
    growth = member_growth(
        _growth_members(), _growth_days(), start=date(2024, 3, 11), end=date(2024, 3, 17), timezone=BERLIN
    )
    assert growth == [
        GrowthDay(date(2024, 3, 11), joins=0, leaves=0, members=3),  # 1, 3, 5
        GrowthDay(date(2024, 3, 12), joins=1, leaves=0, members=4),  # + 2
        GrowthDay(date(2024, 3, 13), joins=0, leaves=1, members=4),  # 3 left but came back: still a member
        GrowthDay(date(2024, 3, 14), joins=0, leaves=1, members=3),  # 2 left for good
        GrowthDay(date(2024, 3, 15), joins=0, leaves=0, members=3),
        GrowthDay(date(2024, 3, 16), joins=1, leaves=0, members=4),  # 4, by the local day
        GrowthDay(date(2024, 3, 17), joins=0, leaves=0, members=4),
    ]


def test_growth_agrees_with_the_reports_members_and_weekly_joins_and_leaves() -> None:
    as_of = date(2024, 3, 17)
    frames = CommunityFrames(
        community="small",
        timezone=BERLIN,
        as_of=as_of,
        member_days=empty_frame(MEMBER_DAYS_COLUMNS),
        members=_growth_members(),
        community_days=_growth_days(),
        channel_days=empty_frame(CHANNEL_DAYS_COLUMNS),
        purchases=empty_frame(PURCHASES_COLUMNS),
    )
    report = build_report(frames, weeks=2)
    assert [g.day for g in report.growth] == [date(2024, 3, 4 + i) for i in range(14)]
    assert report.growth[-1].members == report.members == 4
    for i, week in enumerate(report.weekly):
        days = report.growth[7 * i : 7 * i + 7]
        assert (sum(g.joins for g in days), sum(g.leaves for g in days)) == (week.new, week.left)
    # Without hourly or channel frames, those sections are empty rather than wrong.
    assert (report.hour_of_week, report.channels) == ((), ())


def test_channels_are_left_out_when_their_members_were_counted_for_another_range() -> None:
    as_of = date(2024, 3, 24)
    frames = CommunityFrames(
        community="small",
        timezone=BERLIN,
        as_of=as_of,
        member_days=empty_frame(MEMBER_DAYS_COLUMNS),
        members=af.members(),
        community_days=empty_frame(COMMUNITY_DAYS_COLUMNS),
        channel_days=_frame([(1, "general", "2024-03-20", 2)], CHANNEL_DAYS_COLUMNS),
        purchases=empty_frame(PURCHASES_COLUMNS),
        channels=_channels(),
        channel_members=_frame([(1, 1)], CHANNEL_MEMBERS_COLUMNS),
        channel_members_start=date(2024, 3, 18),
    )
    assert [c.name for c in build_report(frames, weeks=1).channels] == ["general"]
    assert build_report(frames, weeks=2).channels == ()  # counted from 03-18, but this range starts 03-11
    shifted = dataclasses.replace(frames, channel_members_start=date(2024, 3, 11))
    assert [c.weekly_messages for c in build_report(shifted, weeks=2).channels] == [(0, 2)]


def test_the_report_json_carries_the_three_new_sections() -> None:
    as_of = date(2024, 3, 17)
    frames = CommunityFrames(
        community="small",
        timezone=BERLIN,
        as_of=as_of,
        member_days=empty_frame(MEMBER_DAYS_COLUMNS),
        members=_growth_members(),
        community_days=_growth_days(),
        channel_days=_frame([(3, "how do I log in?", "2024-03-15", 2)], CHANNEL_DAYS_COLUMNS),
        purchases=empty_frame(PURCHASES_COLUMNS),
        hourly=_frame([("2024-03-15", 20, 2, 1)], HOURLY_COLUMNS),
        channels=_channels(),
        channel_members=_frame([(3, 1)], CHANNEL_MEMBERS_COLUMNS),
        channel_members_start=date(2024, 3, 11),
    )
    data = json.loads(render_json(build_report(frames, weeks=1)))
    assert data["channels"] == [
        {
            "channel_id": 3,
            "name": "how do I log in?",
            "parent": "help",
            "messages": 2,
            "active_members": 1,
            "previous_messages": 0,
            "weekly_messages": [2],
        }
    ]
    friday_8pm = [c for c in data["hour_of_week"] if c["messages"]]
    assert friday_8pm == [{"weekday": 4, "hour": 20, "messages": 2, "reactions": 1}]
    assert len(data["hour_of_week"]) == 168
    assert data["growth"][-1] == {"day": "2024-03-17", "joins": 0, "leaves": 0, "members": 4}
