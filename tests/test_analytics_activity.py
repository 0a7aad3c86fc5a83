"""Activity metrics on small hand-built frames; expectations are computed by hand in the comments."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from analytics.activity import (
    ActivityRows,
    activity_summary,
    daily_activity,
    rolling_distinct_active,
    weekly_stats,
)
from analytics.frames import (
    CHANNEL_DAYS_COLUMNS,
    COMMUNITY_DAYS_COLUMNS,
    empty_frame,
)
from analytics.results import WeekStats
from analytics.weeks import last_complete_week_start, week_label, week_start, week_starts
from tests.analytics_frames import member_days, members

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+1 in winter, UTC+2 from the last Sunday of March


def community_days(*rows: tuple[str, int, int, int, int]) -> pd.DataFrame:
    """Rows of (day, messages, reactions, joins, leaves)."""
    if not rows:
        return empty_frame(COMMUNITY_DAYS_COLUMNS)
    frame = pd.DataFrame(list(rows), columns=list(COMMUNITY_DAYS_COLUMNS))
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def channel_days(*rows: tuple[int, str, int]) -> pd.DataFrame:
    """Rows of (channel_id, day, messages)."""
    if not rows:
        return empty_frame(CHANNEL_DAYS_COLUMNS)
    frame = pd.DataFrame([(c, f"channel-{c}", d, m) for c, d, m in rows], columns=list(CHANNEL_DAYS_COLUMNS))
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


# --- ISO weeks -----------------------------------------------------------------------------------------------------


def test_week_labels_use_the_iso_year() -> None:
    assert week_label(date(2019, 11, 25)) == "2019-W48"
    assert week_label(date(2021, 1, 1)) == "2020-W53"  # a Friday: the week of Monday 2020-12-28
    assert week_label(date(2021, 1, 4)) == "2021-W01"
    assert week_label(date(2024, 12, 30)) == "2025-W01"  # Monday of ISO week 1 of 2025
    assert week_start(date(2021, 1, 1)) == date(2020, 12, 28)


def test_last_complete_week_counts_a_sunday_as_the_end_of_its_week() -> None:
    # Sunday 2024-03-10 ends the week of Monday 2024-03-04; Wednesday 2024-03-20 is in a week still running.
    assert last_complete_week_start(date(2024, 3, 10)) == date(2024, 3, 4)
    assert last_complete_week_start(date(2024, 3, 20)) == date(2024, 3, 11)
    assert week_starts(date(2024, 3, 6), date(2024, 3, 20)) == [date(2024, 3, 4), date(2024, 3, 11), date(2024, 3, 18)]


# --- DAU / WAU / MAU ------------------------------------------------------------------------------------------------


def test_daily_activity_counts_distinct_active_members_in_rolling_windows() -> None:
    md = member_days(
        (1, "2024-03-01", 1, 0, 0, 0),
        (1, "2024-03-05", 2, 0, 0, 0),
        (2, "2024-03-05", 0, 0, 1, 0),  # reacting is activity
        (3, "2024-03-05", 0, 0, 0, 4),  # only receiving reactions is not
        (4, "2024-02-08", 1, 0, 0, 0),  # 26 days before 03-05 (2024 is a leap year)
    )
    days = daily_activity(md, date(2024, 3, 5), date(2024, 3, 12))
    assert [d.day for d in days] == [date(2024, 3, 5) + timedelta(days=i) for i in range(8)]
    # 03-05: DAU {1, 2}; WAU 02-28..03-05 {1, 2}; MAU 02-07..03-05 {1, 2, 4}
    # 03-06: DAU 0; WAU 02-29..03-06 {1, 2}; MAU 02-08..03-06 {1, 2, 4}
    # 03-07: DAU 0; WAU 03-01..03-07 {1, 2}; MAU 02-09..03-07 {1, 2}
    # 03-11: WAU 03-05..03-11 {1, 2}; 03-12: WAU 03-06..03-12 nobody; MAU still {1, 2}
    assert [(d.dau, d.wau, d.mau) for d in days] == [
        (2, 2, 3),
        (0, 2, 3),
        (0, 2, 2),
        (0, 2, 2),
        (0, 2, 2),
        (0, 2, 2),
        (0, 2, 2),
        (0, 0, 2),
    ]


def test_daily_activity_accepts_any_row_order_and_duplicate_rows() -> None:
    md = member_days(
        (1, "2024-03-05", 2, 0, 0, 0),
        (2, "2024-03-01", 1, 0, 0, 0),
        (1, "2024-03-05", 1, 0, 0, 0),
        (1, "2024-03-01", 1, 0, 0, 0),
    )
    day = daily_activity(md, date(2024, 3, 5), date(2024, 3, 5))[0]
    assert (day.dau, day.wau, day.mau) == (1, 2, 2)


def _naive_rolling(md: pd.DataFrame, start: date, end: date, window: int) -> list[int]:
    active = md[(md["messages"] + md["reactions_given"]) > 0]
    days = [d.date() for d in pd.to_datetime(active["day"])]
    ids = active["member_id"].tolist()
    out = []
    day = start
    while day <= end:
        first = day - timedelta(days=window - 1)
        out.append(len({m for m, d in zip(ids, days, strict=True) if first <= d <= day}))
        day += timedelta(days=1)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_rolling_distinct_active_equals_the_naive_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 400))
    base = np.datetime64("2024-01-01")
    md = pd.DataFrame(
        {
            "member_id": rng.integers(1, 30, n),
            "day": (base + rng.integers(0, 90, n).astype("timedelta64[D]")).astype("datetime64[ns]"),
            "messages": rng.integers(0, 3, n) * (rng.random(n) < 0.6),
            "replies": 0,
            "reactions_given": rng.integers(0, 2, n) * (rng.random(n) < 0.5),
            "reactions_received": rng.integers(0, 3, n),
        }
    )
    start, end = date(2024, 1, 15), date(2024, 4, 10)  # reaches past the data on both sides
    rows = ActivityRows.from_frame(md)
    for window in (1, 3, 7, 28):
        assert rolling_distinct_active(rows, start, end, window).tolist() == _naive_rolling(md, start, end, window)


# --- weekly totals --------------------------------------------------------------------------------------------------


def _weekly_fixture(tz: ZoneInfo = BERLIN) -> list[WeekStats]:
    md = member_days(
        (1, "2024-02-26", 2, 0, 0, 0),
        (1, "2024-02-27", 1, 0, 0, 0),  # member 1 writes 3 messages in W09: a communicator
        (2, "2024-02-28", 2, 0, 0, 0),  # 2 messages: active, not a communicator
        (3, "2024-03-05", 0, 0, 0, 3),  # receives reactions only: not active in W10
        (2, "2024-03-18", 0, 0, 1, 0),
        (1, "2024-03-19", 1, 0, 0, 0),
        (2, "2024-03-21", 5, 0, 0, 0),  # Thursday, after as_of: ignored
    )
    mem = members(
        (1, "2024-02-26 08:00", None),
        (2, "2024-02-25 23:30", None),  # Sunday 23:30 UTC is Monday 00:30 in Berlin: W09, not W08
        (3, "2024-03-05 10:00", None),  # left on 03-12 and rejoined on 03-19: joined_at stays the first join
        (4, "2024-03-03 23:30", None),  # never posted; Monday 03-04 in Berlin: W10
    )
    cd = community_days(
        ("2024-02-26", 2, 0, 1, 0),
        ("2024-02-27", 1, 0, 0, 0),
        ("2024-02-28", 2, 0, 0, 0),
        ("2024-03-12", 0, 0, 0, 1),
        ("2024-03-18", 0, 1, 0, 0),
        ("2024-03-19", 1, 0, 1, 0),
        ("2024-03-21", 5, 0, 0, 0),
    )
    ch = channel_days((7, "2024-02-26", 2), (8, "2024-02-27", 1), (7, "2024-02-28", 2), (8, "2024-03-19", 1))
    return weekly_stats(md, mem, cd, ch, start=date(2024, 2, 26), end=date(2024, 3, 20), timezone=tz)


def test_weekly_stats_lists_every_week_with_zero_weeks() -> None:
    weeks = _weekly_fixture()
    assert [w.week for w in weeks] == ["2024-W09", "2024-W10", "2024-W11", "2024-W12"]
    assert [w.start for w in weeks] == [date(2024, 2, 26), date(2024, 3, 4), date(2024, 3, 11), date(2024, 3, 18)]
    # W09: members 1 and 2 active, 1 communicator, 5 messages, channels 7 and 8.
    # W10, W11: nobody active (member 3 only received reactions); W12 so far (Mon..Wed): members 2 and 1.
    assert [(w.active, w.communicators, w.messages, w.reactions, w.active_channels) for w in weeks] == [
        (2, 1, 5, 0, 2),
        (0, 0, 0, 0, 0),
        (0, 0, 0, 0, 0),
        (2, 0, 1, 1, 1),  # the Thursday's 5 messages are after as_of
    ]


def test_weekly_joins_use_the_first_join_in_local_time_and_leaves_count_events() -> None:
    weeks = _weekly_fixture()
    # New: W09 members 1 and 2 (2 via the time zone), W10 members 3 and 4; the rejoin of member 3 is not new.
    assert [w.new for w in weeks] == [2, 2, 0, 0]
    assert [w.left for w in weeks] == [0, 0, 1, 0]


def test_weekly_joins_in_utc_fall_in_the_previous_week() -> None:
    weeks = _weekly_fixture(ZoneInfo("UTC"))
    # In UTC member 2 joined on Sunday 02-25 (W08, before the range) and member 4 on Sunday 03-03 (W09).
    assert [w.new for w in weeks] == [2, 1, 0, 0]


def test_iso_week_53_collects_the_days_around_new_year() -> None:
    md = member_days((1, "2020-12-31", 1, 0, 0, 0), (2, "2021-01-01", 2, 0, 0, 0), (1, "2021-01-05", 1, 0, 0, 0))
    mem = members((1, "2020-12-30 12:00", None), (2, "2021-01-03 23:30", None))  # Monday 01-04 in Berlin
    cd = community_days(("2020-12-31", 1, 0, 0, 0), ("2021-01-01", 2, 0, 0, 0), ("2021-01-05", 1, 0, 0, 0))
    weeks = weekly_stats(md, mem, cd, channel_days(), start=date(2020, 12, 28), end=date(2021, 1, 10), timezone=BERLIN)
    assert [(w.week, w.start) for w in weeks] == [("2020-W53", date(2020, 12, 28)), ("2021-W01", date(2021, 1, 4))]
    assert [(w.active, w.new, w.messages) for w in weeks] == [(2, 1, 3), (1, 1, 1)]


def test_weekly_stats_of_an_empty_community_are_zero_weeks() -> None:
    weeks = weekly_stats(
        member_days(),
        members(),
        community_days(),
        channel_days(),
        start=date(2024, 3, 4),
        end=date(2024, 3, 13),
        timezone=BERLIN,
    )
    assert [w.week for w in weeks] == ["2024-W10", "2024-W11"]
    assert all(
        (w.active, w.new, w.left, w.messages, w.reactions, w.communicators, w.active_channels) == (0,) * 7
        for w in weeks
    )


# --- summary --------------------------------------------------------------------------------------------------------


def test_activity_summary_over_the_trailing_28_days() -> None:
    md = member_days(
        (1, "2024-03-01", 5, 0, 0, 0),  # 03-01 is as_of - 27: inside
        (1, "2024-03-27", 3, 0, 0, 0),
        (2, "2024-03-28", 1, 0, 0, 0),
        (3, "2024-03-20", 0, 0, 2, 0),  # reactions only: active, 0 messages
        (4, "2024-03-10", 3, 0, 0, 0),
        (5, "2024-02-29", 9, 0, 0, 0),  # as_of - 28: outside
        (6, "2024-03-15", 0, 0, 0, 4),  # receives reactions only: not active
    )
    cd = community_days(
        ("2024-02-29", 9, 0, 0, 0),
        ("2024-03-01", 5, 0, 0, 0),
        ("2024-03-10", 3, 0, 0, 0),
        ("2024-03-20", 0, 2, 0, 0),
        ("2024-03-27", 3, 0, 0, 0),
        ("2024-03-28", 1, 0, 0, 0),
    )
    ch = channel_days((12, "2024-02-29", 9), (10, "2024-03-01", 5), (11, "2024-03-10", 3), (10, "2024-03-27", 3))
    s = activity_summary(md, cd, ch, as_of=date(2024, 3, 28))
    # DAU on 03-28: {2}; WAU 03-22..03-28: {1, 2}; MAU 03-01..03-28: {1, 2, 3, 4}
    assert (s.dau, s.wau, s.mau) == (1, 2, 4)
    # 5 active member-days in the 28 days: mean DAU 5/28, divided by MAU 4 = 5/112
    assert s.stickiness == pytest.approx(5 / 112)
    # messages: last 7 days (03-22..03-28) 3 + 1; 28 days 5 + 3 + 3 + 1 (the 9 of 02-29 are outside)
    assert (s.messages_7d, s.messages_28d, s.reactions_28d) == (4, 12, 2)
    # messages per active member: 1 -> 8, 2 -> 1, 3 -> 0, 4 -> 3; communicators (>= 3): members 1 and 4
    assert s.communicators_28d == 2
    assert s.messages_per_active_member_mean == pytest.approx(3.0)  # 12 / 4
    # population std: deviations 5, -2, -3, 0 -> (25 + 4 + 9 + 0) / 4 = 9.5
    assert s.messages_per_active_member_std == pytest.approx(9.5**0.5)
    assert s.active_channels_28d == 2  # channels 10 and 11; 12 only posted on 02-29


def test_activity_summary_of_an_empty_community() -> None:
    s = activity_summary(member_days(), community_days(), channel_days(), as_of=date(2024, 3, 28))
    assert (s.dau, s.wau, s.mau, s.messages_7d, s.messages_28d, s.communicators_28d) == (0, 0, 0, 0, 0, 0)
    assert s.stickiness is None
    assert s.messages_per_active_member_mean is None
    assert s.messages_per_active_member_std is None


@pytest.mark.parametrize("seed", range(4))
def test_weekly_active_and_communicators_equal_the_naive_count(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n = 500
    base = np.datetime64("2024-01-01")
    md = pd.DataFrame(
        {
            "member_id": rng.integers(1, 40, n),
            "day": (base + rng.integers(0, 70, n).astype("timedelta64[D]")).astype("datetime64[ns]"),
            "messages": rng.integers(0, 3, n),
            "replies": 0,
            "reactions_given": rng.integers(0, 2, n),
            "reactions_received": 0,
        }
    )
    start, end = date(2024, 1, 10), date(2024, 3, 6)  # Wednesday of W02 .. Wednesday of W10
    weeks = weekly_stats(md, members(), community_days(), channel_days(), start=start, end=end, timezone=BERLIN)
    for w in weeks:
        in_week = md[
            (md["day"] >= pd.Timestamp(w.start)) & (md["day"] <= pd.Timestamp(min(w.start + timedelta(6), end)))
        ]
        active = in_week[(in_week["messages"] + in_week["reactions_given"]) > 0]
        assert w.active == active["member_id"].nunique()
        assert w.communicators == int((in_week.groupby("member_id")["messages"].sum() >= 3).sum())


@pytest.mark.parametrize("unit", ["datetime64[ns]", "datetime64[us]", "datetime64[s]", "date objects"])
def test_day_columns_in_any_resolution_or_as_dates(unit: str) -> None:
    md = member_days((1, "2024-03-01", 1, 0, 0, 0), (2, "2024-03-05", 1, 0, 0, 0))
    md["day"] = md["day"].dt.date if unit == "date objects" else md["day"].astype(unit)
    day = daily_activity(md, date(2024, 3, 5), date(2024, 3, 5))[0]
    assert (day.dau, day.wau, day.mau) == (1, 2, 2)
