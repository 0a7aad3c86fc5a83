"""Leader election among several ``cohortbot run`` processes on one PostgreSQL database.

Every process logs activity, answers commands and serves the web app; only the leader runs the scheduled jobs
(digest, nudges, reconciliation, renewals, question pings, surveys) and, in polling mode, fetches Telegram's
updates. Leadership is :class:`storage.leadership.LeaderLock`, a session-level advisory lock: it ends when the
leader's database session ends, so a crashed or killed leader is replaced at a follower's next try (every
``retry_seconds``). A leader checks its session every ``heartbeat_seconds``; a lost connection means lost
leadership, and the jobs stop at once (another process may already have taken over).

The digest claim (``storage.digests``) and the nudge log stay the second line of defence: even if two processes
believed they led for a moment, a week's digest is sent once and a member is nudged at most once a day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from storage.leadership import LeaderLock

log = logging.getLogger(__name__)

T = TypeVar("T")

LEADER_MESSAGE = "leader: running the scheduled jobs"
FOLLOWER_MESSAGE = "follower: another process runs the jobs"


class Leadership:
    """Keeps trying to lead; runs ``on_lead`` when this process becomes the leader, ``on_follow`` when it stops.

    Args:
        lock: The community's advisory lock.
        on_lead: Starts the leader's duties (the scheduler, Telegram polling).
        on_follow: Stops them, at once (the lock is already gone).
        retry_seconds: How often a follower tries to take the lock (takeover is within about this long after the
            leader's session ends).
        heartbeat_seconds: How often the leader checks that its lock's session is alive.
        timeout_seconds: A database round trip slower than this counts as a lost connection (a dead network can
            leave a socket hanging far longer than a takeover takes).
    """

    def __init__(
        self,
        lock: LeaderLock,
        *,
        on_lead: Callable[[], Awaitable[None]],
        on_follow: Callable[[], Awaitable[None]],
        retry_seconds: float = 5.0,
        heartbeat_seconds: float = 5.0,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.lock = lock
        self.on_lead = on_lead
        self.on_follow = on_follow
        self.retry_seconds = retry_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.timeout_seconds = timeout_seconds
        self.leading = False
        self._task: asyncio.Task[None] | None = None
        self._said_follower = False

    async def start(self) -> None:
        """Try once to lead (so that a lone process runs its jobs before ``start`` returns), then keep watching."""
        await self._try_to_lead()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="leader election")

    def supervised_tasks(self) -> dict[str, asyncio.Task[None]]:
        """The election loop: it must never end while the app runs."""
        return {"leader election": self._task} if self._task is not None else {}

    async def stop(self) -> None:
        """Stop trying; the caller stops the leader's duties, then :meth:`release` gives the lock up."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def release(self) -> None:
        """Give the lock up so that a follower takes over at its next try (a clean shutdown)."""
        self.leading = False
        await self._blocking(self.lock.release, default=None)

    async def check(self) -> None:
        """One round of the election: the leader checks its lock's session, a follower tries to take the lock.

        A leader whose session ended stops its duties, then tries again at once (a restarted database server may
        already answer, and nobody else may have taken over).
        """
        if self.leading:
            if await self._blocking(self.lock.still_held, default=False):
                return
            await self._lost()
        await self._try_to_lead()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds if self.leading else self.retry_seconds)
            await self.check()

    async def _try_to_lead(self) -> None:
        try:
            got = await self._blocking(self.lock.try_acquire, default=False)
        except Exception as exc:  # the database is unreachable: stay a follower and try again
            log.warning("cannot reach the database to take the leader lock (%s); trying again", _line(exc))
            got = False
        if not got:
            if not self._said_follower:
                log.info("%s; taking over if it stops (checked every %g s)", FOLLOWER_MESSAGE, self.retry_seconds)
                self._said_follower = True
            return
        self.leading = True
        self._said_follower = False
        log.info("%s (leader lock %s)", LEADER_MESSAGE, self.lock.key)
        await self.on_lead()

    async def _lost(self) -> None:
        self.leading = False
        log.warning("lost the leader lock (its database connection ended): stopping the scheduled jobs now")
        await self.on_follow()
        self._said_follower = False

    async def _blocking(self, call: Callable[[], T], *, default: T) -> T:
        """Run a blocking lock call in a thread; past the timeout the connection counts as lost."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), self.timeout_seconds)
        except TimeoutError:
            log.warning("the database did not answer the leader lock within %g s", self.timeout_seconds)
            # The thread may still hang on the socket; closing the connection from here ends the session for
            # the server as soon as it notices, and this process no longer counts itself as the leader.
            asyncio.get_running_loop().run_in_executor(None, self.lock.drop)
            return default


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
