"""A recording stand-in for a chat platform (not for our storage): what the scheduler sent, and course access."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bot.clock import Clock
from bot.config import CourseSettings, Settings
from bot.core.ports import AccessFix, AccessReconciler, Adapter, DeliveryError
from bot.core.replies import OutgoingMessage
from bot.scheduler import Scheduler


class FakeClock:
    """A clock the test moves; ``sleep`` advances it instead of waiting."""

    def __init__(self, now: datetime) -> None:
        self.current = now
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.current += timedelta(seconds=seconds)


@dataclass
class RecordingPlatform:
    """Records messages; refuses the users in ``blocked``; holds course access per course id."""

    name: str
    sent: list[OutgoingMessage] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    holders: dict[str, set[str]] = field(default_factory=dict)
    listable: bool = True
    changes: list[tuple[str, str, bool]] = field(default_factory=list)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> None:
        if message.target in self.blocked:
            raise DeliveryError("Forbidden: bot was blocked by the user", unreachable_user=True)
        self.sent.append(message)

    async def access_holders(self, course: CourseSettings) -> frozenset[str] | None:
        return frozenset(self.holders.get(course.id, set())) if self.listable else None

    async def ensure_access(self, user_id: str, course: CourseSettings, *, should_have: bool) -> AccessFix:
        current = self.holders.setdefault(course.id, set())
        if (user_id in current) == should_have:
            return AccessFix(changed=False)
        if should_have:
            current.add(user_id)
        else:
            current.discard(user_id)
        self.changes.append((user_id, course.id, should_have))
        return AccessFix(changed=True)


def make_scheduler(
    settings: Settings,
    engine: Engine,
    community_id: int,
    clock: Clock,
    *adapters: Adapter | AccessReconciler,
) -> Scheduler:
    """The real scheduler over ``adapters``, reading ``clock`` (a FakeClock's sleep advances it instead of waiting)."""
    return Scheduler(
        settings=settings,
        engine=engine,
        clock=clock,
        adapters=list(adapters),  # type: ignore[arg-type]
        community_id=lambda: community_id,
        sleep=clock.sleep if isinstance(clock, FakeClock) else asyncio.sleep,
        host="test",
    )
