"""The Surveys page and its CSV and JSON downloads, on a real seeded database: NPS with its interval, per course and
per month, comments grouped without names, polls, and answers after the range left out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import Engine

from storage.catalog import CourseRecord, sync_courses
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.surveys import create_survey, record_answer
from tests.web.pages_app import COMMUNITY, EVIL_NAME, NOW, TIMEZONE, client_for, pages_app, seed
from tests.web.test_pages import card, rows, text_of

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def engine(tmp_path: Path) -> AsyncIterator[Engine]:  # type: ignore[misc]
    eng = make_engine(f"sqlite:///{tmp_path}/dashboard.db")
    upgrade(eng)
    yield eng
    eng.dispose()


async def test_surveys_page_csv_and_json(engine: Engine) -> None:
    community_id = seed(engine)
    sync_courses(engine, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    march = datetime(2024, 3, 5, 10, tzinfo=UTC)
    channel = create_survey(
        engine,
        community_id,
        kind="nps",
        origin="channel",
        question="Q?",
        now=march,
        platform="telegram",
        channel_id="-100",
        audience=8,
    )
    course = create_survey(
        engine, community_id, kind="nps", origin="dm", question="Q?", now=march, course_key="py-async"
    )
    poll = create_survey(
        engine,
        community_id,
        kind="poll",
        origin="channel",
        question="Next?",
        now=march,
        options=("a", "b"),
        audience=8,
    )
    for user, score in (("ann", 10), ("bob", 9), ("cy", 5), ("dee", 8)):
        record_answer(engine, community_id, channel, "telegram", user, now=march, score=score)
    record_answer(engine, community_id, channel, "telegram", "cy", now=march, score=5, comment=EVIL_NAME)
    record_answer(engine, community_id, course, "telegram", "ann", now=march, score=10, comment="Loved it")
    record_answer(engine, community_id, poll, "telegram", "bob", now=march, option=1)
    later = datetime(2024, 4, 2, tzinfo=UTC)  # after the dashboard's "now": not counted
    record_answer(engine, community_id, channel, "telegram", "eve", now=later, score=0)
    async with client_for(pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)) as c:
        resp = await c.get("/surveys")
        assert resp.status == 200
        html = await resp.text()
        # 3 promoters (10, 9, 10), 1 passive, 1 detractor of 5: +40.
        assert card(html, "NPS") == "+40"
        page = text_of(html)
        assert "the community: detractors" in page and "Async Python" not in page
        assert EVIL_NAME not in html and "&lt;script&gt;" in html  # a comment is shown, escaped
        assert "b: 1" in page
        table = rows(await (await c.get("/surveys.csv")).text())
        assert table[0][:3] == ["scope", "key", "responses"]
        assert table[1][:3] == ["overall", "", "5"]
        assert table[3][:3] == ["course", "py-async", "1"]
        document = json.loads(await (await c.get("/surveys.json")).text())
        assert document["overall"]["nps"] == 40.0 and document["overall"]["responses"] == 5
        assert document["polls"][0]["options"] == [{"text": "a", "votes": 0}, {"text": "b", "votes": 1}]
        report = json.loads(await (await c.get("/report.json")).text())
        assert report["surveys"] == document  # the report JSON carries the same section
