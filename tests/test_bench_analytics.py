"""``python -m bench analytics``: the DuckDB cross-check keeps holding, and the synthetic rollups are storage's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text

from bench.synthetic import (
    BOTS,
    COMMUNITY,
    MESSAGE,
    NONE,
    TIMEZONE,
    Community,
    Params,
    generate,
    rollups,
    write_database,
)
from storage.engine import make_engine
from storage.events import (
    ActivityEvent,
    ChannelRef,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    ReactionEvent,
)
from storage.ingest import IngestStore
from storage.migrate import upgrade
from storage.rollups import read_rollups
from storage.types import from_millis

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^analytics: \d+\.\d{2} s, \d+\.\d{2}x duckdb, \d+ MB peak$")


@pytest.mark.slow
def test_the_benchmark_agrees_with_duckdb(tmp_path: Path) -> None:
    pytest.importorskip("duckdb", reason="the benchmark cross-checks against DuckDB (pip install duckdb)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "analytics",
            "--members",
            "2000",
            "--events",
            "200000",
            "--repeats",
            "1",
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "check: cohortbot and duckdb agree on all" in out
    assert "metrics compared (" in out
    assert SUMMARY.match(out.strip().splitlines()[-1]), out


@pytest.mark.slow
def test_the_benchmark_reads_the_report_from_postgresql_and_still_agrees_with_duckdb(tmp_path: Path) -> None:
    pytest.importorskip("duckdb", reason="the benchmark cross-checks against DuckDB (pip install duckdb)")
    from bench.postgres import database_exists
    from tests.conftest import postgres_url, require_backend

    require_backend("postgresql")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "analytics",
            "--members",
            "1000",
            "--events",
            "50000",
            "--repeats",
            "1",
            "--workdir",
            str(tmp_path),
            "--url",
            postgres_url(),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "check: cohortbot and duckdb agree on all" in out
    assert SUMMARY.match(out.strip().splitlines()[-1]), out
    created = re.search(r"/(cohortbot_bench_\d+) \(created for this run", out)
    assert created, out
    assert not database_exists(postgres_url(), created.group(1))


# --- the synthetic rollups are what storage's ingestion computes from the same events -----------------------------


def _user(c: Community, member_id: int) -> MemberRef:
    humans = c.members - BOTS
    if member_id > humans:
        return MemberRef(str(10**15 + member_id), f"helper-bot-{member_id - humans}", is_bot=True)
    return MemberRef(str(100_000_000 + member_id), f"member-{member_id}")


def _channel(channel_id: int) -> ChannelRef:
    return ChannelRef(str(900_000_000_000_000_000 + channel_id), f"channel-{channel_id}")


def _platform_events(c: Community) -> list[ActivityEvent]:
    """The community's events as the adapters would deliver them, in time order."""
    humans = c.members - BOTS
    timed: list[tuple[int, int, ActivityEvent]] = []
    at = c.midnight_ms[c.ev_day.astype("int64")] + c.ev_offset
    for i in range(len(c.ev_member)):
        when = from_millis(int(at[i]))
        member, other = int(c.ev_member[i]), int(c.ev_other[i])
        if c.ev_kind[i] == MESSAGE:
            reply = bool(c.ev_reply[i])
            event: ActivityEvent = MessageEvent(
                platform=Platform.DISCORD,
                community=COMMUNITY,
                message_id=f"m{i}",
                channel=_channel(int(c.ev_channel[i])),
                author=_user(c, member),
                occurred_at=when,
                length=10,
                # A reply to an unknown author names a message cohortbot never stored.
                reply_to_message_id=f"x{i}" if reply else None,
                reply_to_user_id=_user(c, other).user_id if reply and other != NONE else None,
            )
        else:
            event = ReactionEvent(
                platform=Platform.DISCORD,
                community=COMMUNITY,
                channel=_channel(1),
                message_id=f"x{i}",  # never stored: the author is only known when the platform names them
                member=_user(c, member),
                emoji=f"e{i}",
                occurred_at=when,
                message_author_id=_user(c, other).user_id if other != NONE else None,
            )
        timed.append((int(at[i]), 1, event))
    for member, kind, ms in zip(c.ms_member.tolist(), c.ms_kind.tolist(), c.ms_ms.tolist(), strict=True):
        cls = MemberJoined if kind == 0 else MemberLeft
        timed.append((ms, 0, cls(Platform.DISCORD, COMMUNITY, _user(c, member), from_millis(ms))))
    timed.sort(key=lambda item: (item[0], item[1]))
    # The bots post first, so that replies and reactions naming them resolve to the bot accounts.
    first = from_millis(int(c.midnight_ms[0]))
    boot: list[ActivityEvent] = [
        MessageEvent(Platform.DISCORD, COMMUNITY, f"boot{b}", _channel(1), _user(c, humans + b), first, 1)
        for b in range(1, BOTS + 1)
    ]
    return boot + [event for _, _, event in timed]


def _natural(conn: Connection) -> dict[str, Any]:
    """The stored rollups keyed by platform ids (row ids differ between the two databases)."""
    users = {r[0]: r[1] for r in conn.execute(text("SELECT id, platform_user_id FROM members"))}
    channels = {r[0]: r[1] for r in conn.execute(text("SELECT id, platform_channel_id FROM channels"))}
    snapshot = read_rollups(conn, 1)
    return {
        "member_days": {(users[m], day): v for (m, day), v in snapshot.member_days.items()},
        "member_totals": {users[m]: v for m, v in snapshot.member_totals.items()},
        "community_days": snapshot.community_days,
        "channel_days": {(day, channels[ch]): n for (day, ch), n in snapshot.channel_days.items()},
        "memberships": {users[m]: v for m, v in snapshot.memberships.items() if any(x is not None for x in v)},
        "hours": snapshot.hours,
        "channel_members": {(day, channels[ch], users[m]): n for (day, ch, m), n in snapshot.channel_members.items()},
    }


