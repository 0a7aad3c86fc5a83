"""``python -m bench commands``: how long members and admins wait for the bot's answers on a big community.

The analytics benchmark's synthetic community (100,000 members, 20,000,000 events over 52 weeks by default) is
copied to a temporary file; the real :class:`~bot.core.dispatcher.Dispatcher` with every command, a real
``EventWriter`` on the copy and a clock fixed at 18:00 on the data's last day answer commands as the adapters
would hand them over (handler, storage reads, rendering, the chart where the command sends one; no network):

* ``/stats`` for ``--stats`` random members, ``/leaderboard`` for ``--leaderboard`` random members;
* ``/inactive`` and ``/report`` ``--admin-runs`` times each, by an admin.

Each command is answered once before timing (warm: the first answer may fill caches), then the samples are
timed. While they run, every SQL statement is inspected: answers come from the rollups and caches, never from the
raw event tables (``messages``, ``reactions``, ``membership_events``).

The last line is ``commands: stats p99 <A> ms, leaderboard p99 <B> ms, inactive p95 <C> ms, report p95 <D> ms at
<N> events``. Targets: stats p99 <= 10 ms, leaderboard p99 <= 20 ms, inactive p95 <= 200 ms, report p95 <= 1,000 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.analytics.common import add_community_arguments
from bench.dashboard import RAW_TABLES, FixedClock, RawReads, watch
from bench.measure import (
    copy_database,
    load_average,
    met,
    percentile,
    positive_int,
    remove_sqlite,
    stored_community_id,
)
from bench.synthetic import COMMUNITY, FIRST_DAY, TIMEZONE, Params, ensure

TARGETS_MS = {"stats": 10.0, "leaderboard": 20.0, "inactive": 200.0, "report": 1000.0}
QUANTILE = {"stats": 99, "leaderboard": 99, "inactive": 95, "report": 95}
ADMIN_USER = "bench-admin"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench commands``."""
    add_community_arguments(
        parser,
        seed_help="random seed of the community and the samples",
        workdir_note="; the copy the bot uses goes there too",
    )
    parser.add_argument("--stats", type=positive_int, default=500, help="members sampled for /stats (default 500)")
    parser.add_argument(
        "--leaderboard", type=positive_int, default=200, help="members sampled for /leaderboard (default 200)"
    )
    parser.add_argument(
        "--admin-runs", type=positive_int, default=20, help="timed runs of /inactive and of /report (default 20)"
    )


class NoActions:
    """The platform's capabilities: none of the timed commands grants access or refunds."""

    async def grant_access(self, member: object, course: object) -> object:
        raise RuntimeError("not used by the timed commands")

    async def revoke_access(self, member: object, course: object) -> object:
        raise RuntimeError("not used by the timed commands")

    async def refund_payment(self, member: object, charge_id: str) -> None:
        raise RuntimeError("not used by the timed commands")


@dataclass
class Results:
    samples: dict[str, list[float]] = field(default_factory=dict)
    cold: dict[str, float] = field(default_factory=dict)
    statements: int = 0
    traced: int = 0
    raw: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # one answer's first line per command, to show


def _sample_members(db: Path, community_id: int, n: int, rng: random.Random) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT platform, platform_user_id FROM members WHERE community_id = ? AND is_bot = 0 ORDER BY id",
            (community_id,),
        ).fetchall()
    finally:
        conn.close()
    return [(str(p), str(u)) for p, u in rng.choices(rows, k=n)]


