"""The assembled report: ranges, zero weeks, empty communities; expectations are computed by hand."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from analytics.frames import (
    CHANNEL_DAYS_COLUMNS,
    COMMUNITY_DAYS_COLUMNS,
    MEMBER_DAYS_COLUMNS,
    MEMBERS_COLUMNS,
    PURCHASES_COLUMNS,
    CommunityFrames,
    empty_frame,
)
from analytics.members import SEGMENTS
from analytics.report import build_report

BERLIN = ZoneInfo("Europe/Berlin")
AS_OF = date(2024, 3, 27)  # Wednesday of 2024-W13


def empty_frames(as_of: date = AS_OF) -> CommunityFrames:
    return CommunityFrames(
        community="fresh",
        timezone=BERLIN,
        as_of=as_of,
        member_days=empty_frame(MEMBER_DAYS_COLUMNS),
        members=empty_frame(MEMBERS_COLUMNS),
        community_days=empty_frame(COMMUNITY_DAYS_COLUMNS),
        channel_days=empty_frame(CHANNEL_DAYS_COLUMNS),
        purchases=empty_frame(PURCHASES_COLUMNS),
    )


def small_frames(as_of: date = AS_OF) -> CommunityFrames:
    md = pd.DataFrame(
        [
            (1, "2024-03-05", 5, 0, 0, 0),  # ann
            (2, "2024-03-12", 3, 1, 0, 0),  # bob: 3 messages on his join day: activated
            (2, "2024-03-25", 20, 0, 0, 2),
            (1, "2024-03-26", 4, 0, 1, 0),
        ],
        columns=list(MEMBER_DAYS_COLUMNS),
    )
    md["day"] = pd.to_datetime(md["day"]).astype("datetime64[ns]")
    mem = pd.DataFrame(
        {
            "member_id": [1, 2, 3, 4],
            "name": ["ann", "bob", "cy", "dee"],
            "platform": ["discord", "discord", "telegram", "telegram"],
            "joined_at": pd.to_datetime(
                ["2024-01-10 10:00", "2024-03-12 10:00", "2024-02-01 10:00", "2024-01-10 10:00"], utc=True
            ),
            "left_at": pd.to_datetime([None, None, None, "2024-03-01 10:00"], utc=True),
            "first_active_at": pd.NaT,
            "last_active_at": pd.NaT,
            "leaderboard_opt_out": [False, True, False, False],
        }
    )
    cd = pd.DataFrame(
        [
            ("2024-03-01", 0, 0, 0, 1),
            ("2024-03-05", 5, 0, 0, 0),
            ("2024-03-12", 3, 0, 1, 0),
            ("2024-03-25", 20, 0, 0, 0),
            ("2024-03-26", 4, 1, 0, 0),
        ],
        columns=list(COMMUNITY_DAYS_COLUMNS),
    )
    cd["day"] = pd.to_datetime(cd["day"])
    ch = pd.DataFrame(
        [(1, "general", "2024-03-05", 5), (1, "general", "2024-03-12", 3), (2, "help", "2024-03-25", 20)],
        columns=list(CHANNEL_DAYS_COLUMNS),
    )
    ch["day"] = pd.to_datetime(ch["day"])
    purchases = pd.DataFrame(
        {
            "purchase_id": [1],
            "member_id": pd.array([2], dtype="Int64"),
            "course": ["py"],
            "title": ["Python"],
            "amount": [50.0],
            "currency": ["EUR"],
            "purchased_at": pd.to_datetime(["2024-03-13 10:00"], utc=True),
            "refunded_at": pd.to_datetime([None], utc=True),
        }
    )
    return CommunityFrames("small", BERLIN, as_of, md, mem, cd, ch, purchases)


def test_a_brand_new_community_gets_a_valid_report_of_zeros() -> None:
    report = build_report(empty_frames())
    assert (report.community, report.timezone, report.as_of, report.members) == ("fresh", "Europe/Berlin", AS_OF, 0)
    # 12 weeks ending with W13: W02 (Monday 01-08) .. W13, all zero.
    assert [w.week for w in report.weekly] == [f"2024-W{n:02d}" for n in range(2, 14)]
    assert all(w.active == w.new == w.left == w.messages == w.communicators == 0 for w in report.weekly)
    # Daily from Monday 01-08 to 03-27: 24 + 29 + 27 = 80 days (2024 is a leap year).
    assert len(report.daily) == 80
    assert report.daily[0].day == date(2024, 1, 8)
    assert report.daily[-1].day == AS_OF
    assert all(d.dau == d.wau == d.mau == 0 for d in report.daily)
    assert report.summary.stickiness is None
    assert report.summary.messages_per_active_member_mean is None
    assert (report.cohorts, report.inactive, report.at_risk, report.top_members) == ((), (), (), ())
    assert report.activation_rate is None
    assert report.segments == dict.fromkeys(SEGMENTS, 0)
    assert report.commerce is None


def test_the_report_covers_every_week_of_the_range() -> None:
    report = build_report(small_frames(), weeks=4)
    assert [(w.week, w.start) for w in report.weekly] == [
        ("2024-W10", date(2024, 3, 4)),
        ("2024-W11", date(2024, 3, 11)),
        ("2024-W12", date(2024, 3, 18)),  # nobody active: listed with zeros
        ("2024-W13", date(2024, 3, 25)),  # partial: Monday to Wednesday
    ]
    # W10: ann; W11: bob (joined, 3 messages); W12: nobody; W13: bob (03-25) and ann (03-26)
    assert [(w.active, w.new, w.messages, w.communicators) for w in report.weekly] == [
        (1, 0, 5, 1),
        (1, 1, 3, 1),
        (0, 0, 0, 0),
        (2, 0, 24, 2),
    ]
    assert [d.day for d in report.daily] == [date(2024, 3, 4) + timedelta(days=i) for i in range(24)]
    assert report.daily[-1].mau == 2  # 02-29..03-27: ann and bob


def test_a_week_in_progress_comes_with_the_same_days_of_the_week_before() -> None:
    # As of Wednesday 2024-03-13 (W11 so far: Mon-Wed). The same days of W10 are 03-04..03-06: ann's 5 messages on
    # Tuesday 03-05 count; nothing of W10's Thursday to Sunday would.
    report = build_report(small_frames(date(2024, 3, 13)), weeks=2)
    same = report.previous_week_same_days
    assert same is not None and report.week_so_far == report.weekly[-1]
    assert (same.week, same.start, same.active, same.messages) == ("2024-W10", date(2024, 3, 4), 1, 5)
    assert (report.weekly[-1].active, report.weekly[-1].messages) == (1, 3)
    report = build_report(small_frames(date(2024, 3, 6)), weeks=2)  # Wednesday 03-06: W09's Mon-Wed were empty
    assert report.previous_week_same_days is not None and report.previous_week_same_days.messages == 0
    assert build_report(small_frames(date(2024, 3, 17)), weeks=2).previous_week_same_days is None  # a Sunday
    # Measured only through Monday 03-11 (data ends, or Tuesday is today): bob's 3 messages on Tuesday 03-12 are
    # not compared, and neither is ann's Tuesday 03-05 of the week before.
    report = build_report(small_frames(date(2024, 3, 13)), weeks=2, compare_through=date(2024, 3, 11))
    assert report.week_so_far is not None and report.previous_week_same_days is not None
    assert (report.week_so_far.messages, report.previous_week_same_days.messages) == (0, 0)
    assert report.weekly[-1].messages == 3  # the weekly table still counts the week to as_of
    report = build_report(small_frames(date(2024, 3, 13)), weeks=2, compare_through=date(2024, 3, 10))
    assert report.week_so_far is None and report.previous_week_same_days is None  # no measured day this week


def test_the_report_lists_members_segments_and_cohorts() -> None:
    report = build_report(small_frames(), weeks=4)
    assert report.members == 3  # dee left on 03-01
    # cy (never active, joined 02-01) is inactive and dormant; bob (23 messages, top score of 2 candidates:
    # ceil(0.2) = 1 place) is the champion; ann a regular.
    assert [m.name for m in report.inactive] == ["cy"]
    assert report.inactive[0].days_since_active is None
    assert report.at_risk == ()
    assert report.segments == {
        "newcomers": 0,
        "at_risk": 0,
        "dormant": 1,
        "lurkers": 0,
        "champions": 1,
        "regulars": 1,
    }
    assert sum(report.segments.values()) == report.members
    # bob opted out of leaderboards; cy has no score.
    assert [m.name for m in report.top_members] == ["ann"]
    # Cohorts W10..W13: only W11 (bob). Observed weeks: W11 (active) and W12 (silent). Counts stay exact (1).
    assert [(c.cohort, c.size, c.retention, c.activation_rate) for c in report.cohorts] == [
        ("2024-W11", 1, (1.0, 0.0), 1.0)
    ]
    assert report.activation_rate == 1.0  # joiners of W09..W12: bob
    assert report.commerce is not None
    assert [(c.course, c.sales, c.net) for c in report.commerce.courses] == [("py", 1, 50.0)]
    assert report.commerce.conversion == pytest.approx(1 / 4)  # bob among 4 members ever (dee included)


def test_cohort_weeks_limits_the_cohorts_shown() -> None:
    assert build_report(small_frames(), weeks=4, cohort_weeks=1).cohorts == ()  # W13 has no joiner
    assert [c.cohort for c in build_report(small_frames(), weeks=1, cohort_weeks=3).cohorts] == ["2024-W11"]


def test_on_a_sunday_the_last_week_is_complete() -> None:
    report = build_report(small_frames(date(2024, 3, 24)), weeks=2)
    assert [w.week for w in report.weekly] == ["2024-W11", "2024-W12"]
    assert report.daily[-1].day == date(2024, 3, 24)
    # W12 is complete on Sunday 03-24: bob's cohort has weeks 0 and 1.
    assert report.cohorts[0].retention == (1.0, 0.0)


def test_the_report_is_plain_data() -> None:
    report = build_report(small_frames(), weeks=4)
    as_dict = dataclasses.asdict(report)
    assert as_dict["weekly"][0]["week"] == "2024-W10"
    assert as_dict["commerce"]["courses"][0]["course"] == "py"


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="weeks"):
        build_report(empty_frames(), weeks=0)
    with pytest.raises(ValueError, match="cohort_weeks"):
        build_report(empty_frames(), cohort_weeks=0)
    with pytest.raises(ValueError, match="inactive_after_days"):
        build_report(empty_frames(), inactive_after_days=0)
