"""Back-off for what the adapters retry: an update the database could not take, a platform unreachable at start.

The bot must never go deaf: an error while storing what a platform delivered is logged and retried after a wait
that doubles (1 s, 2 s, 4 s … capped at 30 s), and a platform that cannot be reached at start is retried the same
way instead of ending the process. Only what a retry cannot fix (a refused token) fails at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

FIRST_WAIT = 1.0
MAX_WAIT = 30.0


@dataclass
class Backoff:
    """Waits that double from ``first`` up to ``cap`` seconds.

    Attributes:
        first: The first wait, in seconds.
        cap: The longest wait, in seconds.
        attempts: How many waits were handed out since the last ``reset``.
    """

    first: float = FIRST_WAIT
    cap: float = MAX_WAIT
    attempts: int = 0
    _next: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def next(self) -> float:
        """The next wait (and double the one after)."""
        wait = self._next
        self._next = min(wait * 2, self.cap)
        self.attempts += 1
        return wait

    def reset(self) -> None:
        """Start again from ``first`` (after a success)."""
        self._next = self.first
        self.attempts = 0


def waiting_can_fix(exc: BaseException) -> bool:
    """Whether an error is database or disk trouble that passes: locked, full, restarting, connection lost.

    A refused value (an integrity error) is not: it fails the same way however long one waits.
    """
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeoutError | OSError)


def describe(exc: BaseException) -> str:
    """One line naming an error and its cause, without the SQL statement and its values (they may hold names)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {exc.orig}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


async def sleep_unless(stopping: Callable[[], bool], seconds: float, *, step: float = 0.1) -> bool:
    """Sleep ``seconds``, waking early when ``stopping()`` turns true; returns whether it is still running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not stopping():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(step, remaining))
    return False
