"""The dashboard's pages on a bare aiohttp application, for the page tests.

The real server (``bot/web/server.py``) adds the login middleware that sets ``request["admin"]`` and
``request["csrf_token"]``; here a stand-in does that, so the pages are tested on their own. Switching to the real
server means building the app with ``build_web_application`` and logging in first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import Engine

from bot.config.settings import CommunitySettings, DashboardSettings, Settings
from bot.web.context import CONTEXT, WebContext
from bot.web.pages import add_page_routes

CSRF = "test-csrf-token"


@dataclass(frozen=True)
class TestAdmin:
    """What the real middleware puts in ``request["admin"]`` (``bot.web.auth.AdminIdentity``'s fields)."""

    platform: str
    platform_user_id: str
    display_name: str | None


class FixedClock:
    """A clock that says what the test set."""

    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


@web.middleware
async def _as_admin(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request["admin"] = TestAdmin("telegram", "42", "Olga Owner")
    request["csrf_token"] = CSRF
    return await handler(request)


def pages_app(
    engine: Engine, community_id: int, *, community: str, timezone: str, now: datetime | None = None
) -> web.Application:
    """An application with the pages, reading ``engine``, logged in as an admin, at the clock's ``now``."""
    settings = Settings(
        community=CommunitySettings(name=community, timezone=timezone),
        dashboard=DashboardSettings(enabled=True, refresh_seconds=30),
    )
    ctx = WebContext(
        settings=settings,
        engine=engine,
        clock=FixedClock(now or datetime.now(UTC)),
        community_id=community_id,
        signing_secret="test-secret",
    )
    app = web.Application(middlewares=[_as_admin])
    app[CONTEXT] = ctx
    add_page_routes(app)
    return app


# --- the seeded community the page tests check ----------------------------------------------------------------------

COMMUNITY = "testers"
TIMEZONE = "Europe/Berlin"
NOW = datetime(2024, 3, 20, 11, 0, tzinfo=UTC)  # Wednesday 12:00 in Berlin; weeks W10, W11 and W12 so far
EVIL_NAME = "<script>alert(1)</script>"


def at(day: int, hour: int = 10) -> datetime:
    """An instant in March 2024 (UTC)."""
    return datetime(2024, 3, day, hour, 0, tzinfo=UTC)


def seed(engine: Engine) -> int:
    """A small community with known figures, through the writer's store; returns its id.

    ann joins Monday 03-04 and posts 3 messages that day in #general, one on 03-12, one on 03-19 and one today;
    bob joins 03-05, posts in #help on 03-11 and in its topic 77 on 03-13, reacts today; a member named like a
    script tag posts once in #general on 03-13; cy joins 03-06 and leaves 03-08. ann buys "Python async" for 500
    stars on 03-19; bob buys it for 300 on 03-12, refunded on 03-13.
    """
    from storage.catalog import CourseRecord, sync_courses
    from storage.events import (
        ChannelRef,
        MemberJoined,
        MemberLeft,
        MemberRef,
        MessageEvent,
        Platform,
        PurchaseEvent,
        PurchaseSource,
        ReactionEvent,
        RefundEvent,
    )
    from storage.ingest import IngestStore

    store = IngestStore(engine)
    community_id = store.register_community(COMMUNITY, TIMEZONE)
    sync_courses(engine, community_id, [CourseRecord("py-async", "Python async", price_stars=500)])
    tg = Platform.TELEGRAM
    ids = iter(range(1000, 2000))

    def msg(user: str, when: datetime, channel: str = "general", thread: str | None = None, name: str | None = None):  # type: ignore[no-untyped-def]
        return MessageEvent(
            platform=tg,
            community=COMMUNITY,
            message_id=str(next(ids)),
            channel=ChannelRef(channel, name=f"#{channel}", thread_id=thread),
            author=MemberRef(user, display_name=name or user.title()),
            occurred_at=when,
            length=20,
        )

    store.write_batch(
        [
            MemberJoined(tg, COMMUNITY, MemberRef("ann", display_name="Ann"), at(4, 8)),
            *(msg("ann", at(4, 9 + i)) for i in range(3)),
            MemberJoined(tg, COMMUNITY, MemberRef("bob", display_name="Bob"), at(5, 8)),
            MemberJoined(tg, COMMUNITY, MemberRef("cy", display_name="Cy"), at(6, 8)),
            MemberLeft(tg, COMMUNITY, MemberRef("cy", display_name="Cy"), at(8, 8)),
            msg("bob", at(11)),
            msg("ann", at(12)),
            msg("bob", at(13), channel="help", thread="77"),
            msg("x1", at(13, 12), name=EVIL_NAME),
            msg("ann", at(19)),
            msg("ann", at(20, 9)),
            ReactionEvent(
                tg, COMMUNITY, ChannelRef("general"), "1000", MemberRef("bob"), "👍", at(20, 9), message_author_id="ann"
            ),
        ]
    )
    store.record_purchase(
        PurchaseEvent(
            tg, COMMUNITY, "ch-ann", MemberRef("ann"), "py-async", 500, "XTR", at(19), PurchaseSource.TELEGRAM_STARS
        )
    )
    store.record_purchase(
        PurchaseEvent(
            tg, COMMUNITY, "ch-bob", MemberRef("bob"), "py-async", 300, "XTR", at(12), PurchaseSource.TELEGRAM_STARS
        )
    )
    store.record_refund(RefundEvent(tg, COMMUNITY, "ch-bob", at(13)))
    return community_id
