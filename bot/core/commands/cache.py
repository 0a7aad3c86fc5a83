"""Figures that many commands share, computed once per data version and local day.

On a big community a report, the leaderboard's ranking or the ``/stats`` rank table takes from a few hundred
milliseconds to seconds to compute from the rollups, yet it only changes when the writer commits something new.
The dispatcher keeps one :class:`FiguresCache`; the writer's commit listener (and the commands that change what
the figures show without the writer: leaderboard and nudge preferences, ``/forget``) call
:meth:`FiguresCache.invalidate`. Every key names the community-local day the figures are for, so a new day never
reuses yesterday's figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")

MAX_AGE_SECONDS = 300.0
"""Figures older than this are read again even without a commit (writes by another process: an import, the CLI)."""
MAX_ENTRIES = 32  # a handful of keys per day (report, inactive, leaderboard, ranks, ledger, chart)


class FiguresCache:
    """Values computed in a thread, kept until the data changes, ``MAX_AGE_SECONDS`` pass, or the day turns."""

    def __init__(self, *, max_age_seconds: float = MAX_AGE_SECONDS) -> None:
        """Create an empty cache.

        Args:
            max_age_seconds: How long a value is reused when nothing tells the cache that the data changed.
        """
        self.max_age_seconds = max_age_seconds
        self._version = 0
        self._entries: dict[Hashable, tuple[int, float, asyncio.Future[Any]]] = {}

    @property
    def version(self) -> int:
        """How many times the data changed since the cache was made."""
        return self._version

    def invalidate(self) -> None:
        """Forget every value: the data changed (a writer commit listener; it runs on the event loop)."""
        self._version += 1
        self._entries.clear()

    async def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value under ``key``, built by ``build`` in a thread when missing or stale.

        Callers asking for the same key while it is built wait for that one build. A build that fails is not
        kept: the next caller tries again.

        Args:
            key: What the value is (include the local day it is for).
            build: Computes the value from the database (runs in a worker thread).

        Returns:
            The value.
        """
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None:
            version, built, future = entry
            if version == self._version and now - built <= self.max_age_seconds:
                # shield: a caller that gives up (its command cancelled) does not cancel the others' build.
                return cast(T, await asyncio.shield(future))
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        future = asyncio.ensure_future(asyncio.to_thread(build))
        entry = (self._version, now, future)
        self._entries[key] = entry
        try:
            return await asyncio.shield(future)
        except BaseException:
            if self._entries.get(key) is entry:
                del self._entries[key]
            raise
