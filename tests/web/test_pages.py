"""The Overview, Activity and Retention pages, the report JSON and the CSV downloads, on a real seeded database."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.migrate import upgrade
from tests.web.pages_app import COMMUNITY, EVIL_NAME, NOW, TIMEZONE, client_for, pages_app, seed

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def engine(tmp_path: Path) -> AsyncIterator[Engine]:  # type: ignore[misc]
    eng = make_engine(f"sqlite:///{tmp_path}/dashboard.db")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
async def client(engine: Engine) -> AsyncIterator[Client]:
    community_id = seed(engine)
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        yield c


@pytest.fixture
async def empty_client(engine: Engine) -> AsyncIterator[Client]:
    community_id = IngestStore(engine).register_community(COMMUNITY, TIMEZONE)
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        yield c


def text_of(html: str) -> str:
    """The page's visible text, one space between words (tags and chart JSON removed)."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def card(html: str, label: str) -> str:
    """The value shown in the figure card labelled ``label``."""
    match = re.search(
        r'<div class="label">' + re.escape(label) + r'</div>\s*<div class="value"[^>]*>([^<]*)</div>', html
    )
    assert match, f"no card {label!r}"
    return match.group(1).strip()


def charts(html: str) -> dict[str, dict[str, object]]:
    """The Plotly figures of the page, by the id of the element they are drawn in."""
    blocks = re.findall(
        r'<script type="application/json" class="chart" data-target="([^"]+)">(.*?)</script>', html, re.S
    )
    return {target: json.loads(body) for target, body in blocks}


def rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


async def test_overview_shows_todays_figures_key_figures_revenue_and_the_week(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    html = await resp.text()
    # Today (Wednesday 03-20): ann's message and bob's reaction.
    assert card(html, "Messages today") == "1"
    assert card(html, "Reactions today") == "1"
    assert card(html, "Active members today") == "2"
    assert 'data-live="messages"' in html and 'src="/static/live.js"' in html
    text = text_of(html)
    assert "Data freshness: last event 2 h ago" in text  # ann's message at 09:00 UTC, the clock at 11:00
    assert card(html, "Purchases today") == "0"  # ann bought yesterday
    assert card(html, "Revenue today") == "nothing"
    # ann, bob and the member named like a script tag; cy left.
    assert card(html, "Members") == "3"
    assert card(html, "MAU") == "3"
    # ann's 500 stars this week; bob's 300 were bought and refunded last week.
    assert card(html, "Net XTR this week") == "500 Stars"
    assert "last week 0 Stars" in text
    assert "2024-W12 so far (2 days) vs the same 2 days of 2024-W11" in text
    assert "Messages: 2 → 1" in text
    # The admin's name and a logout form that carries the CSRF token.
    assert "Signed in as Olga Owner" in text
    assert re.search(
        r'<form class="logout" method="post" action="/logout">.*?name="csrf_token" value="test-csrf-token"', html, re.S
    )


async def test_a_member_named_like_a_script_tag_is_shown_as_text(client: Client) -> None:
    html = await (await client.get("/members?tab=all")).text()
    assert EVIL_NAME not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for path in ("/", "/activity", "/retention"):
        page = await (await client.get(path)).text()
        assert "<script>alert" not in page
        assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", page), "inline script on " + path


async def test_activity_page_has_the_daily_chart_heatmap_channels_and_growth(client: Client) -> None:
    resp = await client.get("/activity")
    assert resp.status == 200
    html = await resp.text()
    figures = charts(html)
    active = figures["chart-active"]["data"]
    assert isinstance(active, list)
    mau = next(t for t in active if t["name"] == "MAU")
    # The chart ends on the last complete day, 03-19, where all three members were active within 28 days.
    assert mau["x"][-1] == "2024-03-19" and mau["y"][-1] == 3
    heat = figures["chart-hours"]["data"][0]  # type: ignore[index]
    # Monday 03-04 10:00, 11:00 and 12:00 Berlin: ann's three messages; ann on Tuesdays 03-12 and 03-19 at 11:00.
    assert heat["z"][0][10:13] == [1, 2, 1]  # with bob on Monday 03-11 at 11:00
    assert heat["z"][1][11] == 2
    assert sum(map(sum, heat["z"])) == 9  # every message of the range, today's included
    text = text_of(html)
    assert "#general 8 3 +8" in text
    growth = figures["chart-growth"]["data"]
    members = next(t for t in growth if t["name"] == "Members")  # type: ignore[union-attr]
    assert members["y"][-1] == 3


async def test_range_picker_changes_the_figures(client: Client) -> None:
    two_weeks = await (await client.get("/activity?from=2024-03-11&to=2024-03-17")).text()
    # Only week 11: ann on 03-12, bob on 03-11 and 03-13 (topic), the script-tag member on 03-13.
    assert "#general 3 3" in text_of(two_weeks)
    chart = charts(two_weeks)["chart-active"]["data"][0]  # type: ignore[index]
    assert chart["x"][0] == "2024-03-11" and chart["x"][-1] == "2024-03-17"
    assert 'value="2024-03-11"' in two_weeks and 'value="2024-03-17"' in two_weeks
    earlier = await (await client.get("/?to=2024-03-10")).text()
    assert card(earlier, "MAU") == "1"  # only ann had posted by 03-10
    assert card(earlier, "Members") == "2"  # ann and bob; cy left on 03-08


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2024-03-20&to=2024-03-01", "&#39;from&#39; (2024-03-20) is after &#39;to&#39; (2024-03-01)"),
        ("to=20-03-2024", "&#39;to&#39; must be a day written YYYY-MM-DD"),
        ("from=1900-01-01", "expected a day from 1970-01-01"),
    ],
)
async def test_a_bad_range_is_a_400_page_that_says_why(client: Client, query: str, message: str) -> None:
    resp = await client.get(f"/activity?{query}")
    assert resp.status == 400
    assert resp.content_type == "text/html"
    assert message in await resp.text()


