"""``/questions`` and its CSV and JSON downloads, on a real database with hand-made help-channel messages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from bot.config import DiscordSettings, HelpSettings
from bot.web.context import CONTEXT
from storage.engine import make_engine
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
from storage.ingest import IngestStore
from storage.migrate import upgrade
from tests.web.pages_app import COMMUNITY, EVIL_NAME, NOW, TIMEZONE, client_for, pages_app
from tests.web.test_pages import card, text_of

Client = TestClient[web.Request, web.Application]
HELP = "900"


def msg(number: int, user: str, at: datetime, name: str | None = None) -> MessageEvent:
    return MessageEvent(
        platform=Platform.DISCORD,
        community=COMMUNITY,
        message_id=str(number),
        channel=ChannelRef(HELP, name="help"),
        author=MemberRef(user, display_name=name or user.title()),
        occurred_at=at,
        length=10,
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    engine: Engine = make_engine(f"sqlite:///{tmp_path}/dashboard.db")
    upgrade(engine)
    store = IngestStore(engine)
    community_id = store.register_community(COMMUNITY, TIMEZONE)
    monday = datetime(2024, 3, 11, 9, 0, tzinfo=UTC)  # W11
    store.write_batch(
        [
            msg(1, "ann", monday),
            msg(2, "bob", monday + timedelta(minutes=6)),  # answers Ann in 6 minutes
            msg(3, "cid", monday + timedelta(days=2), name=EVIL_NAME),  # nobody answers
            msg(4, "dan", monday + timedelta(days=3)),
            msg(5, "bob", monday + timedelta(days=3, minutes=20)),  # answers in 20 minutes
        ]
    )
    app = pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)
    ctx = app[CONTEXT]
    settings = replace(ctx.settings, help=HelpSettings(channels=(HELP,)), discord=DiscordSettings(guild_ids=(42,)))
    app[CONTEXT] = replace(ctx, settings=settings)
    async with client_for(app) as c:
        yield c
    engine.dispose()


async def test_the_questions_page_shows_figures_helpers_and_the_waiting_question(client: Client) -> None:
    resp = await client.get("/questions?from=2024-03-04&to=2024-03-19")
    assert resp.status == 200
    html = await resp.text()
    assert card(html, "Questions") == "3"
    assert card(html, "Answered within 1 h") == "67%"
    assert card(html, "Median wait") == "13 min"  # 6 and 20 minutes
    assert card(html, "Unanswered") == "1"
    text = text_of(html)
    assert "Bob 2 13 min" in text  # the top helper: two first answers
    assert "https://discord.com/channels/42/900/3" in html  # Cid's question, linked
    assert EVIL_NAME not in html and "&lt;script&gt;" in html  # a name is text, never markup
    assert "2024-W11 3 67% 67% 13 min" in text


async def test_the_questions_csv_and_json(client: Client) -> None:
    body = await (await client.get("/questions.csv?from=2024-03-04&to=2024-03-19")).text()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["week", "start", "questions"]
    assert [r[0] for r in rows[1:]] == ["2024-W10", "2024-W11", "2024-W12"]
    assert rows[2][2:5] == ["3", "0.6667", "0.6667"] and rows[2][-1] == "1"
    data = json.loads(await (await client.get("/questions.json?from=2024-03-04&to=2024-03-19")).text())
    assert data["questions"] == 3 and data["helper_count"] == 1
    assert [w["questions"] for w in data["weekly"]] == [0, 3, 0]
