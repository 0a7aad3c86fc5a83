"""Events through the writer's store into the hourly and channel rollups, and out as the report's new figures."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from analytics.results import Report
from bot.cli import main
from bot.reporting import ReportRequest, build_community_report
from storage.deletion import delete_member_data, find_member_id
from storage.ingest import IngestStore
from storage.models import ChannelMemberDaily, CommunityHourlyActivity
from storage.rollups import compute_rollups, read_rollups, rebuild_rollups
from tests.conftest import COMMUNITY, Events

pytestmark = pytest.mark.storage

# Berlin's clocks went back on Sunday 2024-10-27 at 03:00 CEST (01:00 UTC) to 02:00 CET: 02:00-03:00 happened twice.
FALL_BACK = datetime(2024, 10, 27, 1, 0, tzinfo=UTC)
SUNDAY = 6


def _report(engine: Engine, as_of: date, weeks: int = 1) -> Report:
    report, _ = build_community_report(
        engine, ReportRequest(community=COMMUNITY, as_of=as_of, weeks=weeks), now=datetime(2025, 1, 1, tzinfo=UTC)
    )
    return report


def _cells(report: Report) -> dict[tuple[int, int], tuple[int, int]]:
    return {(c.weekday, c.hour): (c.messages, c.reactions) for c in report.hour_of_week if c.messages or c.reactions}


def test_hours_are_local_wall_clock_hours_across_the_night_the_clocks_go_back(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    store.write_batch(
        [
            ev.message("ann", message_id="a1", at=FALL_BACK - timedelta(minutes=90)),  # 01:30 CEST
            ev.message("ann", message_id="a2", at=FALL_BACK - timedelta(minutes=30)),  # 02:30 CEST
            ev.message("bob", message_id="b1", at=FALL_BACK + timedelta(minutes=30)),  # 02:30 CET, the hour again
            ev.message("bob", message_id="b2", at=FALL_BACK + timedelta(minutes=90)),  # 03:30 CET
            ev.reaction("bob", "a2", at=FALL_BACK - timedelta(minutes=20), author="ann"),  # 02:40 CEST
            ev.reaction("cy", "a2", at=FALL_BACK + timedelta(minutes=20), author="ann"),  # 02:20 CET
            ev.message("ann", message_id="a3", at=datetime(2024, 10, 26, 22, 30, tzinfo=UTC)),  # Saturday in UTC
            ev.message("helperbot", message_id="x", at=FALL_BACK, bot=True),  # a bot: never counted
        ]
    )
    report = _report(engine, date(2024, 10, 27))
    assert _cells(report) == {(SUNDAY, 0): (1, 0), (SUNDAY, 1): (1, 0), (SUNDAY, 2): (2, 2), (SUNDAY, 3): (1, 0)}
    # A reaction taken back leaves its hour.
    store.write_batch([ev.reaction("cy", "a2", at=FALL_BACK + timedelta(hours=3), added=False, author="ann")])
    report = _report(engine, date(2024, 10, 27))
    assert _cells(report)[(SUNDAY, 2)] == (2, 1)
    # The hours of a day add up to that day's totals.
    assert sum(c.messages for c in report.hour_of_week) == report.weekly[-1].messages == 5
    assert sum(c.reactions for c in report.hour_of_week) == report.weekly[-1].reactions == 1


def test_the_hour_skipped_in_spring_stays_empty(engine: Engine, store: IngestStore, ev: Events) -> None:
    forward = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)  # 02:00 CET became 03:00 CEST
    store.write_batch(
        [
            ev.message("ann", message_id="a1", at=forward - timedelta(minutes=10)),  # 01:50 CET
            ev.message("ann", message_id="a2", at=forward + timedelta(minutes=10)),  # 03:10 CEST
        ]
    )
    assert _cells(_report(engine, date(2024, 3, 31))) == {(SUNDAY, 1): (1, 0), (SUNDAY, 3): (1, 0)}


def test_channels_list_threads_under_their_parent_with_members_and_trend(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    monday = datetime(2024, 3, 11, 9, tzinfo=UTC)  # the range is 03-11 .. 03-24 (as of Sunday, two weeks)
    store.write_batch(
        [
            # Previous range (02-26 .. 03-10): general had 2 messages.
            ev.message("ann", channel="general", at=monday - timedelta(days=3)),
            ev.message("bob", channel="general", at=monday - timedelta(days=14)),
            ev.message("bob", channel="general", at=monday - timedelta(days=15)),  # 02-25: before that
            # The range.
            *[ev.message("ann", channel="general", at=monday + timedelta(hours=i)) for i in range(3)],
            ev.message("bob", channel="general", at=monday + timedelta(days=8)),
            ev.message("cy", channel="help", at=monday + timedelta(days=9)),
            ev.message("ann", channel="help", thread="77", at=monday + timedelta(days=10)),  # a forum topic
            ev.message("bob", channel="help", thread="77", at=monday + timedelta(days=10, hours=1)),
            ev.message("helperbot", channel="help", at=monday + timedelta(days=1), bot=True),
        ]
    )
    report = _report(engine, date(2024, 3, 24), weeks=2)
    rows = [
        (c.name, c.parent, c.messages, c.active_members, c.previous_messages, c.weekly_messages)
        for c in report.channels
    ]
    assert rows == [
        ("#general", None, 4, 2, 2, (3, 1)),
        ("help#77", "#help", 2, 2, 0, (0, 2)),
        ("#help", None, 1, 1, 0, (0, 1)),
    ]
    # Forgetting a member takes them out of the channels' active members, and their messages out of every figure.
    with engine.begin() as conn:
        member_id = find_member_id(conn, store.community_id(COMMUNITY), "discord", "bob")
        assert member_id is not None
        delete_member_data(conn, member_id)
        assert read_rollups(conn, store.community_id(COMMUNITY)) == compute_rollups(conn, store.community_id(COMMUNITY))
    store.invalidate_caches()
    report = _report(engine, date(2024, 3, 24), weeks=2)
    assert [(c.name, c.messages, c.active_members, c.previous_messages) for c in report.channels] == [
        ("#general", 3, 1, 1),
        ("#help", 1, 1, 0),
        ("help#77", 1, 1, 0),
    ]


def test_growth_follows_joins_and_leaves_and_ends_at_the_reports_members(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    day = datetime(2024, 3, 11, 12, tzinfo=UTC)  # Monday
    store.write_batch(
        [
            ev.join("ann", at=day - timedelta(days=30)),
            ev.join("bob", at=day),
            ev.leave("bob", at=day + timedelta(days=2)),  # gone
            ev.join("cy", at=day + timedelta(days=1)),
            ev.leave("cy", at=day + timedelta(days=3)),
            ev.join("cy", at=day + timedelta(days=5)),  # came back
        ]
    )
    report = _report(engine, date(2024, 3, 17))
    growth = [(g.day.day, g.joins, g.leaves, g.members) for g in report.growth]
    assert growth == [
        (11, 1, 0, 2),
        (12, 1, 0, 3),
        (13, 0, 1, 2),
        (14, 0, 1, 2),  # cy's leave: cy came back later, so cy is counted as a member throughout
        (15, 0, 0, 2),
        (16, 0, 0, 2),
        (17, 0, 0, 2),
    ]
    assert report.growth[-1].members == report.members
    week = report.weekly[-1]
    assert (week.new, week.left) == (2, 2)


def test_rebuild_refills_the_new_rollups_after_a_time_zone_change(engine: Engine, ev: Events) -> None:
    store = IngestStore(engine)
    cid = store.register_community(COMMUNITY, "UTC")
    store.write_batch([ev.message("ann", at=datetime(2024, 3, 4, 23, 30, tzinfo=UTC), channel="general")])
    with engine.connect() as conn:
        assert conn.execute(select(CommunityHourlyActivity.day, CommunityHourlyActivity.hour)).all() in (
            [(date(2024, 3, 4), 23)],
            [("2024-03-04", 23)],
        )
    store.register_community(COMMUNITY, "Europe/Berlin")
    with engine.begin() as conn:
        rebuild_rollups(conn, cid)
    with engine.connect() as conn:
        assert read_rollups(conn, cid).hours == {(date(2024, 3, 5), 0): (1, 0)}
        assert conn.execute(select(func.count()).select_from(ChannelMemberDaily)).scalar_one() == 1


# --- a real export, imported through the CLI ----------------------------------------------------------------------

SECURITY = (
    Path(__file__).resolve().parent
    / "fixtures"
    / "komodo-discord-dce"
    / "before-2019-Dec-05"
    / "developer-lounge"
    / "dev-security"
)


@pytest.mark.slow
def test_an_import_fills_hour_of_week_and_channels_as_the_export_says(
    engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[community]\nname = "{COMMUNITY}"\ntimezone = "UTC"\n\n[storage]\nurl = "{db_url}"\n', encoding="utf-8"
    )
    assert main(["import", "discord-export", str(SECURITY), "--config", str(config)]) == 0
    capsys.readouterr()
    per_hour: Counter[tuple[int, int]] = Counter()
    authors: set[str] = set()
    stamps = []
    for path in sorted(SECURITY.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                at = datetime.strptime(row["Date"], "%d-%b-%y %I:%M %p")
                per_hour[(at.weekday(), at.hour)] += 1
                authors.add(row["AuthorID"])
                stamps.append(at)
    first, last = min(stamps).date(), max(stamps).date()
    weeks = (last - (first - timedelta(days=first.weekday()))).days // 7 + 1
    report = _report(engine, last, weeks=weeks)
    assert {(c.weekday, c.hour): c.messages for c in report.hour_of_week if c.messages} == dict(per_hour)
    (channel,) = report.channels
    assert (channel.messages, channel.active_members) == (sum(per_hour.values()), len(authors))


def test_the_hosts_messages_count_in_a_channel_but_the_host_is_not_one_of_its_members(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    day = datetime(2024, 3, 12, 12, tzinfo=UTC)
    store.write_batch([ev.message("owner", channel="news", at=day), ev.message("ann", channel="news", at=day)])
    request = ReportRequest(
        community=COMMUNITY, as_of=date(2024, 3, 17), weeks=1, not_members=frozenset({("discord", "owner")})
    )
    report, _ = build_community_report(engine, request, now=datetime(2025, 1, 1, tzinfo=UTC))
    (news,) = report.channels
    assert (news.messages, news.active_members) == (2, 1)
