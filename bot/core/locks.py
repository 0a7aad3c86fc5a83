"""Per-key asyncio locks, for work that must not run twice at once for one thing (one payment, one charge)."""

from __future__ import annotations

import asyncio
import weakref


class KeyedLocks:
    """Hands out one :class:`asyncio.Lock` per key; a lock nobody holds or waits for is forgotten."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: str) -> asyncio.Lock:
        """The lock for ``key`` (the same object for every caller while anyone holds a reference to it)."""
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock
