"""In a real headless Chromium: sign in with a link, and a message stored after the page loaded shows within 2 s."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.clock import SystemClock
from bot.web.context import WebContext
from bot.web.links import issue_login_link
from bot.web.server import WebServer
from storage.dashboard_access import DashboardIdentity
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
from storage.ingest import IngestStore
from storage.writer import EventWriter
from tests.browser import chromium_path
from tests.web.conftest import COMMUNITY_NAME, SECRET, settings

CHROMIUM = str(chromium_path())  # COHORTBOT_CHROMIUM or Debian's /usr/bin/chromium

pytestmark = [
    pytest.mark.slow,
    # Skips without Chromium, fails instead under COHORTBOT_REQUIRE_BROWSER=1 (CI), like every browser test.
    pytest.mark.usefixtures("chromium_required"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served(web_store: IngestStore) -> AsyncIterator[tuple[WebServer, EventWriter]]:
    writer = EventWriter(web_store)
    await writer.start()
    ctx = WebContext(
        settings=settings(port=free_port()),
        engine=web_store.engine,
        clock=SystemClock(),
        community_id=web_store.community_id(COMMUNITY_NAME),
        signing_secret=SECRET,
        writer=writer,
    )
    server = WebServer(ctx)
    await server.start()
    try:
        yield server, writer
    finally:
        await server.stop()
        await writer.stop()


async def test_a_new_message_shows_on_the_open_overview_within_two_seconds(
    served: tuple[WebServer, EventWriter],
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright for Python is not installed")
    server, writer = served
    ctx = server.ctx
    identity = DashboardIdentity(ctx.community_id, "telegram", "42", "Ada")
    link = await asyncio.to_thread(issue_login_link, ctx.engine, ctx.settings, SECRET, identity, SystemClock().now())
    errors: list[str] = []
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(link.url)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(f"{server.url}/")
            messages = page.locator('[data-live="messages"]').first
            await playwright_api.expect(messages).to_have_text("0", timeout=5000)

            event = MessageEvent(
                platform=Platform.TELEGRAM,
                community=COMMUNITY_NAME,
                message_id="m1",
                channel=ChannelRef("-100", name="general"),
                author=MemberRef("7", display_name="Bea"),
                occurred_at=datetime.now(UTC),
                length=5,
            )
            await writer.put(event)
            await playwright_api.expect(messages).to_have_text("1", timeout=2000)
            await playwright_api.expect(page.locator("[data-live-age]").first).to_contain_text("last event")
        finally:
            await browser.close()
    assert errors == []