@pytest.mark.slow
def test_synthetic_rollups_are_what_ingestion_computes(tmp_path: Path) -> None:
    c = generate(Params(members=80, events=6000, weeks=3, seed=7))
    bulk = tmp_path / "bulk.db"
    write_database(bulk, c, rollups(c))

    engine = make_engine(f"sqlite:///{tmp_path / 'ingested.db'}")
    upgrade(engine)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, TIMEZONE)
    events = _platform_events(c)
    for start in range(0, len(events), 500):
        store.write_batch(events[start : start + 500])

    bulk_engine = make_engine(f"sqlite:///{bulk}")
    with bulk_engine.connect() as a, engine.connect() as b:
        expected, got = _natural(b), _natural(a)
    bulk_engine.dispose()
    engine.dispose()
    assert got["member_days"], "the community must have activity"
    for table in expected:
        assert got[table] == expected[table], table
    assert max(got["community_days"]) - min(got["community_days"]) == timedelta(days=c.days - 1)


def _allocate_and_measure(megabytes: int) -> dict[str, int]:
    """In a spawned process: reset the peak, touch ``megabytes`` of memory, report the peak."""
    import numpy as np

    from bench.analytics.common import peak_memory_bytes, reset_peak_memory

    reset_peak_memory()
    block = np.ones(megabytes * 1024 * 1024, dtype=np.uint8)
    return {"peak": peak_memory_bytes(), "touched": int(block.sum())}


def test_peak_memory_is_the_measured_work_alone_not_the_parent_process() -> None:
    import numpy as np

    from bench.analytics.cli import _in_fresh_process
    from bench.measure import MB

    # The parent has just built a big data set (as a run that generates its cached community does).
    data_set = np.ones(800 * MB, dtype=np.uint8)
    measured = _in_fresh_process(_allocate_and_measure, 100)
    assert measured["touched"] == 100 * MB
    assert 100 * MB <= measured["peak"] < 400 * MB  # the child's 100 MB and its imports, not the parent's 800 MB
    del data_set


KOMODO_SLICE = REPO / "tests" / "fixtures" / "komodo-discord-dce"
DEV_SECURITY, INTRODUCTIONS = "476644438056239114", "578941584859594762"


@pytest.mark.slow
@pytest.mark.parametrize(("quiet_minutes", "window_hours"), [(30, 24), (120, 2)])
def test_question_figures_on_the_komodo_slice_agree_with_duckdb(
    tmp_path: Path, quiet_minutes: int, window_hours: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The questions section of the report equals the same definitions written as DuckDB SQL (bench/analytics)."""
    pytest.importorskip("duckdb", reason="the cross-check runs DuckDB (pip install duckdb)")
    from zoneinfo import ZoneInfo

    from bench.analytics.questions import ours, reference
    from bot.cli import main
    from bot.config import HelpSettings
    from bot.reporting import ReportRequest, build_community_report

    url = f"sqlite:///{tmp_path}/komodo.db"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[community]\nname = "komodo"\ntimezone = "Europe/Berlin"\n\n[storage]\nurl = "{url}"\n\n'
        f"[help]\nchannels = [{DEV_SECURITY}, {INTRODUCTIONS}]\nquiet_minutes = {quiet_minutes}\n"
        f"answer_window_hours = {window_hours}\n"
    )
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert main(["import", "discord-export", str(KOMODO_SLICE), "--config", str(config)]) == 0
    engine = make_engine(url)
    help_ = HelpSettings(
        channels=(DEV_SECURITY, INTRODUCTIONS), quiet_minutes=quiet_minutes, answer_window_hours=window_hours
    )
    as_of, weeks = date(2019, 12, 12), 90
    request = ReportRequest("komodo", as_of=as_of, weeks=weeks, top_n=100_000, help=help_)
    report, _ = build_community_report(engine, request, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert report.questions is not None
    mine = ours(report.questions)
    theirs = reference(
        engine,
        1,
        channels=help_.channels,
        exclude=(),
        quiet_minutes=quiet_minutes,
        answer_window_hours=window_hours,
        unanswered_after_hours=help_.unanswered_after_hours,
        timezone=ZoneInfo("Europe/Berlin"),
        first_week=report.weekly[0].start,
        as_of=as_of,
    )
    engine.dispose()
    from bench.analytics.compare import compare

    assert compare(mine, theirs) == []
    # `cohortbot report --format json` with the same [help] section writes the same section.
    capsys.readouterr()
    assert main(["report", "--config", str(config), "--format", "json", "--as-of", "2019-12-12", "--weeks", "90"]) == 0
    written = json.loads(capsys.readouterr().out)["questions"]
    assert [written["questions"], written["unanswered"]] == [mine["questions.total"][0], mine["questions.total"][5]]
    assert main(["report", "--config", str(config), "--as-of", "2019-12-12", "--weeks", "90"]) == 0
    text = capsys.readouterr().out
    table = text[text.index("QUESTIONS") :].splitlines()
    total, unanswered = mine["questions.total"][0], mine["questions.total"][5]
    assert table[3].split()[:4] == ["All", "help", "channels", f"{total:,}"] and table[3].endswith(f"{unanswered:,}")
    assert {line.split()[0] for line in table[4:6]} == {"#dev-security", "#introductions"}
    # Real questions in both channels, some answered, some not: the check compares something.
    total = mine["questions.total"]
    assert total[0] > 100 and 0 < total[5] < total[0] and len(mine["questions.channels"]) == 2
