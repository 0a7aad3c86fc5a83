"""The Sales page of the real dashboard (login and all) shows the subscriptions and the revenue per member by join
month, with their CSV downloads, on SQLite and PostgreSQL; the figures are those of the report's worked example
(tests/test_analytics_subscriptions.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import Engine

from bot.config.settings import CommunitySettings, DashboardSettings, Settings
from bot.web.context import WebContext
from bot.web.server import build_web_application
from tests.conftest import COMMUNITY
from tests.helpers.fake_actions import FakeClock
from tests.test_analytics_subscriptions import build
from tests.web.conftest import Dashboard
from tests.web.test_pages import card, charts
from tests.web.test_pages_members import table_rows

pytestmark = pytest.mark.storage

RANGE = "to=2024-05-08"


@pytest.fixture
async def board(engine: Engine) -> AsyncIterator[Dashboard]:
    store = build(engine)
    clock = FakeClock(datetime(2024, 5, 8, 12, tzinfo=UTC))
    ctx = WebContext(
        settings=Settings(
            community=CommunitySettings(name=COMMUNITY, timezone="UTC"),
            dashboard=DashboardSettings(enabled=True, refresh_seconds=30),
        ),
        engine=engine,
        clock=clock,
        community_id=store.community_id(COMMUNITY),
        signing_secret="test-secret-" + "x" * 32,
    )
    client = TestClient(TestServer(build_web_application(ctx, problems=lambda: [])))
    await client.start_server()
    dashboard = Dashboard(client, ctx, clock)
    await dashboard.sign_in()
    yield dashboard
    await client.close()


def csv_rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


async def test_sales_page_shows_subscriptions_and_revenue_per_member(board: Dashboard) -> None:
    resp = await board.client.get(f"/sales?{RANGE}")
    assert resp.status == 200
    html = await resp.text()
    assert card(html, "Active subscriptions") == "2"
    assert (card(html, "MRR EUR"), card(html, "MRR XTR")) == ("12.00 EUR", "250 Stars")  # one card per currency
    assert card(html, "Renewal rate") == "66.7%"
    assert "4 of 6 renewed in this range" in html
    weeks = table_rows(html, "subscription-weeks")
    assert len(weeks) == 12 and weeks[0] == "2024-W19 0 0 2"  # newest first
    assert "2024-W15 1 1 2" in weeks and "2024-W14 0 1 2" in weeks and "2024-W10 3 0 3" in weeks
    assert table_rows(html, "subscription-courses") == [
        "Review club 1 3 2 4 50.0%",
        "Pro mentoring 1 1 0 2 100.0%",
    ]
    # The refund rate per course stays in the courses table (one definition, docs/metrics.md "Refund rate").
    assert [r.split(" ")[-2] for r in table_rows(html, "sales-courses")] == ["20.0%", "0.0%"]
    assert table_rows(html, "sales-ltv")[-2:] == [  # newest month first, currencies in order
        "2024-03 4 EUR 1 36.00 EUR 9.00 EUR",
        "2024-03 4 XTR 2 1,000 Stars 250 Stars",
    ]
    chart = charts(html)["chart-subscriptions"]["data"]
    assert [trace["name"] for trace in chart] == ["New", "Churned", "Active at week end"]  # type: ignore[index, union-attr, attr-defined]


async def test_subscription_and_ltv_downloads(board: Dashboard) -> None:
    weeks = csv_rows(await (await board.client.get(f"/subscriptions.csv?{RANGE}")).text())
    assert weeks[0] == ["week", "start", "new", "churned", "active_at_end"]
    assert ["2024-W15", "2024-04-08", "1", "1", "2"] in weeks
    assert len(weeks) == 13
    ltv = csv_rows(await (await board.client.get(f"/ltv.csv?{RANGE}")).text())
    assert ltv[0] == ["join_month", "currency", "members", "buyers", "net", "per_member"]
    assert ["2024-03", "XTR", "4", "2", "1000.0", "250.0"] in ltv
    report = await (await board.client.get(f"/report.json?{RANGE}")).json()
    assert report["subscriptions"]["active"] == 2
    assert report["subscriptions"]["mrr"] == [{"currency": "EUR", "amount": 12.0}, {"currency": "XTR", "amount": 250.0}]


async def test_subscription_downloads_need_a_login(engine: Engine, board: Dashboard) -> None:
    anonymous = TestClient(TestServer(build_web_application(board.ctx, problems=lambda: [])))
    await anonymous.start_server()
    try:
        for path in ("/subscriptions.csv", "/ltv.csv"):
            resp = await anonymous.get(path, allow_redirects=False)
            assert resp.status in (302, 303, 401, 403), path
    finally:
        await anonymous.close()
