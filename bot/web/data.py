"""The dashboard's figures: the community report per date range, built in a thread and cached.

Building a report reads the rollups and runs the analytics (tens to hundreds of milliseconds on a big community);
a page must not pay that on every request. The cache keeps one report per range and rebuilds it when the writer
committed something new (:meth:`ReportCache.invalidate`, called by the live feed) or after ``refresh_seconds``
(standalone, where nobody calls it).
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
    ReportRequest,
    build_community_report,
    check_report_day,
)
from bot.web.context import WebContext
from storage.communities import latest_activity_day
from storage.ledger import LedgerRow, ledger
from storage.report_frames import last_active_before, member_days, members

DEFAULT_WEEKS = 12
MAX_CACHED = 16  # ranges kept; a dashboard is used by a handful of admins picking a few ranges
STALE_WAIT_SECONDS = 0.5  # how long a page waits for a rebuild before it is served the previous figures
SLOW_BUILD_SECONDS = 1.0  # a build slower than this ...
SLOW_BUILD_FACTOR = 4.0  # ... is not restarted by a commit until this many build times after it started


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
    task_started: float = 0.0  # time.monotonic() when the build in progress started
    task: asyncio.Task[DashboardData] | None = None  # a build in progress
    task_version: int = -1
    used: float = 0.0
    cooldown: float = 0.0  # seconds after a slow build before a commit may start the next one


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

    @property
    def version(self) -> int:
        """Bumped by every :meth:`invalidate`."""
        return self._version

    def invalidate(self) -> None:
        """Forget every cached range (the writer committed new events); the next page read rebuilds it."""
        self._version += 1

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
            return await asyncio.shield(entry.task)
        # Pages wait only in the rebuild's first STALE_WAIT_SECONDS: while a slow one (seconds on 100,000 members)
        # goes on, every later page gets the previous figures at once instead of after the same wait.
        wait = STALE_WAIT_SECONDS - (now - entry.task_started)
        if wait <= 0:
            return entry.data
        try:
            return await asyncio.wait_for(asyncio.shield(entry.task), wait)
        except TimeoutError:
            return entry.data
        except ReportError:
            return entry.data

    def _start(self, rng: DashboardRange, entry: _Entry, now: float) -> None:
        version = self._version
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._build, rng))
        entry.task, entry.task_version = task, version
        entry.task_started = now

        def done(finished: asyncio.Task[DashboardData]) -> None:
            entry.task = None
            if not finished.cancelled() and finished.exception() is None:
                entry.data, entry.version, entry.built = finished.result(), version, now
                took = time.monotonic() - now
                entry.cooldown = SLOW_BUILD_FACTOR * took if took > SLOW_BUILD_SECONDS else 0.0

        task.add_done_callback(done)

    def _trim(self) -> None:
        while len(self._entries) > MAX_CACHED:
            oldest = min(self._entries, key=lambda r: self._entries[r].used)
            del self._entries[oldest]

    def _build(self, rng: DashboardRange) -> DashboardData:
        ctx = self._ctx
        now = ctx.clock.now()
        request = ReportRequest(
            community=ctx.settings.community.name,
            as_of=rng.end,
            weeks=rng.weeks,
            inactive_after_days=ctx.settings.nudges.inactive_after_days,
            top_n=50,
        )
        report, hint = build_community_report(ctx.engine, request, now=now)
        tz = self.timezone()
        first_day = history_start(rng.end, weeks=1)
        end = datetime.combine(rng.end + timedelta(days=1), datetime.min.time(), tzinfo=tz)
        with ctx.engine.connect() as conn:
            days = member_days(conn, ctx.community_id, first_day, rng.end)
            frame = members(conn, ctx.community_id, not_members=BUILT_IN_OWNERS)
            earlier = last_active_before(conn, ctx.community_id, first_day, end)
            latest = latest_activity_day(conn, ctx.community_id)
        table = member_table(
            ActivityRows.from_frame(days), frame, as_of=rng.end, timezone=tz, last_active_before=earlier
        )
        rows = tuple(ledger(ctx.engine, ctx.community_id))
        return DashboardData(rng, report, hint, table, rows, latest, now)


REPORT_CACHE: web.AppKey[ReportCache] = web.AppKey("cohortbot_report_cache", ReportCache)
"""Where :func:`bot.web.pages.add_page_routes` keeps the cache.

The live feed calls ``app[REPORT_CACHE].invalidate()`` after the writer's commits."""
