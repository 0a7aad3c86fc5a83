"""The Sales page's subscriptions in a real headless Chromium, signed in through a login link, on a real server on
127.0.0.1 reading the worked example of tests/test_analytics_subscriptions.py: the cards show the figures, the
chart draws new, churned and active per week (hover shows a week's churn), and at phone width nothing scrolls
sideways."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from bot.config.settings import CommunitySettings, DashboardSettings, Settings, WebSettings
from bot.web.context import WebContext
from bot.web.links import issue_login_link
from bot.web.server import WebServer
from storage.dashboard_access import DashboardIdentity
from storage.engine import make_engine
from storage.migrate import upgrade
from tests.browser import PHONE, page_errors
from tests.conftest import COMMUNITY
from tests.helpers.fake_actions import FakeClock
from tests.test_analytics_subscriptions import build
from tests.web.test_browser_dashboard import DESKTOP, PHONE_SIZE, charts_drawn, free_port

pytestmark = pytest.mark.slow

SECRET = "browser-test-secret-" + "z" * 32


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[WebServer]:
    engine = make_engine(f"sqlite:///{tmp_path}/subscriptions.db")
    upgrade(engine)
    store = build(engine)
    ctx = WebContext(
        settings=Settings(
            community=CommunitySettings(name=COMMUNITY, timezone="UTC"),
            web=WebSettings(port=free_port()),
            dashboard=DashboardSettings(enabled=True, refresh_seconds=30),
        ),
        engine=engine,
        clock=FakeClock(datetime(2024, 5, 8, 12, tzinfo=UTC)),
        community_id=store.community_id(COMMUNITY),
        signing_secret=SECRET,
        writer=None,
    )
    web = WebServer(ctx)
    await web.start()
    try:
        yield web
    finally:
        await web.stop()
        engine.dispose()


async def open_sales(page: Page, server: WebServer) -> None:
    ctx = server.ctx
    identity = DashboardIdentity(ctx.community_id, "telegram", "42", "Olga Owner")
    base = f"http://127.0.0.1:{server.port}"
    await page.goto(issue_login_link(ctx.engine, ctx.settings, SECRET, identity, ctx.clock.now()).url)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/")
    await page.goto(base + "/sales?to=2024-05-08")
    await charts_drawn(page)


async def test_the_subscriptions_section_draws_and_its_chart_shows_the_churn(
    browser: Browser, server: WebServer
) -> None:
    page = await browser.new_page(viewport=DESKTOP)
    errors = page_errors(page)
    await open_sales(page, server)
    await expect(page.locator(".card", has_text="Active subscriptions").locator(".value")).to_have_text("2")
    await expect(page.locator(".card", has_text="MRR EUR").locator(".value")).to_have_text("12.00 EUR")
    await expect(page.locator(".card", has_text="Renewal rate").locator(".value")).to_have_text("66.7%")
    traces = await page.evaluate("document.querySelector('#chart-subscriptions').data.map(t => t.name)")
    assert traces == ["New", "Churned", "Active at week end"]
    # Hovering a churn bar (bob's access ended in 2024-W14, eve's in W15) shows it as a fall of one.
    churned = page.locator("#chart-subscriptions g.trace.bars").nth(1).locator("g.point path")
    await churned.nth(7).scroll_into_view_if_needed()  # the section is below the fold
    box = await churned.nth(7).bounding_box()  # the weeks run from 2024-W08: W15 is the eighth
    assert box is not None and box["height"] > 0
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await expect(page.locator("#chart-subscriptions .hoverlayer")).to_contain_text(re.compile("[−-]1"))
    assert errors.messages == []


async def test_at_phone_width_the_sales_page_with_subscriptions_does_not_scroll_sideways(
    browser: Browser, server: WebServer
) -> None:
    page = await browser.new_page(viewport=PHONE_SIZE)
    errors = page_errors(page)
    await open_sales(page, server)
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"/sales is {width} px wide at {PHONE['width']} px"
    await expect(page.locator("#subscription-courses")).to_contain_text("Review club")
    assert errors.messages == []
