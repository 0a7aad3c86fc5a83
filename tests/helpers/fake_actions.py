"""Test doubles of the *platform* for command tests: recording PlatformActions, a settable clock, and a harness
that drives the real dispatcher over a real database the way an adapter does.
"""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.app import course_records
from bot.config import CourseSettings, Settings, parse_settings
from bot.core.commands import all_commands
from bot.core.dispatcher import Dispatcher
from bot.core.ports import AccessResult, CapabilityError
from bot.core.replies import Reply
from storage.catalog import sync_courses
from storage.events import ActivityEvent, CommandInvocation, MemberRef, Platform
from storage.ingest import IngestStore
from storage.writer import EventWriter
from tests.conftest import COMMUNITY


@dataclass
class FakeActions:
    """Records every grant, revoke and refund; answers with the configured results.

    Attributes:
        platform: The platform it pretends to be.
        grant_result: What ``grant_access`` answers.
        revoke_result: What ``revoke_access`` answers.
        refund_error: Raised by ``refund_payment`` (``CapabilityError`` by default on Discord, like the real one).
    """

    platform: Platform = Platform.TELEGRAM
    grant_result: AccessResult = field(default_factory=lambda: AccessResult(ok=True, detail="Invite: https://t.me/+x"))
    revoke_result: AccessResult = field(default_factory=lambda: AccessResult(ok=True, detail="removed from the chat"))
    refund_error: Exception | None = None
    grants: list[tuple[str, str]] = field(default_factory=list)
    revokes: list[tuple[str, str]] = field(default_factory=list)
    refunds: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.refund_error is None and self.platform is Platform.DISCORD:
            self.refund_error = CapabilityError("Discord has no bot-initiated refunds")

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        self.grants.append((member.user_id, course.id))
        return self.grant_result

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        self.revokes.append((member.user_id, course.id))
        return self.revoke_result

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        if self.refund_error is not None:
            raise self.refund_error
        self.refunds.append((member.user_id, charge_id))


class FakeClock:
    """A clock the test sets and moves."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


SETTINGS_TOML = """
[community]
name = "testers"
timezone = "Europe/Berlin"

[[courses]]
id = "py-async"
title = "Async Python"
description = "Four weeks of asyncio."
price_stars = 500
price = 49
currency = "EUR"
checkout_url = "https://example.org/checkout/py-async"
telegram_chat_id = -100987
discord_role_id = 4455

[[courses]]
id = "rust-intro"
title = "Intro to Rust"
description = "Ownership and borrowing."
price_stars = 350
discord_role_id = 5566
discord_sku_id = 667788
"""

SECRET = "test-signing-secret-0123456789"
NOW = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)  # a Wednesday; 13:00 in Berlin


def two_course_settings(extra: str = "") -> Settings:
    """Parsed settings of the ``testers`` community (conftest's) with two courses."""
    return parse_settings(tomllib.loads(SETTINGS_TOML + extra))


@dataclass
class Bot:
    """A dispatcher with every command over a real database, driven the way an adapter drives it."""

    dispatcher: Dispatcher
    writer: EventWriter
    clock: FakeClock
    actions: FakeActions
    engine: Engine
    community_id: int
    platform: Platform = Platform.TELEGRAM

    @property
    def settings(self) -> Settings:
        return self.dispatcher.settings

    async def run(
        self,
        line: str,
        *,
        user: str = "1001",
        name: str | None = None,
        admin: bool = False,
        platform: Platform | None = None,
        actions: FakeActions | None = None,
    ) -> Reply:
        """Run a command line such as ``/buy py-async`` as ``user`` and return the reply."""
        command, *args = line.split()
        invocation = CommandInvocation(
            platform=platform or self.platform,
            community=COMMUNITY,
            name=command.removeprefix("/"),
            invoker=MemberRef(user, name),
            occurred_at=self.clock.now(),
            args=tuple(args),
        )
        return await self.dispatcher.dispatch(invocation, is_admin=admin, actions=actions or self.actions)

    async def put(self, *events: ActivityEvent) -> None:
        """Store activity through the writer and wait until it is committed."""
        for event in events:
            await self.writer.put(event)
        await self.writer.flush()


@asynccontextmanager
async def running_bot(
    store: IngestStore,
    *,
    settings: Settings | None = None,
    secret: str | None = SECRET,
    platform: Platform = Platform.TELEGRAM,
) -> AsyncIterator[Bot]:
    """A started writer and a bound dispatcher with the courses in the catalog; stopped afterwards."""
    settings = settings or two_course_settings()
    engine = store.engine
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, course_records(settings))
    writer = EventWriter(store, flush_interval=0.01)
    await writer.start()
    clock = FakeClock(NOW)
    dispatcher = Dispatcher(
        all_commands(), settings=settings, engine=engine, writer=writer, clock=clock, signing_secret=secret
    )
    dispatcher.bind(community_id)
    try:
        yield Bot(dispatcher, writer, clock, FakeActions(platform), engine, community_id, platform)
    finally:
        await writer.stop()
