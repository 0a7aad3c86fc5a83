"""``python -m bench dashboard``: how fast the web dashboard answers on a big community, and how fast it is live.

The analytics benchmark's synthetic community (100,000 members, 20,000,000 events over 52 weeks by default) is
copied to a temporary file and served by the real application (``WebServer`` on 127.0.0.1, a real
``EventWriter`` on the copy, as ``cohortbot run`` serves it) with a clock fixed on the data's last day, so that
"today" is inside the data. A signed-in ``aiohttp`` client then times:

* every page and CSV: one cold request each (the first one builds the figures of the range), then ``--repeats``
  warm requests each, interleaved; p50/p95/max per page, the p95 of all warm samples and the slowest page;
* the live path: ``/live`` is open, a message for today is put to the writer, and the time until the
  server-sent event whose ``messages`` went up arrives is measured, ``--live-samples`` times;
* the first page load after a commit (the commit makes the cached figures stale: the page waits a moment for
  the rebuild, then is served the previous figures while the rebuild goes on).

While the warm requests run, every SQL statement on the engine is inspected: a page must be served from the
rollups, never from the raw event tables (``messages``, ``reactions``, ``membership_events``).

The last line is ``dashboard: p95 <X> ms, slowest <page> <Y> ms, live <Z> ms``. Targets: p95 <= 300 ms,
live <= 2,000 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import Engine, event

from bench.analytics.common import add_community_arguments
from bench.measure import copy_database, load_average, percentile, positive_int, remove_sqlite, stored_community_id
from bench.synthetic import COMMUNITY, FIRST_DAY, TIMEZONE, Params, ensure

TARGET_P95_MS = 300.0
TARGET_LIVE_MS = 2000.0
RAW_TABLES = ("messages", "reactions", "membership_events")
# A statement reads a raw event table when one is named after FROM or JOIN (inserts by the writer are not reads).
RAW_READ = re.compile(r"\b(?:FROM|JOIN)\s+[\"`]?(" + "|".join(RAW_TABLES) + r")[\"`]?(?:\s|$|\))", re.IGNORECASE)
LIVE_WITHIN_SECONDS = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench dashboard``."""
    add_community_arguments(
        parser, seed_help="random seed of the community", workdir_note="; the served copy goes there too"
    )
    parser.add_argument("--repeats", type=positive_int, default=20, help="warm requests per page and CSV (default 20)")
    parser.add_argument(
        "--live-samples", type=positive_int, default=10, help="messages timed from the writer to /live (default 10)"
    )
    parser.add_argument(
        "--refresh-samples",
        type=positive_int,
        default=3,
        help="commits after which the incremental refresh is timed against a full build (default 3)",
    )


# --- what is served ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedClock:
    """The dashboard's clock: a moment on the data's last day (the bench's "now" never moves)."""

    at: datetime

    def now(self) -> datetime:
        return self.at


