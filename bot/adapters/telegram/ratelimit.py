"""Telegram's flood limits, respected before sending, and 429 answers waited out after.

Why not PTB's ``AIORateLimiter``: it needs the extra ``aiolimiter`` dependency, by default gives up after the first
429 (``max_retries=0``), and cannot be told "never drop a receipt". This limiter is small, has no dependencies,
and the adapter retries a 429 for as long as Telegram asks, so a digest or a receipt is delayed, never lost.

Limits (Bot API FAQ): about 1 message per second in one chat (short bursts are tolerated), 20 per minute in one
group, about 30 per second overall. Slots are *reserved* under a lock and slept on outside it, so concurrent
senders queue up fairly instead of all waking up at once and tripping the limit together.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telegram.error import RetryAfter
from telegram.warnings import PTBDeprecationWarning


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` sends in any ``period`` seconds."""

    count: int
    period: float


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """The limits to respect. Defaults are Telegram's published ones."""

    per_chat: Window = Window(3, 3.0)
    per_group: Window = Window(20, 60.0)
    overall: Window = Window(30, 1.0)


class _Slots:
    """Send times reserved in one window (a sliding log of timestamps)."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.times: deque[float] = deque()

    def forget_before(self, now: float) -> None:
        """Drop sends that left the window by ``now`` (the clock's time, never a candidate send time)."""
        while self.times and self.times[0] <= now - self.window.period:
            self.times.popleft()

    def earliest(self, at: float) -> float:
        """The earliest time at or after ``at`` when one more send fits."""
        # Read-only: ``at`` may lie in the future (another window pushed it), and dropping the sends before it
        # would let the next, earlier candidate through a window that is in fact full.
        recent = [t for t in self.times if t > at - self.window.period]
        if len(recent) < self.window.count:
            return at
        # The send that would make one too many in the window must wait until the oldest of the last
        # ``count`` sends leaves it.
        return recent[-self.window.count] + self.window.period

    def reserve(self, at: float) -> None:
        # Reservations are made in time order per window, except when a later reservation of another chat
        # pushed this one back; keep the log sorted so ``earliest`` stays right.
        if self.times and self.times[-1] > at:
            items = sorted([*self.times, at])
            self.times.clear()
            self.times.extend(items)
        else:
            self.times.append(at)


class FloodGate:
    """Reserves a send slot per chat, per group and overall.

    Args:
        limits: The windows to respect.
        clock: Monotonic seconds (``loop.time`` by default); tests may inject one.
        sleep: How a wait is waited (``asyncio.sleep`` by default); a test injects one that moves its clock, so
            it checks every wait exactly without spending it.
    """

    def __init__(
        self,
        limits: FloodLimits | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.limits = limits or FloodLimits()
        self._clock = clock
        self._sleep = sleep or asyncio.sleep
        self._lock = asyncio.Lock()
        self._overall = _Slots(self.limits.overall)
        self._chats: dict[int, _Slots] = {}
        self._groups: dict[int, _Slots] = {}
        self._paused_until: dict[int, float] = {}
        self._all_paused_until = 0.0

    def _now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def acquire(self, chat_id: int) -> float:
        """Wait until a message may be sent to ``chat_id``.

        Returns:
            Seconds waited.
        """
        async with self._lock:
            now = self._now()
            chat = self._chats.setdefault(chat_id, _Slots(self.limits.per_chat))
            windows = [self._overall, chat]
            if chat_id < 0:  # groups, supergroups and channels have negative ids
                windows.append(self._groups.setdefault(chat_id, _Slots(self.limits.per_group)))
            for slots in windows:
                slots.forget_before(now)
            at = max(now, self._paused_until.get(chat_id, 0.0), self._all_paused_until)
            # Each window may push the time later, which can matter to a window already checked: repeat
            # until every window agrees (at most a few rounds, since times only move forward).
            while True:
                later = max(slots.earliest(at) for slots in windows)
                if later <= at:
                    break
                at = later
            for slots in windows:
                slots.reserve(at)
            self._forget_idle(now)
        wait = at - now
        if wait > 0:
            await self._sleep(wait)
        return max(wait, 0.0)

    def pause(self, chat_id: int | None, seconds: float) -> None:
        """Hold sends to ``chat_id`` (None: every chat) for ``seconds``, as a 429 ``retry_after`` demands."""
        until = self._now() + seconds
        if chat_id is None:
            self._all_paused_until = max(self._all_paused_until, until)
        else:
            self._paused_until[chat_id] = max(self._paused_until.get(chat_id, 0.0), until)

    def _forget_idle(self, now: float) -> None:
        # Bounded memory for a bot that talks to many members: drop chats with nothing in their windows.
        if len(self._chats) < 4096:
            return
        for table in (self._chats, self._groups):
            for chat_id in [c for c, s in table.items() if not s.times or s.times[-1] < now - s.window.period]:
                del table[chat_id]
        for chat_id in [c for c, until in self._paused_until.items() if until < now]:
            del self._paused_until[chat_id]


def retry_seconds(exc: RetryAfter) -> float:
    """How long a 429 asks to wait, in seconds."""
    # PTB 22 warns that retry_after becomes a timedelta; accept both without the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value if isinstance(value, int | float) else value.total_seconds()
