"""The dashboard in a real headless Chromium, on a real server on 127.0.0.1 reading a seeded SQLite database.

What an owner notices: the login link signs them in once; every page draws without script errors and its charts
have data (hover shows a value); a CSV link downloads the table; at phone width nothing scrolls sideways and chart
text is readable; a used, expired or forged link and a browser without a session see no member data.

Members asking ``/dashboard`` in chat are refused before any link exists: tests/web/test_dashboard_command.py.

Set ``COHORTBOT_SCREENSHOTS=/some/dir`` to keep a full-page screenshot of every page at 1280 and 390 px.
"""

from __future__ import annotations

import csv
import io
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect
from sqlalchemy import Engine

from bot.config.settings import CommunitySettings, DashboardSettings, Settings, WebSettings
from bot.web.context import WebContext
from bot.web.links import issue_login_link
from bot.web.server import WebServer
from storage.dashboard_access import DashboardIdentity
from storage.deletion import find_member_id
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.nudge_log import record_nudge
from tests.browser import PHONE, page_errors
from tests.helpers.fake_actions import FakeClock
from tests.web.pages_app import COMMUNITY, NOW, TIMEZONE, at, seed

pytestmark = pytest.mark.slow

SECRET = "browser-test-secret-" + "y" * 32
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE_SIZE: ViewportSize = {"width": PHONE["width"], "height": PHONE["height"]}
# What only a signed-in admin may see: seeded members' names, a course, a channel.
MEMBER_DATA = ("Ann", "Bob", "Python async", "#general")
CSV_PATHS = ("/members.csv?tab=all", "/activity.csv", "/channels.csv", "/retention.csv", "/sales.csv", "/report.json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """The running dashboard, its clock, and the seeded member the member page shows."""

    server: WebServer
    clock: FakeClock
    engine: Engine
    community_id: int
    bob: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def link(self) -> str:
        """A fresh one-time login link for the admin Olga, issued at the server's clock."""
        identity = DashboardIdentity(self.community_id, "telegram", "42", "Olga Owner")
        ctx = self.server.ctx
        return issue_login_link(self.engine, ctx.settings, SECRET, identity, self.clock.now()).url

    def pages(self) -> dict[str, str]:
        """Every page's path and its expected heading."""
        return {
            "/": "Overview",
            "/activity": "Activity",
            "/retention": "Retention",
            "/members": "Members",
            f"/members/{self.bob}": "Bob",
            "/sales": "Sales",
            "/questions": "Questions",
            "/nudges": "Nudges",
            "/health": "Health",
        }


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    engine = make_engine(f"sqlite:///{tmp_path}/dashboard.db")
    upgrade(engine)
    community_id = seed(engine)  # three weeks of messages, joins, a leave, a purchase and a refund
    with engine.connect() as conn:
        bob = find_member_id(conn, community_id, "telegram", "bob")
    assert bob is not None
    record_nudge(engine, community_id, bob, group="nudged", decided_at=at(11, 9), sent_at=at(11, 9))
    clock = FakeClock(NOW)
    settings = Settings(
        community=CommunitySettings(name=COMMUNITY, timezone=TIMEZONE),
        web=WebSettings(port=free_port()),
        dashboard=DashboardSettings(enabled=True, refresh_seconds=30),
    )
    ctx = WebContext(
        settings=settings, engine=engine, clock=clock, community_id=community_id, signing_secret=SECRET, writer=None
    )
    server = WebServer(ctx)
    await server.start()
    try:
        yield Served(server, clock, engine, community_id, bob)
    finally:
        await server.stop()
        engine.dispose()


async def sign_in(page: Page, served: Served) -> None:
    await page.goto(served.link())
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(served.base + "/")


async def charts_drawn(page: Page) -> None:
    """Wait until charts.js has drawn every chart the page carries."""
    await page.wait_for_function(
        "document.querySelectorAll('.js-plotly-plot').length"
        " === document.querySelectorAll('script.chart[type=\"application/json\"]').length"
    )


async def screenshot(page: Page, name: str) -> None:
    folder = os.environ.get("COHORTBOT_SCREENSHOTS")
    if folder:
        # Playwright creates the folder.
        await page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def csv_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))