@dataclass
class RawReads:
    """Statements on the engine, and those that read a raw event table, counted while ``on``.

    Two views: SQLAlchemy's ``before_cursor_execute`` (every statement run through SQLAlchemy) and, on SQLite,
    sqlite3's trace callback, which also sees the statements run on raw DBAPI cursors (the report's frame reads).
    """

    on: bool = False
    statements: int = 0
    raw: list[str] = field(default_factory=list)
    traced: int = 0
    traced_raw: list[str] = field(default_factory=list)

    def see(self, statement: str, *, traced: bool = False) -> None:
        if not self.on:
            return
        if traced:
            self.traced += 1
        else:
            self.statements += 1
        if RAW_READ.search(statement):
            (self.traced_raw if traced else self.raw).append(" ".join(statement.split())[:200])

    def reset(self) -> None:
        self.statements = self.traced = 0
        self.raw.clear()
        self.traced_raw.clear()

    @contextmanager
    def watching(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False


def watch(engine: Engine, reads: RawReads) -> None:
    """Count, in ``reads``, the statements run on ``engine`` and those that read a raw event table."""

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        reads.see(statement)

    def trace(statement: str) -> None:
        reads.see(statement, traced=True)

    def connect(dbapi_connection: Any, record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(trace)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    event.listen(engine, "connect", connect)
    # Connections opened before the listener (none, usually) would not be traced: start the pool afresh.
    engine.dispose()


@dataclass(frozen=True)
class Picks:
    """Things of the data the requests name: a member to open, and who posts the live messages where."""

    member_id: int
    search: str
    poster_platform: str
    poster_user: str
    channel_platform_id: str
    channel_name: str


def _picks(db: Path, community_id: int) -> Picks:
    # Plain sqlite3 before the server starts: nothing here is timed or watched.
    conn = sqlite3.connect(db)
    try:
        (last_day,) = conn.execute(
            "SELECT max(day) FROM member_daily_activity WHERE community_id = ?", (community_id,)
        ).fetchone()
        (member_id,) = conn.execute(
            "SELECT d.member_id FROM member_daily_activity d JOIN members m ON m.id = d.member_id "
            "WHERE d.community_id = ? AND d.day = ? AND m.is_bot = 0 ORDER BY d.messages DESC LIMIT 1",
            (community_id, last_day),
        ).fetchone()
        (name,) = conn.execute("SELECT display_name FROM members WHERE id = ?", (member_id,)).fetchone()
        poster = conn.execute(
            "SELECT platform, platform_user_id FROM members WHERE community_id = ? AND is_bot = 0 "
            "AND platform = 'discord' ORDER BY id LIMIT 1",
            (community_id,),
        ).fetchone()
        channel = conn.execute(
            "SELECT platform_channel_id, name FROM channels WHERE community_id = ? AND platform = 'discord' "
            "AND parent_id IS NULL ORDER BY id LIMIT 1",
            (community_id,),
        ).fetchone()
    finally:
        conn.close()
    # A search that matches a handful of members: the picked member's name without its last digit.
    search = str(name)[:-1] if len(str(name)) > 1 else str(name)
    return Picks(int(member_id), search, str(poster[0]), str(poster[1]), str(channel[0]), str(channel[1]))


def _pages(picks: Picks) -> list[tuple[str, str]]:
    """(label, path) of every page and CSV timed."""
    return [
        ("/", "/"),
        ("/activity", "/activity"),
        ("/retention", "/retention"),
        ("/members (inactive)", "/members?tab=inactive"),
        ("/members (at risk)", "/members?tab=at_risk"),
        ("/members (top)", "/members?tab=top"),
        ("/members (all)", "/members?tab=all"),
        ("/members (search)", f"/members?tab=all&q={picks.search}"),
        ("/members (page 5)", "/members?tab=all&page=5"),
        ("/members (sorted)", "/members?tab=all&sort=name&dir=asc&page=3"),
        ("/members/<id>", f"/members/{picks.member_id}"),
        ("/sales", "/sales"),
        ("/nudges", "/nudges"),
        ("/health", "/health"),
        ("/report.json", "/report.json"),
        ("/members.csv", "/members.csv"),
        ("/activity.csv", "/activity.csv"),
        ("/channels.csv", "/channels.csv"),
        ("/retention.csv", "/retention.csv"),
        ("/sales.csv", "/sales.csv"),
    ]


# --- measuring ---------------------------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url, allow_redirects=False) as response:
        body = await response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}: {body[:300]!r}")
    return elapsed, len(body)


async def _next_today(response: aiohttp.ClientResponse, within: float) -> dict[str, Any]:
    """The data of the next ``event: today`` of an open ``/live`` stream."""

    async def read() -> dict[str, Any]:
        name = None
        while True:
            raw = await response.content.readline()
            if not raw:
                raise RuntimeError("/live ended")
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name == "today":
                data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return data

    return await asyncio.wait_for(read(), within)


@dataclass
class Results:
    rows: list[tuple[str, float, list[float], int]] = field(default_factory=list)  # label, cold, warm, bytes
    live: list[float] = field(default_factory=list)
    after_commit_ms: float = 0.0
    after_commit_note: str = ""
    raw: list[str] = field(default_factory=list)
    statements: int = 0
    during_rebuild: list[float] = field(default_factory=list)
    traced_raw: list[str] = field(default_factory=list)
    traced: int = 0
    cold_raw: int = 0
    cold_statements: int = 0
    rebuilds_during_warm: int = 0
    refreshes: list[tuple[float, float, bool]] = field(default_factory=list)  # incremental ms, full ms, equal
    refresh_raw: int = 0  # statements of those refreshes and full builds that read a raw event table
    refresh_statements: int = 0


async def _serve_and_measure(db: Path, args: argparse.Namespace, days: int) -> Results:
    # Imported here: the bench's other commands do not need the web stack.
    from bot.config import Settings
    from bot.config.settings import CommunitySettings, DashboardSettings, WebSettings
    from bot.web.auth import COOKIE_NAME
    from bot.web.context import WebContext
    from bot.web.data import REPORT_CACHE
    from bot.web.links import SERVER_PLATFORM, SERVER_USER
    from bot.web.server import WebServer
    from storage.dashboard_access import DashboardIdentity, open_session
    from storage.engine import make_engine
    from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
    from storage.ingest import IngestStore
    from storage.writer import EventWriter

    tz = ZoneInfo(TIMEZONE)
    last_day = FIRST_DAY + timedelta(days=days - 1)
    # 18:00 local on the data's last day: "today" is the last day of the data, with most of its events behind.
    now = datetime.combine(last_day, dtime(18, 0), tzinfo=tz).astimezone(UTC)
    clock = FixedClock(now)
    community_id = stored_community_id(db, COMMUNITY)
    picks = _picks(db, community_id)
    settings = Settings(
        community=CommunitySettings(name=COMMUNITY, timezone=TIMEZONE),
        web=WebSettings(host="127.0.0.1", port=0),
        dashboard=DashboardSettings(enabled=True),
    )
    engine = make_engine(f"sqlite:///{db}")
    reads = RawReads()
    watch(engine, reads)
    store = IngestStore(engine)
    # As `cohortbot run` does at start-up (the community is there already: this only tells the store its id).
    store.register_community(COMMUNITY, TIMEZONE)
    writer = EventWriter(store)
    await writer.start()
    ctx = WebContext(
        settings=settings, engine=engine, clock=clock, community_id=community_id, signing_secret="b" * 48, writer=writer
    )
    server = WebServer(ctx, host="127.0.0.1", port=0)
    results = Results()
    try:
        await server.start()
        cache = server.app[REPORT_CACHE]
        builds = [0]
        took: list[tuple[bool, float]] = []  # (incremental, seconds) of every build, in order
        build = cache._build_frames

        def counted(rng: Any, previous: Any, changed_from: Any) -> Any:
            builds[0] += 1
            started = time.perf_counter()
            built = build(rng, previous, changed_from)
            took.append((built.incremental, time.perf_counter() - started))
            return built

        cache._build_frames = counted  # type: ignore[method-assign]
        identity = DashboardIdentity(community_id, SERVER_PLATFORM, SERVER_USER, "bench")
        opened = await asyncio.to_thread(open_session, engine, identity, clock.now())
        base = f"http://127.0.0.1:{server.port}"
        headers = {"Cookie": f"{COOKIE_NAME}={opened.token}"}
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(base, headers=headers, timeout=timeout) as session:
            pages = _pages(picks)
            cold: dict[str, float] = {}
            size: dict[str, int] = {}
            with reads.watching():
                for label, path in pages:
                    cold[label], size[label] = await _get(session, path)
            results.cold_raw = len(reads.raw) + len(reads.traced_raw)
            results.cold_statements = reads.traced
            reads.reset()
            warm: dict[str, list[float]] = {label: [] for label, _ in pages}
            before = builds[0]
            with reads.watching():
                for _ in range(args.repeats):
                    for label, path in pages:
                        ms, size[label] = await _get(session, path)
                        warm[label].append(ms)
            results.rebuilds_during_warm = builds[0] - before
            results.raw, results.statements = list(reads.raw), reads.statements
            results.traced_raw, results.traced = list(reads.traced_raw), reads.traced
            results.rows = [(label, cold[label], warm[label], size[label]) for label, _ in pages]

            # The live path: a message stored for today reaches an open /live stream.
            async with session.get("/live", timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as stream:
                figures = await _next_today(stream, LIVE_WITHIN_SECONDS)
                for i in range(args.live_samples):
                    await asyncio.sleep(1.0)  # a quiet spell between messages, as in a chat
                    seen = int(figures["messages"])
                    message = MessageEvent(
                        platform=Platform(picks.poster_platform),
                        community=COMMUNITY,
                        message_id=f"bench-live-{os.getpid()}-{i}",
                        channel=ChannelRef(picks.channel_platform_id, name=picks.channel_name),
                        author=MemberRef(picks.poster_user),
                        occurred_at=clock.now(),
                        length=12,
                    )
                    started = time.perf_counter()
                    await writer.put(message)
                    while int(figures["messages"]) <= seen:
                        left = LIVE_WITHIN_SECONDS - (time.perf_counter() - started)
                        figures = await _next_today(stream, max(left, 0.001))
                    results.live.append((time.perf_counter() - started) * 1000)

            # The first page load after those commits: the cached figures are stale now.
            builds_before = builds[0]
            results.after_commit_ms, _ = await _get(session, "/")
            rebuilding = builds[0] > builds_before
            running = [e.task for e in cache._entries.values() if e.task is not None]
            still_building = bool(running)
            waited = time.perf_counter()
            # With a busy writer a rebuild is almost always running: time the pages while this one does.
            for _label, path in pages:
                if not any(not task.done() for task in running):
                    break
                ms, _ = await _get(session, path)
                results.during_rebuild.append(ms)
            await asyncio.gather(*running, return_exceptions=True)
            rebuild_left = (time.perf_counter() - waited) * 1000
            if rebuilding and still_building:
                results.after_commit_note = (
                    f"served the previous figures while the rebuild went on (it finished {rebuild_left:,.0f} ms "
                    "after the page was served)"
                )
            elif rebuilding:
                results.after_commit_note = "the rebuild finished within the page's wait: served fresh figures"
            else:
                results.after_commit_note = "served from the cache (no rebuild was started)"
            settled, _ = await _get(session, "/")
            results.after_commit_note += f"; the next load took {settled:,.0f} ms"

            # The refresh after a commit, incremental (what the cache does), against a full build of the same
            # figures, interleaved: a message for today is committed, a page load starts the refresh, it is
            # awaited; then the full build runs on the same data and the figures are compared.
            (rng,) = [r for r, e in cache._entries.items() if e.data is not None]  # every page shows the default range
            entry = cache._entries[rng]
            reads.reset()
            for i in range(args.refresh_samples):
                entry.cooldown = 0.0  # the benchmark times each refresh; a busy writer's would be coalesced
                await writer.put(
                    MessageEvent(
                        platform=Platform(picks.poster_platform),
                        community=COMMUNITY,
                        message_id=f"bench-refresh-{os.getpid()}-{i}",
                        channel=ChannelRef(picks.channel_platform_id, name=picks.channel_name),
                        author=MemberRef(picks.poster_user),
                        occurred_at=clock.now(),
                        length=12,
                    )
                )
                await writer.flush()
                builds_before = len(took)
                # Only the refresh and the full build are watched (the writer's own statements read messages).
                with reads.watching():
                    await _get(session, "/")
                    running = [e.task for e in cache._entries.values() if e.task is not None]
                    await asyncio.gather(*running, return_exceptions=True)
                    incremental = [seconds for inc, seconds in took[builds_before:] if inc]
                    refreshed = entry.data
                    started = time.perf_counter()
                    full = await asyncio.to_thread(cache.full_build, rng)
                    full_ms = (time.perf_counter() - started) * 1000
                assert refreshed is not None
                equal = refreshed.report == full.report and refreshed.member_table.equals(full.member_table)
                results.refreshes.append((incremental[0] * 1000 if incremental else float("nan"), full_ms, equal))
            results.refresh_raw = len(reads.raw) + len(reads.traced_raw)
            results.refresh_statements = reads.traced
    finally:
        await server.stop()
        await writer.stop()
        engine.dispose()
    return results


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; the last line is the one-line summary."""
    print(
        f"cohortbot dashboard benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"aiohttp {aiohttp.__version__}; {os.cpu_count()} CPUs; load average {load_average()}",
        flush=True,
    )
    params = Params(members=args.members, events=args.events, weeks=args.history_weeks, seed=args.seed)
    cached = ensure(params, args.workdir)
    n = cached.counts
    how = "generated now" if cached.built_now else "cached"
    print(
        f"community: {args.members:,} members, {n['events']:,} events, {n['memberships']:,} joins/leaves, "
        f"{n['purchases']:,} purchases, {n['channels']} channels; {args.history_weeks} weeks from "
        f"{FIRST_DAY.isoformat()}, seed {args.seed} ({cached.db}, {how})",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="dashboard-") as tmp:
        db = Path(tmp) / "served.db"
        started = time.perf_counter()
        copy_database(cached.db, db)
        print(f"served copy: {db} ({time.perf_counter() - started:.1f} s to copy)", flush=True)
        try:
            results = asyncio.run(_serve_and_measure(db, args, params.days))
        finally:
            remove_sqlite(db)
    return _report(results, args)


def _report(results: Results, args: argparse.Namespace) -> int:
    print(f"pages: 1 cold request each, then {args.repeats} warm requests each (interleaved)")
    print(f"  {'page':<22} {'cold ms':>9} {'p50':>7} {'p95':>7} {'max':>7} {'bytes':>11}")
    everything: list[float] = []
    slowest = ("", -1.0)
    for label, cold, warm, size in results.rows:
        p95 = percentile(warm, 95)
        everything.extend(warm)
        if p95 > slowest[1]:
            slowest = (label, p95)
        print(
            f"  {label:<22} {cold:>9,.0f} {statistics.median(warm):>7,.1f} {p95:>7,.1f} {max(warm):>7,.1f} {size:>11,}"
        )
    p95_all = percentile(everything, 95)
    print(
        f"warm: {len(everything):,} requests, p50 {statistics.median(everything):,.1f} ms, p95 {p95_all:,.1f} ms; "
        f"report rebuilds during the warm requests (figures older than [dashboard] refresh_seconds): "
        f"{results.rebuilds_during_warm}"
    )
    live_max = max(results.live)
    print(
        f"live: message put to the writer -> /live event with the new count, {len(results.live)} samples: "
        f"median {statistics.median(results.live):,.0f} ms, max {live_max:,.0f} ms "
        f"({', '.join(f'{v:,.0f}' for v in results.live)})"
    )
    print(f"first page load after a commit: {results.after_commit_ms:,.0f} ms; {results.after_commit_note}")
    if results.during_rebuild:
        during = results.during_rebuild
        print(
            f"pages requested while that rebuild ran: {len(during)}, p50 {statistics.median(during):,.0f} ms, "
            f"max {max(during):,.0f} ms (served the previous figures)"
        )
    refresh_ok = bool(results.refreshes) and all(
        equal and not math.isnan(inc) for inc, _full, equal in results.refreshes
    )
    if results.refreshes:
        inc_ms = [inc for inc, _full, _equal in results.refreshes]
        full_ms = [full for _inc, full, _equal in results.refreshes]
        print(
            f"refresh after a commit (a message for today), {len(inc_ms)} samples interleaved: incremental "
            f"{statistics.median(inc_ms):,.0f} ms ({', '.join(f'{v:,.0f}' for v in inc_ms)}), full build "
            f"{statistics.median(full_ms):,.0f} ms ({', '.join(f'{v:,.0f}' for v in full_ms)}); "
            f"{statistics.median(full_ms) / statistics.median(inc_ms):.1f}x faster; figures equal a full build: "
            f"{'yes' if all(e for *_, e in results.refreshes) else 'NO'}"
        )
        print(
            f"  (those refreshes and full builds: {results.refresh_raw} of {results.refresh_statements:,} statements "
            "sqlite3 ran read a raw event table)"
        )
    raw = len(results.raw) + len(results.traced_raw) + results.refresh_raw
    print(
        f"raw-event reads during the warm page requests: {len(results.raw)} of {results.statements:,} SQL statements "
        f"through SQLAlchemy, {len(results.traced_raw)} of {results.traced:,} that sqlite3 ran (raw cursors "
        f"included) (tables {', '.join(RAW_TABLES)})"
    )
    print(
        f"  (the cold requests, which build the figures of the range: {results.cold_raw} of "
        f"{results.cold_statements:,} statements sqlite3 ran read a raw event table)"
    )
    for statement in [*results.raw, *results.traced_raw][:5]:
        print(f"  {statement}")
    print(
        f"targets: p95 <= {TARGET_P95_MS:g} ms {met(p95_all <= TARGET_P95_MS)}; live <= {TARGET_LIVE_MS:,.0f} ms "
        f"{met(live_max <= TARGET_LIVE_MS)}; served from rollups, never raw events {met(raw == 0)}; "
        f"incremental refresh equal to a full build {met(refresh_ok)} (load average now {load_average()})"
    )
    refresh = ""
    if results.refreshes:
        refresh = f", refresh {statistics.median([inc for inc, *_ in results.refreshes]):.0f} ms"
        refresh += f" (full {statistics.median([full for _, full, _ in results.refreshes]):.0f} ms)"
    print(f"dashboard: p95 {p95_all:.0f} ms, slowest {slowest[0]} {slowest[1]:.0f} ms, live {live_max:.0f} ms{refresh}")
    return 0 if raw == 0 and refresh_ok else 1