async def test_report_json_is_the_report_of_the_range(client: Client) -> None:
    resp = await client.get("/report.json?from=2024-03-04&to=2024-03-17")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["as_of"] == "2024-03-17"
    assert [w["week"] for w in doc["weekly"]] == ["2024-W10", "2024-W11"]
    assert [w["messages"] for w in doc["weekly"]] == [3, 4]


async def test_activity_csv_has_one_row_per_measured_day(client: Client) -> None:
    resp = await client.get("/activity.csv?from=2024-03-04&to=2024-03-10")
    assert resp.status == 200
    assert resp.headers["Content-Disposition"] == 'attachment; filename="activity-2024-03-04-2024-03-10.csv"'
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert rows(await resp.text()) == [
        ["day", "dau", "wau", "mau", "joins", "leaves", "members"],
        ["2024-03-04", "1", "1", "1", "1", "0", "1"],
        ["2024-03-05", "0", "1", "1", "1", "0", "2"],
        ["2024-03-06", "0", "1", "1", "1", "0", "3"],
        ["2024-03-07", "0", "1", "1", "0", "0", "3"],
        ["2024-03-08", "0", "1", "1", "0", "1", "2"],
        ["2024-03-09", "0", "1", "1", "0", "0", "2"],
        ["2024-03-10", "0", "1", "1", "0", "0", "2"],
    ]


async def test_channels_csv_lists_topics_with_their_parent_and_is_formula_safe(client: Client) -> None:
    body = await (await client.get("/channels.csv?from=2024-03-04&to=2024-03-17")).text()
    assert rows(body) == [
        ["channel", "parent", "messages", "active_members", "previous_messages", "weekly_messages"],
        ["#general", "", "6", "3", "0", "3 3"],
        ["help#77", "#help", "1", "1", "0", "0 1"],
    ]


async def test_retention_page_and_csv_show_each_cohorts_size(client: Client) -> None:
    html = await (await client.get("/retention?from=2024-03-04&to=2024-03-17")).text()
    text = text_of(html)
    # Week 10 cohort: ann, bob, cy joined; week 11: the script-tag member (first activity).
    assert "2024-W10 3" in text and "2024-W11 1" in text
    heat = charts(html)["chart-cohorts"]["data"][0]  # type: ignore[index]
    assert heat["y"] == ["2024-W10 (n=3)", "2024-W11 (n=1)"]
    body = await (await client.get("/retention.csv?from=2024-03-04&to=2024-03-17")).text()
    table = rows(body)
    assert table[0][:6] == ["cohort", "start", "size", "activation_rate", "activation_eligible", "week_0"]
    assert [r[:3] for r in table[1:]] == [["2024-W10", "2024-03-04", "3"], ["2024-W11", "2024-03-11", "1"]]


async def test_the_plotly_bundle_and_the_scripts_are_served(client: Client) -> None:
    resp = await client.get("/static/plotly.min.js")
    assert resp.status == 200
    assert "max-age=31536000" in resp.headers["Cache-Control"]
    assert "Plotly" in (await resp.text())[:2000]
    js = await client.get("/static/charts.js")
    assert js.status == 200 and "Plotly.newPlot" in await js.text()
    css = await client.get("/static/dashboard.css")
    assert css.status == 200 and "overflow-x: auto" in await css.text()
    assert (await client.get("/static/..%2Fdata.py")).status == 404


async def test_an_empty_database_shows_friendly_empty_states(empty_client: Client) -> None:
    for path in ("/", "/activity", "/retention"):
        resp = await empty_client.get(path)
        assert resp.status == 200, path
        text = text_of(await resp.text())
        assert "nothing has been recorded for this community yet" in text, path
    activity = text_of(await (await empty_client.get("/activity")).text())
    assert "No data in this range." in activity
    overview = text_of(await (await empty_client.get("/")).text())
    assert "Data freshness: no events yet" in overview and "No sales yet." in overview
    body = await (await empty_client.get("/channels.csv")).text()
    assert rows(body) == [["channel", "parent", "messages", "active_members", "previous_messages", "weekly_messages"]]


async def test_new_events_show_after_the_live_feed_invalidates_the_cache(engine: Engine) -> None:
    from bot.web.data import REPORT_CACHE
    from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
    from tests.web.pages_app import at

    community_id = seed(engine)
    app = pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)
    async with client_for(app) as c:
        before = await (await c.get("/activity?from=2024-03-18&to=2024-03-20")).text()
        assert "#general 2 1" in text_of(before)
        store = IngestStore(engine)
        store.register_community(COMMUNITY, TIMEZONE)
        store.write_batch(
            [
                MessageEvent(
                    platform=Platform.TELEGRAM,
                    community=COMMUNITY,
                    message_id="late",
                    channel=ChannelRef("general", name="#general"),
                    author=MemberRef("bob", display_name="Bob"),
                    occurred_at=at(20, 10),
                    length=3,
                )
            ]
        )
        cached = await (await c.get("/activity?from=2024-03-18&to=2024-03-20")).text()
        assert "#general 2 1" in text_of(cached)  # served from the cache until something says it changed
        app[REPORT_CACHE].invalidate()
        after = await (await c.get("/activity?from=2024-03-18&to=2024-03-20")).text()
        assert "#general 3 2" in text_of(after)
