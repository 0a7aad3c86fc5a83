"""The pages in a real headless Chromium: phone width without page overflow, charts drawn, no console errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import Engine

from storage.engine import make_engine
from storage.migrate import upgrade
from tests.browser import chromium_path
from tests.web.pages_app import COMMUNITY, NOW, TIMEZONE, pages_app, seed

CHROMIUM = str(chromium_path())  # COHORTBOT_CHROMIUM or Debian's /usr/bin/chromium
# What the web core's security middleware sends: the pages must work without any inline script.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# Skips without Chromium, fails instead under COHORTBOT_REQUIRE_BROWSER=1 (CI), like every browser test.
pytestmark = pytest.mark.usefixtures("chromium_required")


@web.middleware
async def _csp(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Content-Security-Policy"] = CSP
    return response


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path}/dashboard.db")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
async def base_url(engine: Engine) -> AsyncIterator[str]:
    app = pages_app(engine, seed(engine), community=COMMUNITY, timezone=TIMEZONE, now=NOW)
    app.middlewares.append(_csp)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.mark.parametrize("width", [390, 1280])
async def test_every_page_fits_the_screen_and_draws_its_charts(base_url: str, width: int) -> None:
    playwright_api = pytest.importorskip("playwright.async_api", reason="Playwright for Python is not installed")
    expected_charts = {
        "/activity": 3,
        "/retention": 2,
        "/members?tab=all": 0,
        "/members/1": 1,
        "/sales": 2,  # revenue in the one currency sold (XTR), and the funnel
        "/nudges": 0,
        "/health": 0,
    }
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": width, "height": 800})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            for path, charts in expected_charts.items():
                errors.clear()
                await page.goto(base_url + path)
                await page.wait_for_load_state("load")
                if charts:
                    await page.wait_for_selector(".js-plotly-plot", timeout=10_000)
                overflow = await page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at {width} px"
                drawn = await page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
                assert drawn == charts, path
                if charts:
                    # Hover shows values: every chart has data points, and its text is at least 11 px.
                    points = await page.evaluate(
                        "Array.from(document.querySelectorAll('.js-plotly-plot'))"
                        ".every(el => el.data.some(t => (t.y || t.z || []).length > 0))"
                    )
                    assert points, path
                    smallest = await page.evaluate(
                        "Math.min(...Array.from(document.querySelectorAll('.js-plotly-plot text'))"
                        ".map(t => parseFloat(getComputedStyle(t).fontSize)))"
                    )
                    assert smallest >= 11, f"{path}: chart text of {smallest} px"
                assert errors == [], f"{path}: {errors}"
        finally:
            await browser.close()
