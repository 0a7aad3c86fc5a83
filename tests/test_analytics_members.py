"""Engagement score, segments, inactive, at-risk and top members; expectations are computed by hand."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from analytics.frames import MEMBERS_COLUMNS, empty_frame
from analytics.members import (
    SEGMENTS,
    at_risk_members,
    current_members,
    engagement_scores,
    inactive_members,
    member_table,
    segment_counts,
    top_members,
)
from tests.analytics_frames import member_days

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+2 in summer
AS_OF = date(2024, 6, 30)  # a Sunday. Last 14 days: 06-17..06-30; the 28 before: 05-20..06-16; 28 days: 06-03..06-30


def members(*rows: dict[str, object]) -> pd.DataFrame:
    """Rows with member_id, name and optionally joined_at, left_at, last_active_at (UTC strings), opt_out."""
    if not rows:
        return empty_frame(MEMBERS_COLUMNS)
    return pd.DataFrame(
        {
            "member_id": [r["member_id"] for r in rows],
            "name": [r["name"] for r in rows],
            "platform": "discord",
            "joined_at": pd.to_datetime([r.get("joined_at", "2024-01-01 12:00") for r in rows], utc=True),
            "left_at": pd.to_datetime([r.get("left_at") for r in rows], utc=True),
            "first_active_at": pd.NaT,
            "last_active_at": pd.to_datetime([r.get("last_active_at") for r in rows], utc=True),
            "leaderboard_opt_out": [bool(r.get("opt_out", False)) for r in rows],
        }
    )


COMMUNITY = members(
    {"member_id": 1, "name": "newbie", "joined_at": "2024-06-25 10:00"},
    {"member_id": 2, "name": "newbie_active", "joined_at": "2024-06-17 10:00"},  # 13 days ago: still a newcomer
    {"member_id": 3, "name": "fading"},
    {"member_id": 4, "name": "gone"},
    {"member_id": 5, "name": "lurker"},
    {"member_id": 6, "name": "quiet_old"},
    {"member_id": 7, "name": "left", "left_at": "2024-06-01 09:00"},
    {"member_id": 8, "name": "star"},
    {"member_id": 9, "name": "regular"},
    {"member_id": 10, "name": "opted", "opt_out": True},
    {"member_id": 11, "name": "edge13"},
    {"member_id": 12, "name": "before_edge"},
)
ACTIVITY = member_days(
    (2, "2024-06-18", 3, 0, 0, 0),  # score 3 * 2^(-12/14)
    (3, "2024-06-16", 5, 0, 0, 0),  # as_of - 14: the last activity; score 5 * 0.5 = 2.5
    (4, "2024-05-19", 2, 0, 0, 0),  # as_of - 42: before the at-risk window; score 2 * 2^-3 = 0.25
    (5, "2024-06-20", 0, 0, 4, 0),  # reactions only; score 4 * 0.25 * 2^(-10/14)
    (7, "2024-05-25", 50, 0, 0, 0),  # left; score 50 * 2^(-36/14) = 8.4
    (8, "2024-06-30", 12, 0, 0, 0),  # score 12
    (9, "2024-06-29", 2, 0, 0, 0),  # score 2 * 2^(-1/14) = 1.90
    (10, "2024-06-30", 5, 0, 0, 0),  # score 5, opted out of leaderboards
    (11, "2024-06-17", 1, 0, 0, 0),  # as_of - 13: inside the last 14 days
    (12, "2024-05-20", 1, 0, 0, 0),  # as_of - 41: inside the at-risk window; score 2^(-41/14)
)


def _table() -> pd.DataFrame:
    return member_table(ACTIVITY, COMMUNITY, as_of=AS_OF, timezone=BERLIN)


def test_engagement_score_weights_and_half_life() -> None:
    md = member_days(
        (1, "2024-06-30", 2, 1, 4, 2),  # 2 messages + 1 reply + 4 * 0.25 + 2 * 0.5 = 5
        (1, "2024-06-16", 4, 0, 0, 0),  # 14 days ago: 4 * 0.5 = 2
        (1, "2024-06-02", 8, 0, 0, 0),  # 28 days ago: 8 * 0.25 = 2
        (1, "2024-07-01", 100, 0, 0, 0),  # after as_of: ignored
        (2, "2024-06-30", 0, 0, 0, 2),  # reactions received only: 1
    )
    scores = engagement_scores(md, as_of=AS_OF)
    assert scores.index.tolist() == [1, 2]
    assert scores.loc[1, "score"] == pytest.approx(9.0)
    assert scores.loc[2, "score"] == pytest.approx(1.0)


def test_segments_follow_the_documented_precedence() -> None:
    table = _table()
    assert table["segment"].to_dict() == {
        1: "newcomers",
        2: "newcomers",
        3: "at_risk",
        4: "dormant",
        5: "lurkers",
        6: "dormant",  # never active
        7: None,  # left: not segmented
        8: "champions",  # 4 candidates (8, 9, 10, 11): ceil(0.4) = 1 place, 12 messages >= 10
        9: "regulars",
        10: "regulars",
        11: "regulars",
        12: "at_risk",  # silent for 28 days too, but at risk comes first
    }
    assert segment_counts(table) == {
        "newcomers": 2,
        "at_risk": 2,
        "dormant": 2,
        "lurkers": 1,
        "champions": 1,
        "regulars": 3,
    }
    assert sum(segment_counts(table).values()) == current_members(COMMUNITY, as_of=AS_OF, timezone=BERLIN) == 11
    assert list(segment_counts(table)) == list(SEGMENTS)


def test_champions_are_the_top_tenth_with_enough_messages() -> None:
    # 11 candidates posting 10..20 messages today: ceil(1.1) = 2 places, the 20 and the 19.
    md = member_days(*[(m, "2024-06-30", 9 + m, 0, 0, 0) for m in range(1, 12)])
    mem = members(*[{"member_id": m, "name": f"m{m}"} for m in range(1, 12)])
    table = member_table(md, mem, as_of=AS_OF, timezone=BERLIN)
    assert sorted(table.index[table["segment"] == "champions"]) == [10, 11]
    assert (table["segment"] == "regulars").sum() == 9


def test_a_top_score_without_ten_messages_is_not_a_champion() -> None:
    md = member_days(
        (1, "2024-06-30", 9, 0, 0, 100),  # score 9 + 50: the top place, but only 9 messages
        (2, "2024-06-30", 12, 0, 0, 0),  # 12 messages, second: outside ceil(0.2) = 1 place
    )
    mem = members({"member_id": 1, "name": "popular"}, {"member_id": 2, "name": "busy"})
    table = member_table(md, mem, as_of=AS_OF, timezone=BERLIN)
    assert table["segment"].tolist() == ["regulars", "regulars"]


def test_inactive_members_most_recently_active_first_never_active_last() -> None:
    inactive = inactive_members(_table(), inactive_after_days=14)
    # 3: 14 days silent; 12: 41; 4: 42; 6: never active (joined in January). Not listed: 1 (joined 5 days ago,
    # never active), 5 (10 days), 11 (13 days), 7 (left).
    assert [(m.member_id, m.days_since_active) for m in inactive] == [(3, 14), (12, 41), (4, 42), (6, None)]
    assert [m.name for m in inactive] == ["fading", "before_edge", "gone", "quiet_old"]
    assert inactive[0].segment == "at_risk"
    assert inactive[0].score == pytest.approx(2.5)
    assert inactive[3].messages_28d == 0


def test_inactive_threshold_is_configurable() -> None:
    # 10 days: also 5 (10 days silent), 2 (12 days silent, joined 13 days ago) and 11 (13 days); not 1 (joined 5
    # days ago).
    inactive = inactive_members(_table(), inactive_after_days=10)
    assert [(m.member_id, m.days_since_active) for m in inactive] == [
        (5, 10),
        (2, 12),
        (11, 13),
        (3, 14),
        (12, 41),
        (4, 42),
        (6, None),
    ]


def test_at_risk_members_were_active_before_and_silent_for_14_days() -> None:
    at_risk = at_risk_members(_table())
    # 3 (active on as_of - 14) and 12 (active on as_of - 41); 4 (as_of - 42) and 11 (as_of - 13) are not.
    # Highest score first: 3 (2.5) before 12 (2^(-41/14) = 0.13).
    assert [m.member_id for m in at_risk] == [3, 12]
    assert at_risk[1].score == pytest.approx(2 ** (-41 / 14))


def test_top_members_exclude_opted_out_and_former_members() -> None:
    top = top_members(_table(), 3)
    # Scores: 8 -> 12, 7 -> 8.4 (left), 10 -> 5 (opted out), 3 -> 2.5, 9 -> 1.90, 2 -> 1.66.
    assert [m.member_id for m in top] == [8, 3, 9]
    assert top[0].score == pytest.approx(12.0)
    assert top[0].messages_28d == 12
    assert top[0].days_since_active == 0
    assert top[2].score == pytest.approx(2 * 2 ** (-1 / 14))
    assert 10 not in [m.member_id for m in top_members(_table(), 100)]


def test_last_active_at_fills_in_activity_missing_from_member_days() -> None:
    # 22:30 UTC on 06-09 is 00:30 on 06-10 in Berlin: 20 days before as_of, inside the at-risk window.
    mem = members({"member_id": 1, "name": "historic", "last_active_at": "2024-06-09 22:30"})
    table = member_table(member_days(), mem, as_of=AS_OF, timezone=BERLIN)
    assert table.loc[1, "days_since_active"] == 20
    assert table.loc[1, "segment"] == "at_risk"


def test_a_member_active_again_after_as_of_keeps_the_last_activity_before_the_history() -> None:
    # Loaded history starts 2024-03-02 (as_of - 120). "back" was last active on 2024-01-10, then again in July:
    # last_active_at (July) is after as_of and cannot say; the last day before the history does.
    mem = members(
        {"member_id": 1, "name": "back", "last_active_at": "2024-07-05 12:00"},
        {"member_id": 2, "name": "unknown", "last_active_at": "2024-07-05 12:00"},
    )
    earlier = pd.DataFrame({"member_id": [1, 1], "day": pd.to_datetime(["2024-01-03", "2024-01-10"])})
    table = member_table(member_days(), mem, as_of=AS_OF, timezone=BERLIN, last_active_before=earlier)
    assert table.loc[1, "days_since_active"] == (AS_OF - date(2024, 1, 10)).days
    assert table.loc[1, "segment"] == "dormant"
    assert pd.isna(table.loc[2, "days_since_active"])  # nothing before as_of at all: never active by then
    assert [m.days_since_active for m in inactive_members(table)] == [172, None]


def test_members_of_an_empty_community() -> None:
    table = member_table(member_days(), members(), as_of=AS_OF, timezone=BERLIN)
    assert inactive_members(table) == []
    assert at_risk_members(table) == []
    assert top_members(table) == []
    assert segment_counts(table) == dict.fromkeys(SEGMENTS, 0)
    assert current_members(members(), as_of=AS_OF, timezone=BERLIN) == 0
