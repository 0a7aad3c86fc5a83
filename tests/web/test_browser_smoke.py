"""The browser fixture itself: a real headless Chromium loads a page from a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from tests.browser import PHONE, page_errors

WIDE_PAGE = """<!doctype html>
<html><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>smoke</title>
<link rel="icon" href="data:,">
<script src="/app.js" defer></script></head>
<body style="margin:0"><p id="status">loading</p><div id="box" style="width:{width};height:10px"></div></body></html>
"""

APP_JS = """
document.getElementById("status").textContent = "ready";
if (new URLSearchParams(location.search).has("fail")) {
  console.error("something broke");
  throw new Error("boom");
}
"""


async def _page(request: web.Request) -> web.Response:
    return web.Response(text=WIDE_PAGE.format(width=request.query.get("width", "100%")), content_type="text/html")


async def _script(request: web.Request) -> web.Response:
    return web.Response(text=APP_JS, content_type="application/javascript")


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", _page)
    app.router.add_get("/app.js", _script)
    return app


async def test_a_phone_viewport_measures_the_pages_width_and_sees_script_errors(browser: Browser) -> None:
    server = TestServer(_app(), host="127.0.0.1")
    await server.start_server()
    try:
        page = await browser.new_page(viewport=PHONE)
        errors = page_errors(page)

        # A page that fits: its scroll width is the viewport's, and its script ran without errors.
        await page.goto(str(server.make_url("/")))
        await page.wait_for_function("document.getElementById('status').textContent === 'ready'")
        assert await page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
        assert errors.messages == []

        # A 600 px box overflows the phone: the measurement must see it.
        await page.goto(str(server.make_url("/?width=600px")))
        assert await page.evaluate("document.documentElement.scrollWidth") == 600

        # Console errors and uncaught exceptions are collected.
        async with page.expect_event("pageerror"), page.expect_console_message(lambda m: m.type == "error"):
            await page.goto(str(server.make_url("/?fail=1")))
        assert any("something broke" in m for m in errors.messages)
        assert any("boom" in m for m in errors.messages)
    finally:
        await server.close()