async def test_an_admin_signs_in_with_a_link_lands_on_the_overview_and_logs_out(
    browser: Browser, served: Served
) -> None:
    page = await browser.new_page(viewport=DESKTOP)
    errors = page_errors(page)
    link = served.link()
    await page.goto(link)
    # Opening the link (a chat app's preview does too) only shows the button: the link is not used up yet.
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Sign in to {COMMUNITY} dashboard")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(served.base + "/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    await expect(page.locator("header")).to_contain_text("Signed in as Olga Owner")
    await expect(page.locator(".card", has_text="Messages today").locator(".value")).to_have_text("1")
    # The session cookie is out of reach of scripts.
    assert "cohortbot" not in await page.evaluate("document.cookie")

    # Opening the same link again while signed in just leads back to the Overview.
    await page.goto(link)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")

    await page.get_by_role("button", name="Log out").click()
    await expect(page.locator("body")).to_contain_text("You are signed out")
    assert errors.messages == []
    response = await page.goto(served.base + "/")
    assert response is not None and response.status == 401
    assert "Ann" not in await page.locator("body").inner_text()


async def test_every_page_draws_with_no_errors_and_its_charts_have_data(browser: Browser, served: Served) -> None:
    page = await browser.new_page(viewport=DESKTOP)
    errors = page_errors(page)
    await sign_in(page, served)
    with_charts = []
    for path, heading in served.pages().items():
        response = await page.goto(served.base + path)
        assert response is not None and response.status == 200, path
        await expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        await charts_drawn(page)
        points = await page.evaluate(
            "[...document.querySelectorAll('.js-plotly-plot')]"
            ".map(p => p.data.reduce((n, t) => n + (t.z || t.y || t.x || []).length, 0))"
        )
        if points:
            with_charts.append(path)
            assert all(n > 0 for n in points), f"{path}: a chart without data points {points}"
            # Plotly drew marks for them in every chart: traces (lines, bars, funnel boxes) or heatmap images.
            drawn = await page.evaluate(
                "[...document.querySelectorAll('.js-plotly-plot')]"
                ".map(p => p.querySelectorAll('g.trace, image').length)"
            )
            assert all(n > 0 for n in drawn), f"{path}: a chart with nothing drawn {drawn}"
            # No axis labels the same tick twice (a whole-number format over half steps reads "1, 1, 2, 2").
            ticks = await page.evaluate(
                "[...document.querySelectorAll('.js-plotly-plot')].flatMap(p => ['ytick', 'y2tick']"
                ".map(c => [...p.querySelectorAll('.' + c + ' text')].map(t => t.textContent)))"
            )
            assert all(len(set(axis)) == len(axis) for axis in ticks), f"{path}: repeated tick labels {ticks}"
        await screenshot(page, f"{path.strip('/').replace('/', '-') or 'overview'}-1280")
        assert errors.messages == [], path
    assert with_charts == ["/activity", "/retention", f"/members/{served.bob}", "/sales"]

    # Hovering the sales chart's bar for this week shows its value.
    await page.goto(served.base + "/sales")
    await charts_drawn(page)
    # Plotly's drag layer lies over the bars: move the mouse to the bar's middle as a user's pointer would.
    box = await page.locator("#chart-revenue-1 .bars path").last.bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    await expect(page.locator("#chart-revenue-1 .hoverlayer")).to_contain_text("500")
    assert errors.messages == []


