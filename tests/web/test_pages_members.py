"""Members, a member's page, Sales, Nudges and Health, on a real seeded database."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from analytics.experiments import rate_difference
from storage.deletion import find_member_id
from storage.events import ChannelRef, MemberJoined, MemberRef, MessageEvent, Platform
from storage.ingest import IngestStore
from storage.job_runs import finish_job_run, start_job_run
from storage.nudge_log import record_nudge, record_nudge_outcomes
from storage.writer import EventWriter
from tests.web.pages_app import COMMUNITY, EVIL_NAME, NOW, TIMEZONE, at, client_for, pages_app, seed
from tests.web.test_pages import card, charts, text_of

Client = TestClient[web.Request, web.Application]

# On SQLite and PostgreSQL: the member page and the health and nudge pages read storage/member_profile.py.
pytestmark = pytest.mark.storage


@pytest.fixture
def community_id(engine: Engine) -> int:
    return seed(engine)


def store(engine: Engine) -> IngestStore:
    """The writer's store, knowing the seeded community."""
    s = IngestStore(engine)
    s.register_community(COMMUNITY, TIMEZONE)
    return s


def member(engine: Engine, community_id: int, user: str) -> int:
    with engine.connect() as conn:
        found = find_member_id(conn, community_id, "telegram", user)
    assert found is not None
    return found


@pytest.fixture
async def client(engine: Engine, community_id: int) -> AsyncIterator[Client]:
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        yield c


def rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


def table_rows(html: str, table_id: str = "") -> list[str]:
    """The text of each body row of the page's tables."""
    import re

    body = html if not table_id else html[html.index(f'id="{table_id}"') :]
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", body.split("</table>")[0] if table_id else body, re.S):
        if "<td" in row:
            out.append(text_of(row))
    return out


