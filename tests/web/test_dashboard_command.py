"""``/dashboard``: an admin gets a private one-time link that signs them in; members get nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.config import Settings
from bot.config.settings import DashboardSettings, WebSettings
from bot.web.context import WebContext
from bot.web.server import build_web_application
from storage.ingest import IngestStore
from storage.models import DashboardLogin
from tests.helpers.fake_actions import Bot, running_bot, two_course_settings

pytestmark = pytest.mark.storage

ADMIN = "9000"


def with_dashboard(enabled: bool = True, public_url: str = "") -> Settings:
    return replace(
        two_course_settings(),
        dashboard=DashboardSettings(enabled=enabled),
        web=WebSettings(public_url=public_url),
    )


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    async with running_bot(store, settings=with_dashboard()) as running:
        yield running


def logins(bot: Bot) -> int:
    with bot.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(DashboardLogin)).scalar_one())


async def test_members_are_refused_and_get_no_link(bot: Bot) -> None:
    reply = await bot.run("/dashboard", user="1001")
    assert "only for the community's admins" in reply.text.plain()
    assert "/login" not in reply.text.plain()
    assert logins(bot) == 0


async def test_an_admin_gets_a_private_link_that_signs_them_in(bot: Bot) -> None:
    reply = await bot.run("/dashboard", user=ADMIN, name="Grace", admin=True)
    assert reply.private  # Telegram: to the admin's DM, never the group; Discord: ephemeral
    text = reply.text.plain()
    assert "works once, for 10 minutes" in text
    url = next(word for word in text.split() if "/login?t=" in word)
    assert url.startswith("http://127.0.0.1:8787/login?t=")

    ctx = WebContext(bot.settings, bot.engine, bot.clock, bot.community_id, bot.dispatcher.signing_secret)
    client = TestClient(TestServer(build_web_application(ctx)))
    await client.start_server()
    try:
        token = url.split("t=", 1)[1]
        assert (await client.post("/login", data={"t": token}, allow_redirects=False)).status == 303
        overview = await client.get("/")
        assert overview.status == 200
        assert "Signed in as Grace" in await overview.text()
    finally:
        await client.close()


async def test_with_a_public_url_the_link_uses_it(store: IngestStore) -> None:
    settings = with_dashboard(public_url="https://stats.example.org")
    async with running_bot(store, settings=settings) as bot:
        text = (await bot.run("/dashboard", user=ADMIN, admin=True)).text.plain()
    assert "https://stats.example.org/login?t=" in text


async def test_a_switched_off_dashboard_is_explained(store: IngestStore) -> None:
    async with running_bot(store, settings=with_dashboard(enabled=False)) as bot:
        reply = await bot.run("/dashboard", user=ADMIN, admin=True)
        assert "[dashboard] enabled = true" in reply.text.plain()
        assert reply.private and logins(bot) == 0


async def test_without_a_secret_the_admin_is_told_why(store: IngestStore) -> None:
    async with running_bot(store, settings=with_dashboard(), secret=None) as bot:
        reply = await bot.run("/dashboard", user=ADMIN, admin=True)
        assert "COHORTBOT_SECRET" in reply.text.plain()
        assert "/login" not in reply.text.plain()
        assert logins(bot) == 0
