"""Figures that many commands share, computed once per data version and local day.

On a big community a report, the leaderboard's ranking or the ``/stats`` rank table takes from a few hundred
milliseconds to seconds to compute from the rollups, yet it only changes when the writer commits something new.
The dispatcher keeps one :class:`FiguresCache`; the writer's commit listener calls :meth:`FiguresCache.invalidate`,
and the commands that change what the figures show without the writer (leaderboard and nudge preferences,
``/forget``) call :meth:`FiguresCache.clear`, so that nobody is ever shown what a member just hid or deleted.
Every key names the community-local day the figures are for, so a new day never reuses yesterday's figures.

As in the dashboard's report cache, figures whose last build took more than ``SLOW_BUILD_SECONDS`` (a big
community) are not rebuilt for every commit of a busy writer, and after a commit a command waits for their rebuild
only during its first ``STALE_WAIT_SECONDS``; it is otherwise answered with the previous figures while the rebuild
goes on. Quickly built figures (a small community's take milliseconds) are always waited for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from storage.writer import Commit

T = TypeVar("T")

MAX_AGE_SECONDS = 300.0
"""Figures older than this are read again even without a commit (writes by another process: an import, the CLI)."""
MAX_ENTRIES = 32  # a handful of keys per day (report, inactive, leaderboard, ranks, ledger, chart)
STALE_WAIT_SECONDS = 0.5  # how long a command waits for a rebuild before it is answered from the previous figures
SLOW_BUILD_SECONDS = 1.0  # a build slower than this ...
SLOW_BUILD_FACTOR = 4.0  # ... is not restarted by a commit until this many build times after it started


@dataclass
class _Entry:
    value: Any = None
    has_value: bool = False
    version: int = -1  # the data version the value was read at
    built: float = 0.0  # time.monotonic() when the value's build started
    cooldown: float = 0.0  # seconds after a slow build before a commit may start the next one
    task: asyncio.Future[Any] | None = None  # a build in progress
    task_started: float = 0.0


class FiguresCache:
    """Values computed in a thread, kept until the data changes, ``MAX_AGE_SECONDS`` pass, or the day turns."""

    def __init__(self, *, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        """Create an empty cache.

        Args:
            max_age_seconds: How long a value is reused when nothing tells the cache that the data changed.
        """
        self.max_age_seconds = max_age_seconds
        self._version = 0
        self._entries: dict[Hashable, _Entry] = {}

    @property
    def version(self) -> int:
        """How many times the data changed since the cache was made."""
        return self._version

    def invalidate(self, commit: Commit | None = None) -> None:
        """The data changed (the writer's commit listener; it runs on the event loop): rebuild on the next read.

        Args:
            commit: What the writer committed (every cached figure is rebuilt, whatever it touched).
        """
        self._version += 1

    def clear(self) -> None:
        """Forget every value, so that none is served again even while its rebuild runs (a deletion, a preference)."""
        self._version += 1
        self._entries.clear()

    async def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value under ``key``, built by ``build`` in a thread when missing or stale.

        Callers asking for the same key while it is built share that one build. A build that fails is not kept:
        the next caller tries again.

        Args:
            key: What the value is (include the local day it is for).
            build: Computes the value from the database (runs in a worker thread).

        Returns:
            The value.
        """
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= MAX_ENTRIES:
                # Old days' keys pile up otherwise; the current ones are rebuilt on their next read.
                self._entries.clear()
            entry = self._entries[key] = _Entry()
        if entry.has_value and entry.version == self._version and now - entry.built <= self.max_age_seconds:
            return cast(T, entry.value)
        if entry.task is None:
            slow_and_recent = entry.has_value and now - entry.built < entry.cooldown
            if slow_and_recent and now - entry.built <= self.max_age_seconds:
                return cast(T, entry.value)
            self._start(entry, build, now)
        assert entry.task is not None
        if not entry.has_value or entry.cooldown == 0.0:
            # No figures yet, or their build was quick (a small community): wait for the fresh ones. shield: a caller
            # that gives up (its command cancelled) does not cancel the others' build.
            return cast(T, await asyncio.shield(entry.task))
        wait = STALE_WAIT_SECONDS - (now - entry.task_started)
        if wait <= 0:
            return cast(T, entry.value)
        try:
            return cast(T, await asyncio.wait_for(asyncio.shield(entry.task), wait))
        except TimeoutError:
            return cast(T, entry.value)

    def _start(self, entry: _Entry, build: Callable[[], Any], now: float) -> None:
        version = self._version
        task = asyncio.ensure_future(asyncio.to_thread(build))
        entry.task, entry.task_started = task, now

        def done(finished: asyncio.Future[Any]) -> None:
            entry.task = None
            if not finished.cancelled() and finished.exception() is None:
                entry.value, entry.has_value, entry.version, entry.built = finished.result(), True, version, now
                took = time.monotonic() - now
                entry.cooldown = SLOW_BUILD_FACTOR * took if took > SLOW_BUILD_SECONDS else 0.0

        task.add_done_callback(done)
