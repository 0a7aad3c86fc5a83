"""The written HTML report in a real headless Chromium: it reads on a phone (390 px) and on a desktop."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.charts import DPI
from analytics.render import write_report
from analytics.results import ChannelActivity, GrowthDay, HourOfWeek, MemberStatus, Report
from tests.report_samples import SCRIPT_NAME, sample_report

CHROMIUM = "/usr/bin/chromium"
REQUIRED = os.environ.get("COHORTBOT_REQUIRE_BROWSER") == "1"

# The smallest text in a chart: the cohort heatmap's cell labels with more than 10 weeks (analytics/charts.py).
SMALLEST_PT = 9.5
MIN_TEXT_PX = 11.0

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - playwright is a test dependency
    async_playwright = None  # type: ignore[assignment]

if not REQUIRED and (async_playwright is None or shutil.which(CHROMIUM) is None):
    pytest.skip(
        "needs playwright and Debian's chromium at /usr/bin/chromium (set COHORTBOT_REQUIRE_BROWSER=1 to fail instead)",
        allow_module_level=True,
    )


def _report() -> Report:
    """The sample report with a long inactive list, a hostile channel name and the new sections filled."""
    base = sample_report()
    inactive = tuple(MemberStatus(1000 + i, f"member-with-a-long-name-{i:03d}", "discord", 20 + i) for i in range(60))
    hours = tuple(HourOfWeek(d, h, (d * 24 + h) % 37 * 10, h % 3) for d in range(7) for h in range(24))
    channels = (
        ChannelActivity(1, "general-discussion-and-announcements", None, 12_345, 310, 9_876, (900, 1_200, 1_500)),
        ChannelActivity(2, SCRIPT_NAME, "general-discussion-and-announcements", 321, 12, 0, (0, 100, 221)),
    )
    start = base.as_of - timedelta(days=27)
    growth = tuple(GrowthDay(start + timedelta(days=i), i % 4, i % 2, 50 + i) for i in range(28))
    return replace(base, inactive=inactive, hour_of_week=hours, channels=channels, growth=growth)


async def _measure(path: Path, width: int) -> dict[str, Any]:
    assert async_playwright is not None
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": width, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await page.goto(path.as_uri())
            result: dict[str, Any] = await page.evaluate(
                """() => ({
                  scrollWidth: document.documentElement.scrollWidth,
                  images: [...document.querySelectorAll('img')].map(i => ({
                    width: i.getBoundingClientRect().width, natural: i.naturalWidth,
                    box: i.parentElement.getBoundingClientRect().width,
                    boxScrolls: getComputedStyle(i.parentElement).overflowX === 'auto'})),
                  tables: [...document.querySelectorAll('.table-scroll')].map(b => ({
                    id: b.parentElement.id, right: b.getBoundingClientRect().right,
                    scrolls: b.scrollWidth > b.clientWidth})),
                  inactiveRows: document.querySelectorAll('#inactive tbody tr').length,
                  scripts: document.querySelectorAll('script').length,
                })"""
            )
            result["requests"] = [u for u in requests if not u.startswith(("file:", "data:"))]
            result["errors"] = errors
            return result
        finally:
            await browser.close()


async def test_report_reads_on_a_phone_and_a_desktop(tmp_path: Path) -> None:
    write_report(_report(), tmp_path, "html", charts=False)
    page = tmp_path / "report.html"
    assert (tmp_path / "inactive.csv").read_text(encoding="utf-8").count("\n") == 61

    phone = await _measure(page, 390)
    assert phone["scrollWidth"] <= 390  # no horizontal page scroll
    assert phone["requests"] == [] and phone["errors"] == [] and phone["scripts"] == 0
    assert phone["inactiveRows"] == 50
    # every table fits the screen and scrolls inside its own box; the wide ones (heatmap, channels) do scroll
    assert all(t["right"] <= 390 for t in phone["tables"]), phone["tables"]
    scrolling = {t["id"] for t in phone["tables"] if t["scrolls"]}
    assert {"hours", "channel-table"} <= scrolling
    assert len(phone["images"]) == 4
    for img in phone["images"]:
        smallest_px = SMALLEST_PT / 72 * DPI * img["width"] / img["natural"]
        assert smallest_px >= MIN_TEXT_PX, img
        assert img["width"] >= 680 and img["box"] <= 390 and img["boxScrolls"], img

    desktop = await _measure(page, 1280)
    assert desktop["scrollWidth"] <= 1280
    for img in desktop["images"]:  # a desktop shows the whole chart, no sideways scroll
        assert img["width"] <= img["box"] + 0.5 and SMALLEST_PT / 72 * DPI * img["width"] / img["natural"] >= 11, img