async def _measure(db: Path, args: argparse.Namespace, days: int) -> Results:
    # Imported here: the bench's other commands do not need the bot.
    from bot.config import Settings
    from bot.config.settings import CommunitySettings
    from bot.core.commands import all_commands
    from bot.core.dispatcher import Dispatcher
    from storage.engine import make_engine
    from storage.events import CommandInvocation, MemberRef, Platform
    from storage.ingest import IngestStore
    from storage.writer import EventWriter

    tz = ZoneInfo(TIMEZONE)
    last_day = FIRST_DAY + timedelta(days=days - 1)
    now = datetime.combine(last_day, dtime(18, 0), tzinfo=tz).astimezone(UTC)
    clock = FixedClock(now)
    community_id = stored_community_id(db, COMMUNITY)
    rng = random.Random(args.seed)
    stats_members = _sample_members(db, community_id, args.stats, rng)
    board_members = _sample_members(db, community_id, args.leaderboard, rng)
    settings = Settings(community=CommunitySettings(name=COMMUNITY, timezone=TIMEZONE))
    engine = make_engine(f"sqlite:///{db}")
    reads = RawReads()
    watch(engine, reads)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, TIMEZONE)
    writer = EventWriter(store)
    await writer.start()
    dispatcher = Dispatcher(all_commands(), settings=settings, engine=engine, writer=writer, clock=clock)
    dispatcher.bind(community_id)
    actions = NoActions()
    results = Results()

    async def run(name: str, who: tuple[str, str], *, admin: bool = False) -> tuple[float, Any]:
        invocation = CommandInvocation(
            platform=Platform(who[0]),
            community=COMMUNITY,
            name=name,
            invoker=MemberRef(who[1]),
            occurred_at=clock.now(),
        )
        started = time.perf_counter()
        reply = await dispatcher.dispatch(invocation, is_admin=admin, actions=actions)  # type: ignore[arg-type]
        elapsed = (time.perf_counter() - started) * 1000
        text = reply.text.plain()
        if "failed on our side" in text or "cannot be built" in text:
            raise RuntimeError(f"/{name} failed: {text}")
        if name == "report" and not reply.attachments:
            raise RuntimeError("/report sent no chart")
        return elapsed, reply

    admin = (Platform.DISCORD.value, ADMIN_USER)
    plan: list[tuple[str, list[tuple[str, str]], bool]] = [
        ("stats", stats_members, False),
        ("leaderboard", board_members, False),
        ("inactive", [admin] * args.admin_runs, True),
        ("report", [admin] * args.admin_runs, True),
    ]
    try:
        # Cold: the first answer of each command (it may fill the caches the others then reuse).
        with reads.watching():
            for name, who, is_admin in plan:
                results.cold[name], reply = await run(name, who[0], admin=is_admin)
                results.answers[name] = reply.text.plain().splitlines()[0]
        reads.reset()
        with reads.watching():
            for name, who, is_admin in plan:
                results.samples[name] = [(await run(name, w, admin=is_admin))[0] for w in who]
        results.statements, results.traced = reads.statements, reads.traced
        results.raw = [*reads.raw, *reads.traced_raw]
    finally:
        await writer.stop()
        engine.dispose()
    return results


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; the last line is the one-line summary."""
    print(
        f"cohortbot commands benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; "
        f"{os.cpu_count()} CPUs; load average {load_average()}",
        flush=True,
    )
    params = Params(members=args.members, events=args.events, weeks=args.history_weeks, seed=args.seed)
    cached = ensure(params, args.workdir)
    n = cached.counts
    how = "generated now" if cached.built_now else "cached"
    print(
        f"community: {args.members:,} members, {n['events']:,} events; {args.history_weeks} weeks from "
        f"{FIRST_DAY.isoformat()}, seed {args.seed} ({cached.db}, {how})",
        flush=True,
    )
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="commands-") as tmp:
        db = Path(tmp) / "bot.db"
        copy_database(cached.db, db)
        try:
            results = asyncio.run(_measure(db, args, params.days))
        finally:
            remove_sqlite(db)
    print(f"  {'command':<13} {'runs':>5} {'cold ms':>9} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
    figures: dict[str, float] = {}
    for name, values in results.samples.items():
        figures[name] = percentile(values, QUANTILE[name])
        print(
            f"  /{name:<12} {len(values):>5} {results.cold[name]:>9,.1f} {statistics.median(values):>8,.1f} "
            f"{percentile(values, 95):>8,.1f} {percentile(values, 99):>8,.1f} {max(values):>8,.1f}"
        )
    for name, first in results.answers.items():
        print(f"  /{name} answers: {first[:100]}")
    print(
        f"raw-event reads during the timed commands: {len(results.raw)} of {results.statements:,} SQL statements "
        f"through SQLAlchemy and {results.traced:,} that sqlite3 ran (tables {', '.join(RAW_TABLES)})"
    )
    for statement in results.raw[:5]:
        print(f"  {statement}")
    targets = "; ".join(
        f"{name} p{QUANTILE[name]} <= {TARGETS_MS[name]:,.0f} ms {met(figures[name] <= TARGETS_MS[name])}"
        for name in TARGETS_MS
    )
    print(f"targets: {targets}; never raw events {met(not results.raw)} (load average now {load_average()})")
    print(
        f"commands: stats p99 {figures['stats']:.1f} ms, leaderboard p99 {figures['leaderboard']:.1f} ms, "
        f"inactive p95 {figures['inactive']:.0f} ms, report p95 {figures['report']:.0f} ms at {n['events']} events"
    )
    return 0 if not results.raw else 1
