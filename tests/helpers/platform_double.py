"""A recording stand-in for a chat platform (not for our storage): what the scheduler sent, and course access."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.adapters.base import AccessFix, DeliveryError
from bot.config import CourseSettings
from bot.core.replies import OutgoingMessage


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
