"""The dashboard's figures: the community report per date range, built in a thread and cached.

Building a report reads the rollups and runs the analytics (seconds on a community of 100,000 members); a page
must not pay that on every request. The cache keeps one report per range and refreshes it when the writer
committed something new (:meth:`ReportCache.invalidate`, the writer's commit listener) or after
``refresh_seconds`` (standalone, where nobody calls it).

A refresh after a commit is incremental: the cache keeps the frames it read (``storage.report_frames``) and reads
again only the days from the earliest day the commits touched (the big reads: member days and the channels'
authors) plus the small frames (members, the ledger, daily totals), then recomputes the figures from them. They are
the figures a full build would give. A full build happens for a new range, when a commit's extent is unknown (a
removed reaction, a deleted member), standalone, and at least every ``FULL_REBUILD_FACTOR`` x ``refresh_seconds``.

Subscription periods and their ends are written by ``storage.subscriptions``, not through the writer, so no commit
announces them; every refresh reads them again in full (a small table), and a period recorded just after its
purchase's commit shows at the next commit or after ``refresh_seconds`` at the latest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from aiohttp import web

from analytics.activity import ActivityRows
from analytics.members import member_table
from analytics.report import history_start, range_start
from analytics.results import Report
from analytics.weeks import week_start
from bot.reporting import (
    BUILT_IN_OWNERS,
    MAX_WEEKS,
    ReportError,
    check_report_day,
    report_from_frames,
    resolve_community,
)
from bot.web.context import WebContext
from storage.communities import latest_activity_day
from storage.ledger import LedgerRow, ledger
from storage.report_frames import ReportFrames, last_active_before, load_report_frames
from storage.writer import Commit

DEFAULT_WEEKS = 12
MAX_CACHED = 16  # ranges kept; a dashboard is used by a handful of admins picking a few ranges
STALE_WAIT_SECONDS = 0.5  # how long a page waits for a rebuild before it is served the previous figures
SLOW_BUILD_SECONDS = 1.0  # a build slower than this ...
SLOW_BUILD_FACTOR = 4.0  # ... is not restarted by a commit until this many build times after it started
FULL_REBUILD_FACTOR = 10.0  # in-process, a full build at least every this many refresh_seconds (else incremental)
KEPT_FRAMES = 2  # ranges whose frames are kept for incremental refreshes (~100 MB each on 100,000 members)
TOP_N = 50


class RangeError(ValueError):
    """A ``from``/``to`` query that names no valid range; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class DashboardRange:
    """The days a page shows: ``start`` .. ``end`` (``end`` is the as-of day), both local days.

    The report counts whole ISO weeks, so it covers ``start``'s Monday to ``end``.
    """

    start: date
    end: date

    @property
    def weeks(self) -> int:
        """ISO weeks from the week of ``start`` to the week of ``end``."""
        return (week_start(self.end) - week_start(self.start)).days // 7 + 1

    def query(self) -> str:
        """The query string that selects this range."""
        return f"from={self.start.isoformat()}&to={self.end.isoformat()}"


def _day(value: str, name: str) -> date:
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise RangeError(f"'{name}' must be a day written YYYY-MM-DD, got {value!r}") from None
    try:
        return check_report_day(day, name)
    except ReportError as exc:
        raise RangeError(str(exc)) from None


def parse_range(query: Mapping[str, str], *, default_end: date) -> DashboardRange:
    """The range a page's ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` asks for.

    Args:
        query: The request's query parameters.
        default_end: The as-of day when ``to`` is missing (today, or the last day with data for an import).

    Returns:
        The range; without ``from``, the last 12 ISO weeks up to ``to``.

    Raises:
        RangeError: A day that is not a date, outside the supported years, ``from`` after ``to``, or a range longer
            than the report supports.
    """
    raw_to, raw_from = query.get("to", "").strip(), query.get("from", "").strip()
    end = _day(raw_to, "to") if raw_to else default_end
    start = _day(raw_from, "from") if raw_from else range_start(end, DEFAULT_WEEKS)
    if start > end:
        raise RangeError(f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}): pick an earlier start")
    rng = DashboardRange(start, end)
    if rng.weeks > MAX_WEEKS:
        raise RangeError(f"the range spans {rng.weeks} weeks; at most {MAX_WEEKS} (20 years) can be shown")
    return rng


