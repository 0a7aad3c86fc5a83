"""Survey DMs and nudges share one daily DM budget ([nudges] max_per_day), whichever goes out first."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from storage.catalog import CourseRecord, sync_courses
from storage.ingest import IngestStore
from storage.surveys import create_survey, queue_dms
from tests.conftest import COMMUNITY, Events
from tests.helpers.platform_double import FakeClock, RecordingPlatform
from tests.test_nudges import NOW, member_id, scheduler, seed_inactive, settings

pytestmark = pytest.mark.storage


async def test_survey_dms_sent_today_leave_less_for_nudges_and_the_reverse(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    users = seed_inactive(store, ev, 10)
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    cfg = settings(holdout_share=0, max_per_run=10, max_per_day=6, max_per_minute=60)
    clock = FakeClock(NOW)
    platform = RecordingPlatform("discord")
    sched = scheduler(engine, store, cfg, clock, platform)
    survey_id = create_survey(
        engine, community_id, kind="nps", origin="dm", question="Q?", now=NOW, course_key="py-async"
    )
    queue_dms(engine, survey_id, [member_id(engine, u) for u in users[:4]], now=NOW)
    result = await sched.run("surveys")
    assert "sent 4" in result.detail
    await sched.run("nudges")
    assert len(platform.sent) == 6  # 4 survey questions + 2 nudges: the day's 6
    queue_dms(engine, survey_id, [member_id(engine, u) for u in users[4:6]], now=NOW)
    clock.advance(timedelta(minutes=30))
    result = await sched.run("surveys")
    assert "sent 0" in result.detail and "left for later 2" in result.detail
    assert len(platform.sent) == 6