async def test_a_csv_link_downloads_the_table(browser: Browser, served: Served) -> None:
    page = await browser.new_page(viewport=DESKTOP, accept_downloads=True)
    await sign_in(page, served)
    await page.goto(served.base + "/activity?from=2024-03-04&to=2024-03-10")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download the daily series (CSV)").click()
    download = await download_info.value
    assert download.suggested_filename == "activity-2024-03-04-2024-03-10.csv"
    table = csv_rows(await download.path())
    assert table[0] == ["day", "dau", "wau", "mau", "joins", "leaves", "members"]
    assert ["2024-03-04", "1", "1", "1", "1", "0", "1"] in table  # ann joins and posts on Monday 03-04
    assert len(table) == 1 + 7

    await page.goto(served.base + "/members?tab=all")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download CSV").click()
    table = csv_rows(await (await download_info.value).path())
    assert table[0][:3] == ["member_id", "name", "platform"]
    assert [str(served.bob), "Bob", "telegram"] in [row[:3] for row in table]


async def test_at_phone_width_no_page_scrolls_sideways_and_chart_text_is_readable(
    browser: Browser, served: Served
) -> None:
    page = await browser.new_page(viewport=PHONE_SIZE)
    errors = page_errors(page)
    await sign_in(page, served)
    scrolled_tables = []
    for path in served.pages():
        await page.goto(served.base + path)
        await charts_drawn(page)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} is {width} px wide at {PHONE['width']} px"
        # A table wider than the phone scrolls inside its own box instead.
        wide = await page.evaluate(
            "[...document.querySelectorAll('.table-scroll')].filter(b => b.scrollWidth > b.clientWidth)"
            ".map(b => getComputedStyle(b).overflowX)"
        )
        assert all(overflow in ("auto", "scroll") for overflow in wide), f"{path}: {wide}"
        scrolled_tables += [path] * len(wide)
        smallest = await page.evaluate(
            "Math.min(...[...document.querySelectorAll('.js-plotly-plot text')]"
            ".filter(t => t.textContent.trim()).map(t => parseFloat(getComputedStyle(t).fontSize)))"
        )
        # Infinity (no chart text) on pages without charts.
        assert smallest >= 11, f"{path}: chart text of {smallest} px"
        await screenshot(page, f"{path.strip('/').replace('/', '-') or 'overview'}-390")
        assert errors.messages == [], path
    assert "/sales" in scrolled_tables  # the wide tables were there to overflow, and did not widen the page


async def test_used_expired_and_forged_links_and_no_session_show_no_member_data(
    browser: Browser, served: Served
) -> None:
    admin = await browser.new_context(viewport=DESKTOP)
    link = served.link()
    page = await admin.new_page()
    await page.goto(link)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(served.base + "/")

    # Someone else opening the used link (it was forwarded, or leaked) is refused.
    stranger = await browser.new_context(viewport=DESKTOP)
    other = await stranger.new_page()
    response = await other.goto(link)
    assert response is not None and response.status == 403
    await expect(other.locator("body")).to_contain_text("This link was already used")
    await expect(other.get_by_role("button", name="Sign in")).to_have_count(0)

    # A link with a changed token is refused.
    response = await other.goto(link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb"))
    assert response is not None and response.status == 403
    await expect(other.get_by_role("button", name="Sign in")).to_have_count(0)

    # Without a session every page, CSV and the report JSON answer 401 with how to get a link, and no data.
    for path in (*served.pages(), *CSV_PATHS):
        response = await other.goto(served.base + path)
        assert response is not None and response.status == 401, path
        text = await other.locator("body").inner_text()
        assert "/dashboard" in text, path
        for secret in MEMBER_DATA:
            assert secret not in text and secret not in await response.text(), f"{secret!r} on {path}"

    # A link opened 11 minutes after it was issued has expired.
    late = served.link()
    served.clock.advance(timedelta(minutes=11))
    response = await other.goto(late)
    assert response is not None and response.status == 403
    await expect(other.locator("body")).to_contain_text("This link expired")
    await expect(other.get_by_role("button", name="Sign in")).to_have_count(0)
    assert (await other.goto(served.base + "/members?tab=all")).status == 401  # type: ignore[union-attr]
