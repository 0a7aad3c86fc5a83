"""``python -m bench dashboard``: it serves every page to a signed-in client, from the rollups, and times the feed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.dashboard import RawReads, watch
from storage.engine import make_engine
from storage.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(
    r"^dashboard: p95 \d+ ms, slowest (/\S*)(?: \([a-z 0-9]+\))? \d+ ms, live \d+ ms, refresh \d+ ms \(full \d+ ms\)$"
)
PAGES = ("/", "/activity", "/retention", "/members/<id>", "/sales", "/nudges", "/health", "/report.json")
CSVS = ("/members.csv", "/activity.csv", "/channels.csv", "/retention.csv", "/sales.csv")


@pytest.mark.slow
def test_the_benchmark_serves_every_page_from_rollups_and_times_the_live_feed(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "dashboard",
            "--members",
            "300",
            "--events",
            "20000",
            "--history-weeks",
            "8",
            "--repeats",
            "2",
            "--live-samples",
            "2",
            "--refresh-samples",
            "2",
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert SUMMARY.match(lines[-1]), lines[-1]
    # Every page and CSV has a row in the table (a page that failed would have stopped the run).
    rows = {line.split()[0] for line in lines if line.startswith("  /")}
    assert set(PAGES) | set(CSVS) | {"/members"} <= rows, rows
    reads = next(line for line in lines if line.startswith("raw-event reads during the warm page requests:"))
    match = re.match(
        r"raw-event reads during the warm page requests: (\d+) of ([\d,]+) SQL statements through SQLAlchemy, "
        r"(\d+) of ([\d,]+) that sqlite3 ran",
        reads,
    )
    assert match is not None, reads
    # The warm pages did run SQL (both watches saw it), and none of it read the raw event tables.
    assert match.group(1) == match.group(3) == "0"
    assert int(match.group(2).replace(",", "")) > 0
    assert int(match.group(4).replace(",", "")) > 0
    assert "served from rollups, never raw events met" in done.stdout
    live = next(line for line in lines if line.startswith("live: "))
    assert "2 samples" in live
    # After each commit the figures were refreshed incrementally, equal a full build, and read no raw event.
    refresh = next(line for line in lines if line.startswith("refresh after a commit"))
    assert "2 samples" in refresh and refresh.endswith("figures equal a full build: yes"), refresh
    assert "(those refreshes and full builds: 0 of " in done.stdout
    # The served copy is gone; the cached community stays for the next run.
    assert not list(tmp_path.glob("dashboard-*"))


def test_the_watch_flags_reads_of_raw_event_tables_and_not_rollup_reads_or_writes(tmp_path: Path) -> None:
    # Without this, a watch that never matched would make every run look "served from rollups".
    engine = make_engine(f"sqlite:///{tmp_path}/watch.db")
    upgrade(engine)
    reads = RawReads()
    watch(engine, reads)
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM messages"))  # not watched yet
        with reads.watching():
            conn.execute(text("SELECT count(*) FROM member_daily_activity"))
            conn.execute(text("SELECT m.id FROM members m JOIN reactions r ON r.member_id = m.id"))
            conn.execute(text("SELECT count(*) FROM membership_events"))
            conn.execute(text("SELECT count(*) FROM purchases"))
            # A raw DBAPI cursor, as the report's frame reads use: only sqlite3's trace sees it.
            conn.connection.dbapi_connection.cursor().execute("SELECT count(*) FROM messages").fetchall()  # type: ignore[union-attr]
    engine.dispose()
    assert reads.statements == 4
    assert [("reactions" in s, "membership_events" in s) for s in reads.raw] == [(True, False), (False, True)]
    assert reads.traced >= 5
    assert len(reads.traced_raw) == 3
    assert "FROM messages" in reads.traced_raw[-1]