@dataclass(frozen=True)
class DashboardData:
    """What the pages of one range show.

    Attributes:
        range: The range.
        report: The community report as of ``range.end`` over ``range.weeks`` weeks.
        hint: Why the range may look empty (no recent activity), or None.
        member_table: One row per member (``analytics.members.member_table``), indexed by member id.
        ledger: Every purchase with its refund, oldest first.
        latest_day: The last local day with any recorded activity, or None.
        built_at: When the figures were read (UTC).
    """

    range: DashboardRange
    report: Report
    hint: str | None
    member_table: pd.DataFrame
    ledger: tuple[LedgerRow, ...]
    latest_day: date | None
    built_at: datetime
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Values the pages derive from these figures once (the member rows of a tab), reused until they are rebuilt."""


@dataclass
class _Entry:
    data: DashboardData | None = None  # the newest complete figures
    version: int = -1  # the cache version those figures were read at
    built: float = 0.0  # time.monotonic() when their build started
    full_built: float = 0.0  # time.monotonic() when the last full build started
    frames: ReportFrames | None = None  # what the figures were computed from, kept for an incremental refresh
    changed_from: date | None = None  # the first local day commits touched since the last build started ...
    changed_all: bool = False  # ... or True when they may have touched any day
    task_started: float = 0.0  # time.monotonic() when the build in progress started
    task: asyncio.Task[_Built] | None = None  # a build in progress
    task_version: int = -1
    used: float = 0.0
    cooldown: float = 0.0  # seconds after a slow build before a commit may start the next one


@dataclass(frozen=True)
class _Built:
    data: DashboardData
    frames: ReportFrames
    incremental: bool


class ReportCache:
    """The figures of each range the pages asked for, rebuilt after a commit or ``refresh_seconds``."""

    def __init__(self, ctx: WebContext, *, refresh_seconds: float | None = None) -> None:
        """Create an empty cache.

        Args:
            ctx: The web context (database, clock, community).
            refresh_seconds: How old figures may get when nobody calls :meth:`invalidate`; default
                ``[dashboard] refresh_seconds``.
        """
        self._ctx = ctx
        self._refresh = float(ctx.settings.dashboard.refresh_seconds if refresh_seconds is None else refresh_seconds)
        self._version = 0
        self._entries: dict[DashboardRange, _Entry] = {}
        self._incremental = 0
        # Standalone (no writer to say what changed), every refresh is a full build.
        self._full_every = FULL_REBUILD_FACTOR * self._refresh if ctx.writer is not None else 0.0

    @property
    def version(self) -> int:
        """Bumped by every :meth:`invalidate`."""
        return self._version

    def invalidate(self, commit: Commit | None = None) -> None:
        """The data changed (the writer's commit listener): the next page read refreshes the figures.

        Args:
            commit: What the writer committed: the refresh reads again only the days from the earliest one it
                touched. None (or a commit of unknown extent): every day may have changed, the next build is full.
        """
        if commit is not None and self._ctx.settings.community.name not in commit.communities:
            return
        self._version += 1
        day = None if commit is None or commit.earliest is None else commit.earliest.astimezone(self.timezone()).date()
        for entry in self._entries.values():
            if day is None:
                entry.changed_all = True
            elif entry.changed_from is None or day < entry.changed_from:
                entry.changed_from = day

    @property
    def incremental_builds(self) -> int:
        """How many refreshes were incremental (the benchmark reports it)."""
        return self._incremental

    def timezone(self) -> ZoneInfo:
        """The community's time zone."""
        return self._ctx.settings.community.tz

    def today(self) -> date:
        """The community-local day now."""
        return self._ctx.clock.now().astimezone(self.timezone()).date()

    async def default_end(self) -> date:
        """Today, or the last day with data when the data ends more than 28 days ago (an import)."""
        today = self.today()
        latest = await asyncio.to_thread(self._latest_day)
        if latest is not None and (today - latest).days > 28:
            return latest
        return today

    def _latest_day(self) -> date | None:
        with self._ctx.engine.connect() as conn:
            return latest_activity_day(conn, self._ctx.community_id)

    async def get(self, rng: DashboardRange) -> DashboardData:
        """The figures of ``rng``: cached until the data changed (:meth:`invalidate`) or ``refresh_seconds`` passed.

        One build per range runs at a time. When the figures are stale, a page waits for the rebuild until
        ``STALE_WAIT_SECONDS`` after it started (a small community's takes milliseconds) and is otherwise served the
        previous figures while the rebuild goes on: on a big community with a busy writer, a page never waits for
        every commit.

        Raises:
            ReportError: The report cannot be built (the community is missing from the database).
        """
        now = time.monotonic()
        entry = self._entries.get(rng)
        if entry is None:
            entry = self._entries[rng] = _Entry()
            self._trim()
        entry.used = now
        fresh = entry.data is not None and entry.version == self._version and now - entry.built < self._refresh
        if fresh:
            assert entry.data is not None
            return entry.data
        if entry.task is None:
            # A build that took seconds (a big community) is not repeated for every commit of a busy writer: the
            # figures may lag by a few build times, never more than that plus refresh_seconds.
            if entry.data is not None and entry.version != self._version and now - entry.built < entry.cooldown:
                return entry.data
            self._start(rng, entry, now)
        assert entry.task is not None
        if entry.data is None:
            return (await asyncio.shield(entry.task)).data
        # Pages wait only in the rebuild's first STALE_WAIT_SECONDS: while a slow one (seconds on 100,000 members)
        # goes on, every later page gets the previous figures at once instead of after the same wait.
        wait = STALE_WAIT_SECONDS - (now - entry.task_started)
        if wait <= 0:
            return entry.data
        try:
            return (await asyncio.wait_for(asyncio.shield(entry.task), wait)).data
        except TimeoutError:
            return entry.data
        except ReportError:
            return entry.data

    def _start(self, rng: DashboardRange, entry: _Entry, now: float) -> None:
        version = self._version
        previous = entry.frames
        if entry.changed_all or now - entry.full_built >= self._full_every:
            previous = None
        changed_from = entry.changed_from
        # Commits from now on are the next build's: this one reads a snapshot taken after it started.
        entry.changed_from, entry.changed_all = None, False
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self._build_frames, rng, previous, changed_from)
        )
        entry.task, entry.task_version = task, version
        entry.task_started = now

        def done(finished: asyncio.Task[_Built]) -> None:
            entry.task = None
            if finished.cancelled() or finished.exception() is not None:
                entry.changed_all = True  # what this build would have read is still to be read
                return
            built = finished.result()
            entry.data, entry.version, entry.built, entry.frames = built.data, version, now, built.frames
            if built.incremental:
                self._incremental += 1
            else:
                entry.full_built = now
            self._trim_frames()
            took = time.monotonic() - now
            entry.cooldown = SLOW_BUILD_FACTOR * took if took > SLOW_BUILD_SECONDS else 0.0
            if not built.incremental and self._full_every > 0 and entry.frames is not None:
                # The next refresh reads only what the commits touched: a slow full build says nothing of its
                # cost, and the commits that came during this one are shown as soon as a page asks.
                entry.cooldown = 0.0

        task.add_done_callback(done)

    def _trim(self) -> None:
        while len(self._entries) > MAX_CACHED:
            oldest = min(self._entries, key=lambda r: self._entries[r].used)
            del self._entries[oldest]

    def _trim_frames(self) -> None:
        kept = sorted((e for e in self._entries.values() if e.frames is not None), key=lambda e: e.used)
        for entry in kept[: max(0, len(kept) - KEPT_FRAMES)]:
            entry.frames = None  # its next refresh is a full build

    def full_build(self, rng: DashboardRange) -> DashboardData:
        """The figures of ``rng`` built in full, bypassing the cache (blocking: run it in a thread).

        What every refresh must equal; tests and ``python -m bench dashboard`` compare an incremental refresh with it.
        """
        return self._build_frames(rng, None, None).data

    def _build_frames(self, rng: DashboardRange, previous: ReportFrames | None, changed_from: date | None) -> _Built:
        ctx = self._ctx
        now = ctx.clock.now()
        info = resolve_community(ctx.engine, ctx.settings.community.name)
        tz = ZoneInfo(info.timezone)
        loaded = load_report_frames(
            ctx.engine,
            info,
            rng.end,
            history_start=history_start(rng.end, rng.weeks),
            not_members=BUILT_IN_OWNERS,
            range_start=range_start(rng.end, rng.weeks),
            previous=previous,
            changed_from=changed_from,
        )
        frames = loaded.frames
        with ctx.engine.connect() as conn:
            latest = latest_activity_day(conn, ctx.community_id)
        # The member table looks back as far as a one-week report does: usually the same days as the report's (so
        # the report reuses it); a longer range loads more, of which the table takes its days only.
        first_day = history_start(rng.end, weeks=1)
        rows = ActivityRows.from_frame(frames.member_days)
        shared = first_day == loaded.history_start
        if shared:
            table = member_table(
                rows, frames.members, as_of=rng.end, timezone=tz, last_active_before=frames.last_active_before
            )
        else:
            end = datetime.combine(rng.end + timedelta(days=1), datetime.min.time(), tzinfo=tz)
            with ctx.engine.connect() as conn:
                earlier = last_active_before(conn, ctx.community_id, first_day, end)
            days = frames.member_days
            table = member_table(
                ActivityRows.from_frame(days[days["day"] >= pd.Timestamp(first_day)]),
                frames.members,
                as_of=rng.end,
                timezone=tz,
                last_active_before=earlier,
            )
        report, hint = report_from_frames(
            frames,
            as_of=rng.end,
            weeks=rng.weeks,
            inactive_after_days=ctx.settings.nudges.inactive_after_days,
            top_n=TOP_N,
            today=now.astimezone(tz).date(),
            latest=latest,
            table=table if shared else None,
        )
        ledger_rows = tuple(ledger(ctx.engine, ctx.community_id))
        data = DashboardData(rng, report, hint, table, ledger_rows, latest, now)
        return _Built(data, loaded, previous is not None)


REPORT_CACHE: web.AppKey[ReportCache] = web.AppKey("cohortbot_report_cache", ReportCache)
"""Where :func:`bot.web.pages.add_page_routes` keeps the cache.

In-process, the writer's commits call ``app[REPORT_CACHE].invalidate(commit)``."""
