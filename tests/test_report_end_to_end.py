"""From a real export to a report, through the commands an owner types, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from analytics.render.html import WEEKDAYS
from bot.cli import main
from bot.reporting import ReportError, ReportRequest, build_community_report
from storage.catalog import CourseRecord, sync_courses
from storage.events import Platform, RefundEvent
from storage.ingest import IngestStore
from tests.conftest import COMMUNITY, Events

pytestmark = pytest.mark.storage

# A slice of the real Komodo export kept in the repository (its README says what it keeps).
DCE = Path(__file__).resolve().parent / "fixtures" / "komodo-discord-dce"
SECURITY = DCE / "before-2019-Dec-05" / "developer-lounge" / "dev-security"
SECTIONS = ("key-figures", "revenue", "activity", "hour-of-week", "channels", "growth", "cohorts", "members")


def write_config(path: Path, url: str) -> Path:
    path.write_text(
        f'[community]\nname = "{COMMUNITY}"\ntimezone = "UTC"\n\n[storage]\nurl = {json.dumps(url)}\n', encoding="utf-8"
    )
    return path


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def expected_weeks(folder: Path) -> tuple[Counter[str], Counter[str]]:
    """Messages and distinct authors per ISO week, counted straight from the CSV files."""
    messages: Counter[str] = Counter()
    authors: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                week = iso_week(datetime.strptime(row["Date"], "%d-%b-%y %I:%M %p").date())
                messages[week] += 1
                authors.setdefault(week, set()).add(row["AuthorID"])
    return messages, Counter({week: len(ids) for week, ids in authors.items()})


@pytest.mark.slow
def test_import_then_report_matches_the_export(
    engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["import", "discord-export", str(SECURITY), "--config", str(config)]) == 0
    summary = capsys.readouterr().out
    messages, authors = expected_weeks(SECURITY)
    assert f"{sum(messages.values()):,} new" in summary

    last = max(messages)
    as_of = date.fromisocalendar(int(last[:4]), int(last[6:]), 7)  # the Sunday ending the last week with messages
    assert (
        main(["report", "--config", str(config), "--as-of", as_of.isoformat(), "--weeks", "8", "--format", "json"]) == 0
    )
    report = json.loads(capsys.readouterr().out)

    weeks = report["weekly"]
    assert len(weeks) == 8  # every week in range, quiet ones included
    for week in weeks:
        assert week["messages"] == messages.get(week["week"], 0), week["week"]
        # The owner's report is exact, small groups included.
        assert week["active"] == authors.get(week["week"], 0), week["week"]
    assert report["as_of"] == as_of.isoformat()

    # A second import of the same files changes nothing.
    assert main(["import", "discord-export", str(SECURITY), "--config", str(config)]) == 0
    assert " 0 new" in capsys.readouterr().out


def test_report_html_and_charts_are_written(engine: Engine, db_url: str, tmp_path: Path, ev: Events) -> None:
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "UTC")
    start = datetime(2024, 1, 1, 10, tzinfo=UTC)
    messages = [
        ev.message(f"u{i % 7}", at=start + timedelta(days=i // 3, hours=i % 3), thread="t1" if i % 10 == 0 else None)
        for i in range(120)
    ]
    joins = [ev.join(f"u{i}", at=start + timedelta(days=i)) for i in range(7)]
    store.write_batch(messages + joins)
    config = write_config(tmp_path / "c.toml", db_url)
    out = tmp_path / "report"
    assert (
        main(["report", "--config", str(config), "--as-of", "2024-02-04", "--format", "html", "--out", str(out)]) == 0
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and COMMUNITY in html
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "activity.png" in pngs
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # revenue right after the key figures, then activity and its new sections
    sections = [html.index(f'<section class="section" id="{s}"') for s in SECTIONS]
    assert sections == sorted(sections)

    # activity by hour of week: every message up to the as-of day counted in its weekday and UTC hour
    in_range = [m for m in messages if m.occurred_at.date() <= date(2024, 2, 4)]
    per_hour = Counter((m.occurred_at.weekday(), m.occurred_at.hour) for m in in_range)
    for (day, hour), n in per_hour.items():
        assert f'title="{WEEKDAYS[day]} {hour:02d}:00: {n} messages, 0 reactions"' in html
    assert len(re.findall(r'title="\w{3} \d\d:00: 0 messages', html)) == 168 - len(per_hour)

    # channels: the thread listed under its parent; every message in one of them
    channels = list(csv.DictReader((out / "channels.csv").open(encoding="utf-8", newline="")))
    in_thread = sum(1 for m in in_range if m.channel.thread_id is not None)
    assert [int(c["messages"]) for c in channels] == [len(in_range) - in_thread, in_thread]
    assert channels[1]["parent"] == channels[0]["channel"]
    assert html.count('<span class="child">') == 1

    # member growth: the seven joins in the first week of data
    growth = html[html.index('id="growth-table"') :]
    assert re.search(r"<td>2024-W01</td><td class=\"num\">7</td><td class=\"num\">0</td>", growth)

    # the lists beside the page: everyone went quiet after 2024-01-14, so all 7 are listed with their last day
    inactive = list(csv.DictReader((out / "inactive.csv").open(encoding="utf-8", newline="")))
    at_risk = list(csv.DictReader((out / "at_risk.csv").open(encoding="utf-8", newline="")))
    assert f"Inactive: {len(inactive)}" in html and f"At risk: {len(at_risk)}" in html


def test_bots_never_count_and_sales_are_reported(engine: Engine) -> None:
    store = IngestStore(engine)
    cid = store.register_community(COMMUNITY, "UTC")
    sync_courses(engine, cid, [CourseRecord("py-async", "Async Python", price_stars=500)])
    ev = Events(Platform.TELEGRAM)
    day = datetime(2024, 3, 4, 12, tzinfo=UTC)
    humans = [f"h{i}" for i in range(6)]
    store.write_batch(
        [ev.message(h, at=day + timedelta(hours=i)) for i, h in enumerate(humans)]
        + [ev.message("helperbot", at=day + timedelta(hours=i), bot=True) for i in range(50)]
    )
    for i, h in enumerate(humans[:4]):
        store.record_purchase(ev.purchase(h, charge=f"c{i}", at=day + timedelta(hours=1)))
    store.record_refund(RefundEvent(Platform.TELEGRAM, COMMUNITY, "c0", day + timedelta(hours=2)))

    report, hint = build_community_report(engine, ReportRequest(COMMUNITY, as_of=date(2024, 3, 10)), now=day)
    assert hint is None
    assert report.members == 6  # the bot is not a member
    assert report.summary.messages_7d == 6  # and its 50 messages are not activity
    assert report.summary.wau == 6
    assert report.commerce is not None
    (course,) = report.commerce.courses
    assert (course.sales, course.refunds, course.net) == (4, 1, 1500.0)


def test_unknown_community_lists_the_known_ones(engine: Engine) -> None:
    store = IngestStore(engine)
    store.register_community("Real Python Club", "UTC")
    with pytest.raises(ReportError, match="'Real Python Club'"):
        build_community_report(engine, ReportRequest("Typo Club"), now=datetime(2024, 1, 1, tzinfo=UTC))


def test_old_history_gets_a_hint_to_pick_a_day(engine: Engine, ev: Events) -> None:
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "UTC")
    store.write_batch([ev.message("alice", at=datetime(2019, 12, 2, 9, tzinfo=UTC))])
    _, hint = build_community_report(engine, ReportRequest(COMMUNITY), now=datetime(2026, 11, 25, tzinfo=UTC))
    assert hint is not None and "--as-of 2019-12-02" in hint
