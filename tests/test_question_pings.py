"""The optional question pings through the real scheduler: one ping per waiting question, even from two processes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from sqlalchemy import Engine, func, select

from bot.config import Settings, parse_settings
from bot.core.markup import render_plain
from storage.engine import make_engine
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
from storage.ingest import IngestStore
from storage.models import QuestionPing
from tests.conftest import COMMUNITY
from tests.helpers.platform_double import FakeClock, RecordingPlatform, make_scheduler

pytestmark = pytest.mark.storage

NOW = datetime(2024, 3, 20, 12, 0, tzinfo=UTC)
_ids = count(1)


def settings(**pings: object) -> Settings:
    return parse_settings(
        {
            "community": {"name": COMMUNITY, "timezone": "Europe/Berlin"},
            "discord": {"guild_ids": [42]},
            "digest": {"enabled": False},
            "help": {"channels": [900], **pings},
        }
    )


def ask(user: str, hours_ago: float, channel: str = "900", parent: str | None = None) -> MessageEvent:
    return MessageEvent(
        platform=Platform.DISCORD,
        community=COMMUNITY,
        message_id=str(next(_ids)),
        channel=ChannelRef(channel, name="help" if parent is None else "post", parent_id=parent),
        author=MemberRef(user, display_name=user.title()),
        occurred_at=NOW - timedelta(hours=hours_ago),
        length=30,
    )


def seed(store: IngestStore) -> None:
    store.write_batch(
        [
            ask("ann", 72),  # passed the 24-hour limit two days ago: not pinged now (no flood of old questions)
            ask("bob", 25),  # passed it an hour ago: pinged
            ask("cid", 2),  # two hours: not yet
            ask("dan", 30, channel="501", parent="500"),  # a forum post: pinged in its thread
        ]
    )


async def test_each_waiting_question_is_pinged_once_across_two_processes(
    engine: Engine, store: IngestStore, db_url: str
) -> None:
    seed(store)
    cfg = settings(ping_role=555, ping_chat=-100600)
    clock = FakeClock(NOW)
    discords = [RecordingPlatform("discord") for _ in range(2)]
    telegrams = [RecordingPlatform("telegram") for _ in range(2)]
    engines = [make_engine(db_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(
                make_scheduler(cfg, e, store.community_id(COMMUNITY), clock, d, t).run("questions")
                for e, d, t in zip(engines, discords, telegrams, strict=True)
            )
        )
    finally:
        for e in engines:
            e.dispose()
    assert {r.outcome for r in results} == {"ok"}
    pings = [m for d in discords for m in d.sent]
    # The longest waiting first: Dan's forum post (in its thread 501), then Bob's question in #help.
    assert sorted((m.target, m.reply.mention_role) for m in pings) == [("501", 555), ("900", 555)]
    chats = [m for t in telegrams for m in t.sent]
    assert sorted(m.target for m in chats) == ["-100600", "-100600"]
    texts = sorted(render_plain(m.reply.text) for m in chats)
    assert texts[0].startswith("❓ a question by Bob in #help (https://discord.com/channels/42/900/")
    assert "has waited 25 hours" in texts[0] and "Dan in #500" in texts[1]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(QuestionPing)).scalar_one() == 2
    # A later run pings nobody again.
    again = RecordingPlatform("discord")
    result = await make_scheduler(cfg, engine, store.community_id(COMMUNITY), clock, again).run("questions")
    assert again.sent == [] and result.detail.startswith("0 questions")


async def test_pings_are_off_unless_configured(engine: Engine, store: IngestStore) -> None:
    seed(store)
    clock = FakeClock(NOW)
    scheduler = make_scheduler(settings(), engine, store.community_id(COMMUNITY), clock, RecordingPlatform("discord"))
    assert "questions" not in scheduler.triggers()
    assert "questions" in make_scheduler(settings(ping_chat=-100600), engine, 1, clock).triggers()