async def test_members_lists_segments_and_every_member_with_last_seen_score_and_courses(client: Client) -> None:
    resp = await client.get("/members?tab=all")
    assert resp.status == 200
    html = await resp.text()
    assert card(html, "regulars") == "2" and card(html, "newcomers") == "1"
    newcomers = table_rows(await (await client.get("/members?tab=all&segment=newcomers")).text())
    assert [r.split(" telegram ")[0] for r in newcomers] == ["&lt;script&gt;alert(1)&lt;/script&gt;"]
    regulars = rows(await (await client.get("/members.csv?tab=all&segment=regulars")).text())
    assert [r[1] for r in regulars[1:]] == ["Ann", "Bob"]
    listed = table_rows(html)
    # Highest score first: ann (6 messages in 28 days, owns the course), bob, the script-tag member.
    assert [r.split(" telegram ")[0] for r in listed] == ["Ann", "Bob", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    assert " today " in listed[0] and listed[0].endswith(" 6 regulars Python async")
    assert " 7 days ago " in listed[2] and listed[2].endswith(" 1 newcomers –")  # bob's refunded course is not his
    assert "3 members" in text_of(html)


async def test_members_search_sort_tabs_and_csv(engine: Engine, community_id: int, client: Client) -> None:
    by_course = table_rows(await (await client.get("/members?tab=all&q=PYTHON")).text())
    assert len(by_course) == 1 and by_course[0].startswith("Ann ")
    assert "No member matches “zed”." in text_of(await (await client.get("/members?tab=all&q=zed")).text())
    by_name = table_rows(await (await client.get("/members?tab=all&sort=name&dir=desc")).text())
    assert [r.split(" ")[0] for r in by_name] == ["Bob", "Ann", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    # Nobody has been silent for 14 days; the top list is ranked by the same score.
    assert "Nobody in this list." in text_of(await (await client.get("/members?tab=inactive")).text())
    top = table_rows(await (await client.get("/members?tab=top")).text())
    assert [r.split(" ")[0] for r in top] == ["Ann", "Bob", "&lt;script&gt;alert(1)&lt;/script&gt;"]
    resp = await client.get("/members.csv?tab=all&sort=name")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="members-all-2024-03-20.csv"'
    table = rows(await resp.text())
    assert table[0] == [
        "member_id",
        "name",
        "platform",
        "days_since_active",
        "score",
        "messages_28d",
        "segment",
        "courses",
    ]
    ids = [member(engine, community_id, u) for u in ("x1", "ann", "bob")]
    assert [(r[0], r[1], r[3], r[5], r[6], r[7]) for r in table[1:]] == [
        (str(ids[0]), EVIL_NAME, "7", "1", "newcomers", ""),
        (str(ids[1]), "Ann", "0", "6", "regulars", "Python async"),
        (str(ids[2]), "Bob", "0", "2", "regulars", ""),
    ]


async def test_a_name_that_looks_like_a_formula_is_quoted_in_the_csv(engine: Engine, community_id: int) -> None:
    store(engine).write_batch(
        [
            MessageEvent(
                platform=Platform.TELEGRAM,
                community=COMMUNITY,
                message_id="f1",
                channel=ChannelRef("general", name="#general"),
                author=MemberRef("eve", display_name='=HYPERLINK("http://x")'),
                occurred_at=at(19),
                length=5,
            )
        ]
    )
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        body = await (await c.get("/members.csv?tab=all&q=hyperlink")).text()
    assert rows(body)[1][1] == '\'=HYPERLINK("http://x")'


async def test_members_are_paged_fifty_at_a_time(engine: Engine, community_id: int) -> None:
    store(engine).write_batch(
        [MemberJoined(Platform.TELEGRAM, COMMUNITY, MemberRef(f"m{i:02d}"), at(18)) for i in range(60)]
    )
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        first = await (await c.get("/members?tab=all")).text()
        second = await (await c.get("/members?tab=all&page=2")).text()
        csv_body = await (await c.get("/members.csv?tab=all")).text()
    assert len(table_rows(first)) == 50 and "Page 1 of 2" in text_of(first)
    assert len(table_rows(second)) == 13 and "Page 2 of 2" in text_of(second)
    assert len(rows(csv_body)) == 1 + 63


async def test_member_page_shows_activity_channels_purchases_and_nudges(
    engine: Engine, community_id: int, client: Client
) -> None:
    bob = member(engine, community_id, "bob")
    record_nudge(engine, community_id, bob, group="nudged", decided_at=at(10, 9), sent_at=at(10, 9))
    resp = await client.get(f"/members/{bob}?from=2024-03-04&to=2024-03-17")
    assert resp.status == 200
    html = await resp.text()
    assert "<h1>Bob</h1>" in html
    assert table_rows(html, "member-channels") == ["#general 1 1", "#help › help#77 1 1"]
    assert table_rows(html, "member-purchases") == ["Python async 300 Stars 2024-03-12 11:00 refunded 2024-03-13 11:00"]
    assert table_rows(html, "member-nudges") == ["nudged 2024-03-10 10:00 2024-03-10 10:00 not yet"]
    daily = charts(html)["chart-member"]["data"][0]  # type: ignore[index]
    assert daily["x"] == ["2024-03-11", "2024-03-13"] and daily["y"] == [1, 1]


async def test_an_unknown_member_is_a_404_and_a_script_name_stays_text(
    engine: Engine, community_id: int, client: Client
) -> None:
    for path in ("/members/999999", "/members/abc", "/members/-1"):
        resp = await client.get(path)
        assert resp.status == 404, path
        assert "No such member" in await resp.text()
    evil = await (await client.get(f"/members/{member(engine, community_id, 'x1')}")).text()
    assert EVIL_NAME not in evil and "&lt;script&gt;alert(1)&lt;/script&gt;" in evil


async def test_sales_split_per_course_and_week_with_funnel_cohorts_and_refunds(client: Client) -> None:
    resp = await client.get("/sales")
    assert resp.status == 200
    html = await resp.text()
    assert card(html, "Buyers") == "2"
    assert card(html, "Refund rate") == "50.0%"
    assert table_rows(html, "sales-weeks") == [
        "2024-W12 Python async XTR 1 0 500 Stars 0 Stars 500 Stars",
        "2024-W11 Python async XTR 1 1 300 Stars 300 Stars 0 Stars",
    ]
    assert table_rows(html, "sales-courses")[0].endswith("300 Stars × 1, 500 Stars × 1")
    assert table_rows(html, "sales-cohorts") == ["2024-W10 3 2 66.7%", "2024-W11 1 0 0.0%"]
    assert table_rows(html, "sales-refunds") == ["Python async 300 Stars 2024-03-12 2024-03-13"]
    figures = charts(html)
    assert figures["chart-funnel"]["data"][0]["x"] == [4, 2]  # type: ignore[index]
    revenue = figures["chart-revenue-1"]["data"][0]  # type: ignore[index]
    assert revenue["name"] == "Python async" and revenue["y"][-2:] == [0, 500]
    body = await (await client.get("/sales.csv")).text()
    assert rows(body) == [
        ["week", "course", "title", "currency", "sales", "buyers", "refunds", "gross", "refunded", "net"],
        ["2024-W11", "py-async", "Python async", "XTR", "1", "1", "1", "300", "300", "0"],
        ["2024-W12", "py-async", "Python async", "XTR", "1", "1", "0", "500", "0", "500"],
    ]


async def test_nudges_compare_nudged_with_holdout_per_run(engine: Engine, community_id: int, client: Client) -> None:
    ids = {u: member(engine, community_id, u) for u in ("ann", "bob", "cy", "x1")}
    run1 = at(11, 9)  # bob (posts an hour later) and x1 (posts on 03-13) nudged; cy held out; ann unreachable
    record_nudge(engine, community_id, ids["bob"], group="nudged", decided_at=run1, sent_at=run1)
    record_nudge(engine, community_id, ids["x1"], group="nudged", decided_at=run1, sent_at=run1)
    record_nudge(engine, community_id, ids["cy"], group="holdout", decided_at=run1)
    record_nudge(engine, community_id, ids["ann"], group="nudged", decided_at=run1, error="blocked the bot")
    run2 = at(18, 9)  # ann nudged, back on 03-19, but the 7-day window is still open
    record_nudge(engine, community_id, ids["ann"], group="nudged", decided_at=run2, sent_at=run2)
    record_nudge_outcomes(engine, community_id, now=NOW, timezone=ZoneInfo(TIMEZONE), window_days=7)
    html = await (await client.get("/nudges")).text()
    diff = rate_difference(2, 2, 0, 1)
    interval = f"{diff.low * 100:+.1f} to {diff.high * 100:+.1f} points"  # type: ignore[operator]
    assert table_rows(html, "nudge-runs") == [
        "2024-03-18 1 / 1 (100%) 0 / 0 (–) – – 0 window still open",
        f"2024-03-11 2 / 2 (100%) 0 / 1 (0%) +100.0 points {interval} 1 "
        + ("comes back more" if diff.conclusive else "no clear effect"),
    ]
    assert card(html, "Nudged who came back") == "100.0%"
    assert card(html, "Holdout who came back") == "0.0%"
    assert "2 / 2 over 1 closed runs" in text_of(html)


async def test_health_shows_jobs_queue_last_events_and_problems(engine: Engine, community_id: int) -> None:
    run = start_job_run(engine, community_id, "digest", now=at(18, 8), host="box")
    finish_job_run(engine, run, now=at(18, 8) + timedelta(seconds=3), outcome="ok", detail="sent 2024-W11")
    run = start_job_run(engine, community_id, "nudges", now=at(19, 8), host="box")
    finish_job_run(engine, run, now=at(19, 8), outcome="failed", detail="telegram answered 403")
    writer = EventWriter(store(engine))  # not started: what it was handed waits in its queue
    for i in range(2):
        writer.put_nowait(MemberJoined(Platform.TELEGRAM, COMMUNITY, MemberRef(f"q{i}"), at(20, 10)))
    app = pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW, writer=writer)
    async with client_for(app) as c:
        html = await (await c.get("/health")).text()
    assert card(html, "Writer queue") == "2"
    jobs = table_rows(html, "jobs")
    assert "digest sends the weekly owner digest ok 2024-03-18 09:00 2024-03-18 09:00 sent 2024-W11" in jobs
    assert "nudges nudges inactive members failed 2024-03-19 09:00 2024-03-19 09:00 telegram answered 403" in jobs
    assert any(r.startswith("reconcile makes course access match purchases never run") for r in jobs)
    assert table_rows(html, "platforms") == ["telegram 2024-03-20 10:00 2 h ago"]
    assert table_rows(html, "problems") == ["2024-03-19 09:00 job nudges failed telegram answered 403"]


async def test_an_empty_community_shows_empty_states_on_every_page(engine: Engine) -> None:
    community_id = IngestStore(engine).register_community(COMMUNITY, TIMEZONE)
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        expected = {
            "/members?tab=all": "Nobody in this list.",
            "/sales": "No sales yet.",
            "/nudges": "No nudge runs in this range.",
            "/health": "Nothing recorded yet.",
        }
        for path, message in expected.items():
            resp = await c.get(path)
            assert resp.status == 200, path
            assert message in text_of(await resp.text()), path
        assert rows(await (await c.get("/sales.csv")).text())[1:] == []
        assert rows(await (await c.get("/members.csv")).text())[1:] == []
