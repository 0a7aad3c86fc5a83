"""Pytest fixtures for tests in a real headless Chromium (Debian's ``chromium``), driven by Playwright's async API.

Registered in ``tests/conftest.py`` (``pytest_plugins``). Playwright's own browser downloads are never used: the
fixture launches the system Chromium at ``COHORTBOT_CHROMIUM`` (default ``/usr/bin/chromium``), which ``.ci/run``
installs. Without it the browser tests are skipped with how to install it, except when ``COHORTBOT_REQUIRE_BROWSER=1``
(CI): then a missing browser fails them, so a broken CI image cannot pass by skipping.

The async API because pytest-asyncio runs in auto mode: the sync API refuses to run inside a running event loop,
and the servers under test (aiohttp) run on the test's loop anyway.

Usage::

    async def test_page(browser: Browser) -> None:
        page = await browser.new_page(viewport={"width": 390, "height": 844})
        errors = page_errors(page)
        await page.goto(url)
        assert errors.messages == []
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

DEFAULT_CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
"""The phone viewport the dashboard must fit (no horizontal page scroll)."""


def chromium_path() -> Path:
    """Where the Chromium executable is expected: ``COHORTBOT_CHROMIUM`` or Debian's ``/usr/bin/chromium``."""
    return Path(os.environ.get("COHORTBOT_CHROMIUM") or DEFAULT_CHROMIUM)


def require_chromium() -> Path:
    """The Chromium executable; skips the test when it is missing, or fails it when a browser is required."""
    path = chromium_path()
    if path.is_file() and os.access(path, os.X_OK):
        return path
    reason = f"Chromium not found at {path}; install Debian's chromium package (apt-get install chromium)"
    if os.environ.get("COHORTBOT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"COHORTBOT_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(f"{reason} or set COHORTBOT_CHROMIUM")


@pytest.fixture
def chromium_required() -> Path:
    """For tests that launch Chromium themselves: its path, with :func:`require_chromium`'s skip-or-fail rule."""
    return require_chromium()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium (the system one), closed after the test."""
    executable = require_chromium()
    async with async_playwright() as playwright:
        # --no-sandbox: CI containers run as root, where Chromium's sandbox refuses to start.
        launched = await playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions of a page, collected as they happen.

    Attributes:
        messages: ``console.error`` texts (CSP violations and failed loads show up here too) and uncaught
            exceptions, in order.
    """

    messages: list[str] = field(default_factory=list)

    @classmethod
    def watch(cls, page: Page) -> PageErrors:
        """Start collecting ``page``'s errors (call before ``goto``)."""
        errors = cls()
        page.on("console", errors._on_console)
        page.on("pageerror", errors._on_page_error)
        return errors

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location.get("url", "")
            self.messages.append(f"console: {message.text}" + (f" ({location})" if location else ""))

    def _on_page_error(self, error: Error) -> None:
        self.messages.append(f"page error: {error.message}")


def page_errors(page: Page) -> PageErrors:
    """Collect ``page``'s console errors and uncaught exceptions from now on (call before ``goto``).

    Args:
        page: A Playwright page.

    Returns:
        The collector; assert ``collector.messages == []`` after the page has done its work.
    """
    return PageErrors.watch(page)
