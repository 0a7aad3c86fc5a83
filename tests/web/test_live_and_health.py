"""/healthz for monitors, and /live: today's figures pushed to an open page after the writer commits."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from bot.web.context import WebContext
from bot.web.live import TodayFigures, today_figures
from storage.catalog import CourseRecord, sync_courses
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform, PurchaseEvent, PurchaseSource
from storage.ingest import IngestStore
from storage.writer import EventWriter
from tests.conftest import COMMUNITY
from tests.helpers.fake_actions import FakeClock
from tests.web.conftest import COMMUNITY_NAME, NOW, Dashboard, settings, start_dashboard


def message(user: str, message_id: str, minutes: int = 0, community: str = COMMUNITY_NAME) -> MessageEvent:
    return MessageEvent(
        platform=Platform.TELEGRAM,
        community=community,
        message_id=message_id,
        channel=ChannelRef("-100", name="general"),
        author=MemberRef(user, display_name=user.title()),
        occurred_at=NOW - timedelta(minutes=minutes),
        length=10,
    )


async def next_event(response: ClientResponse, within: float) -> dict[str, Any]:
    """The data of the next ``event: today`` on the stream (keep-alive comments skipped)."""

    async def read() -> dict[str, Any]:
        name = None
        while True:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name == "today":
                data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return data

    return await asyncio.wait_for(read(), within)


async def test_healthz_needs_no_login_and_shows_no_data(dashboard: Dashboard) -> None:
    response = await dashboard.client.get("/healthz")
    assert response.status == 200
    assert await response.text() == "ok\n"


async def test_healthz_is_503_with_the_reason_when_something_stopped(dashboard: Dashboard) -> None:
    dashboard.problems.append("the event writer is not running")
    response = await dashboard.client.get("/healthz")
    assert response.status == 503
    assert "event writer is not running" in await response.text()
    dashboard.problems.clear()
    assert (await dashboard.client.get("/healthz")).status == 200


@pytest.mark.storage
def test_today_figures_count_today_in_the_community_time_zone(store: IngestStore) -> None:
    # The conftest's community ("testers", Europe/Berlin), on SQLite and PostgreSQL.
    cid = store.community_id(COMMUNITY)
    sync_courses(store.engine, cid, [CourseRecord("py", "Py", price_stars=50)])
    store.write_batch(
        [
            message("ada", "1", community=COMMUNITY),
            message("ada", "2", minutes=5, community=COMMUNITY),
            message("bob", "3", community=COMMUNITY),
            # 10:00 UTC (11:00 in Berlin) minus 12 hours is 23:00 yesterday in Berlin: not today.
            message("cy", "4", minutes=12 * 60, community=COMMUNITY),
        ]
    )
    sale = PurchaseEvent(
        platform=Platform.TELEGRAM,
        community=COMMUNITY,
        member=MemberRef("ada"),
        course_id="py",
        charge_id="c1",
        amount=50,
        currency="XTR",
        occurred_at=NOW,
        source=PurchaseSource.TELEGRAM_STARS,
    )
    store.record_purchase(sale)
    ctx = WebContext(settings(), store.engine, FakeClock(NOW), cid, "s")
    figures = today_figures(ctx)
    assert isinstance(figures, TodayFigures)
    assert (figures.messages, figures.active_members, figures.purchases) == (3, 2, 1)
    assert figures.revenue == {"XTR": "50 Stars"}
    assert figures.last_event_at == NOW
    assert figures.as_json()["day"] == "2024-03-06"


async def test_a_stored_message_reaches_an_open_page_within_two_seconds(web_store: IngestStore) -> None:
    writer = EventWriter(web_store)
    await writer.start()
    board = await start_dashboard(web_store, writer=writer)
    try:
        await board.sign_in()
        stream = await board.client.get("/live")
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        first = await next_event(stream, within=2)
        assert first["messages"] == 0

        loop = asyncio.get_running_loop()
        started = loop.time()
        await writer.put(message("ada", "m1"))
        pushed = await next_event(stream, within=2)
        assert pushed["messages"] == 1
        assert pushed["active_members"] == 1
        assert loop.time() - started < 2
        stream.close()
    finally:
        await board.client.close()
        await writer.stop()


async def test_a_recorded_purchase_reaches_an_open_page(web_store: IngestStore) -> None:
    sync_courses(web_store.engine, web_store.community_id(COMMUNITY_NAME), [CourseRecord("py", "Py", price_stars=50)])
    writer = EventWriter(web_store)
    await writer.start()
    board = await start_dashboard(web_store, writer=writer)
    try:
        await board.sign_in()
        stream = await board.client.get("/live")
        assert (await next_event(stream, within=2))["purchases"] == 0
        sale = PurchaseEvent(
            platform=Platform.TELEGRAM,
            community=COMMUNITY_NAME,
            member=MemberRef("ada"),
            course_id="py",
            charge_id="c1",
            amount=50,
            currency="XTR",
            occurred_at=NOW,
            source=PurchaseSource.TELEGRAM_STARS,
        )
        await writer.record_purchase(sale)
        pushed = await next_event(stream, within=2)
        assert (pushed["purchases"], pushed["revenue"]) == (1, {"XTR": "50 Stars"})
        stream.close()
    finally:
        await board.client.close()
        await writer.stop()


async def test_standalone_pages_are_refreshed_at_the_interval(web_store: IngestStore) -> None:
    board = await start_dashboard(web_store)  # no writer: refresh_seconds = 1
    try:
        await board.sign_in()
        stream = await board.client.get("/live")
        assert (await next_event(stream, within=2))["messages"] == 0
        # Another process (the bot) stores a message; the standalone page picks it up at the next refresh.
        await asyncio.to_thread(web_store.write_batch, [message("ada", "m1")])
        assert (await next_event(stream, within=3))["messages"] == 1
        stream.close()
    finally:
        await board.client.close()


async def test_shutting_down_closes_open_streams(web_store: IngestStore) -> None:
    writer = EventWriter(web_store)
    await writer.start()
    board = await start_dashboard(web_store, writer=writer)
    try:
        await board.sign_in()
        stream = await board.client.get("/live")
        await next_event(stream, within=2)
        # The test server's shutdown would hang on an open stream if the hub did not end it.
        await asyncio.wait_for(board.client.close(), 5)
    finally:
        await writer.stop()


@pytest.mark.parametrize("path", ["/live"])
async def test_live_needs_a_session(dashboard: Dashboard, path: str) -> None:
    assert (await dashboard.client.get(path)).status == 401
