"""The report on real data: the Komodo Discord export, imported, against figures recomputed from its CSV files.

Uses the trimmed slice in tests/fixtures/komodo-discord-dce (or the folder named by COHORTBOT_KOMODO_EXPORT, e.g.
the full export) and skips when neither exists. DiscordChatExporter's CSV has no joins and no per-user reactions,
so a member's activity is their messages, and the first message stands in for the join.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bot.cli import main
from bot.reporting import ReportRequest, build_community_report
from storage.communities import find_community
from storage.members import find_member
from tests.conftest import COMMUNITY
from tests.test_report_end_to_end import iso_week, write_config

pytestmark = [pytest.mark.storage, pytest.mark.slow]

KOMODO = Path(os.environ.get("COHORTBOT_KOMODO_EXPORT") or Path(__file__).parent / "fixtures" / "komodo-discord-dce")
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def active_days(folder: Path) -> dict[str, set[date]]:
    """Each author's days with a message (UTC), straight from the CSV files."""
    days: dict[str, set[date]] = defaultdict(set)
    for path in sorted(folder.rglob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter=";"):
                days[row["AuthorID"]].add(datetime.strptime(row["Date"], "%d-%b-%y %I:%M %p").date())
    return days


@pytest.fixture
def komodo(engine: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, set[date]]:
    if not KOMODO.is_dir():
        pytest.skip(f"the Komodo export is not at {KOMODO} (set COHORTBOT_KOMODO_EXPORT to its folder)")
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["import", "discord-export", str(KOMODO), "--config", str(config)]) == 0
    capsys.readouterr()
    return active_days(KOMODO)


def test_komodo_daily_wau_mau_member_since_and_last_activity(
    engine: Engine, db_url: str, tmp_path: Path, komodo: dict[str, set[date]], capsys: pytest.CaptureFixture[str]
) -> None:
    last_day = max(max(days) for days in komodo.values())
    # 20 weeks ending on the last day: the range starts ~135 days back, so its first MAUs reach ~162 days back.
    report, _ = build_community_report(engine, ReportRequest(COMMUNITY, as_of=last_day, weeks=20), now=NOW)
    authors_on: dict[date, set[str]] = defaultdict(set)
    for author, days in komodo.items():
        for d in days:
            authors_on[d].add(author)

    def distinct(day: date, window: int) -> int:
        return len(set().union(*(authors_on.get(day - timedelta(days=k), set()) for k in range(window))))

    for row in report.daily:
        assert (row.dau, row.wau, row.mau) == (distinct(row.day, 1), distinct(row.day, 7), distinct(row.day, 28)), row

    # Back-dated: every member active by then has a last active day, even if active again after it.
    as_of = last_day - timedelta(days=60)
    report, _ = build_community_report(engine, ReportRequest(COMMUNITY, as_of=as_of, weeks=4), now=NOW)
    with engine.connect() as conn:
        info = find_community(conn, COMMUNITY)
    assert info is not None
    silent = {m.member_id: m.days_since_active for m in report.inactive}
    for author, days in komodo.items():
        member = find_member(engine, info.id, "discord", author)
        assert member is not None
        # /stats "Member since": the first message (no joins in the export), not the import's earliest event.
        assert member.member_since.date() == min(days), author
        before = [d for d in days if d <= as_of]
        if before and (as_of - max(before)).days >= 14:
            assert silent[member.id] == (as_of - max(before)).days, author


def test_komodo_json_report_is_exact_for_every_week_and_cohort(
    engine: Engine, db_url: str, tmp_path: Path, komodo: dict[str, set[date]], capsys: pytest.CaptureFixture[str]
) -> None:
    last_day = max(max(days) for days in komodo.values())
    config = write_config(tmp_path / "c.toml", db_url)
    assert main(["report", "--config", str(config), "--as-of", last_day.isoformat(), "--format", "json"]) == 0
    text = capsys.readouterr().out
    assert "<5" not in text  # owners see exact figures
    report = json.loads(text)
    authors_in: dict[str, set[str]] = defaultdict(set)
    first_week: dict[str, str] = {}
    for author, days in komodo.items():
        for d in days:
            authors_in[iso_week(d)].add(author)
        first_week[author] = iso_week(min(days))
    for week in report["weekly"]:
        assert week["active"] == len(authors_in.get(week["week"], set())), week["week"]
    sizes = Counter(first_week.values())
    for cohort in report["cohorts"]:
        assert cohort["size"] == sizes[cohort["cohort"]], cohort["cohort"]
        assert all(isinstance(r, float) for r in cohort["retention"]), cohort["cohort"]
