"""Surveys in storage, on SQLite and PostgreSQL: one answer per member (a changed vote updates it), a comment kept
only when written, survey DMs queued and claimed once, after-purchase questions due once, and /forget and /mydata
covering answers, comments and survey DMs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from analytics.render import render_json
from analytics.surveys import survey_results
from bot.reporting import ReportRequest, build_community_report
from storage.catalog import CourseRecord, sync_courses
from storage.deletion import delete_member_data, find_member_id
from storage.engine import writing
from storage.events import Platform, RefundEvent
from storage.export import export_member_data
from storage.ingest import IngestStore
from storage.members import set_nudges_opt_out
from storage.models import Survey, SurveyDm, SurveyResponse
from storage.surveys import (
    SurveyError,
    claim_dm,
    course_buyers,
    create_survey,
    due_after_purchase,
    finish_dm,
    member_answer,
    pending_dms,
    queue_dms,
    reachable_members,
    record_answer,
    retract_answer,
    set_posted,
    survey_by_poll,
    survey_dms_sent_since,
    survey_frames,
)
from tests.conftest import COMMUNITY, T0, Events

pytestmark = pytest.mark.storage


def seed(store: IngestStore, engine: Engine) -> int:
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    return community_id


def nps_survey(engine: Engine, community_id: int, **extra: object) -> int:
    return create_survey(
        engine,
        community_id,
        kind="nps",
        origin="channel",
        question="How likely are you to recommend PyCraft to a friend?",
        now=T0,
        platform="discord",
        channel_id="c1",
        audience=10,
        **extra,  # type: ignore[arg-type]
    )


def test_a_changed_score_updates_the_one_answer_and_keeps_the_comment(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    survey_id = nps_survey(engine, community_id)
    record_answer(engine, community_id, survey_id, "discord", "ann", now=T0, score=6)
    record_answer(engine, community_id, survey_id, "discord", "ann", now=T0, score=6, comment="  Too fast  ")
    record_answer(engine, community_id, survey_id, "discord", "ann", now=T0 + timedelta(hours=1), score=9)
    answer = member_answer(engine, community_id, survey_id, "discord", "ann")
    assert answer is not None and (answer.score, answer.comment) == (9, "Too fast")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SurveyResponse)).scalar_one() == 1


def test_bad_answers_are_refused_and_change_nothing(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    survey_id = nps_survey(engine, community_id)
    with pytest.raises(SurveyError, match="0 to 10"):
        record_answer(engine, community_id, survey_id, "discord", "ann", now=T0, score=11)
    with pytest.raises(SurveyError, match="no survey"):
        record_answer(engine, community_id, survey_id + 99, "discord", "ann", now=T0, score=5)
    with pytest.raises(SurveyError, match="1000"):
        record_answer(engine, community_id, survey_id, "discord", "ann", now=T0, score=5, comment="x" * 1001)
    with pytest.raises(SurveyError, match="2 to 10"):
        create_survey(engine, community_id, kind="poll", origin="channel", question="Q?", now=T0, options=("a",))
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SurveyResponse)).scalar_one() == 0


def test_a_native_poll_vote_is_found_by_poll_id_changed_and_withdrawn(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    survey_id = create_survey(
        engine, community_id, kind="poll", origin="channel", question="Next topic?", now=T0, options=("async", "types")
    )
    set_posted(engine, survey_id, message_id="55", poll_id="poll-1")
    found = survey_by_poll(engine, community_id, "telegram", "poll-1")
    assert found is None  # platform is part of the key
    with writing(engine).begin() as conn:
        conn.execute(Survey.__table__.update().where(Survey.id == survey_id).values(platform="telegram"))
    found = survey_by_poll(engine, community_id, "telegram", "poll-1")
    assert found is not None and found.options == ("async", "types")
    record_answer(engine, community_id, survey_id, "telegram", "42", now=T0, option=0)
    record_answer(engine, community_id, survey_id, "telegram", "42", now=T0, option=1)
    assert not retract_answer(engine, community_id, survey_id, "telegram", "42", option=0)  # no longer their vote
    answer = member_answer(engine, community_id, survey_id, "telegram", "42")
    assert answer is not None and answer.option == 1
    assert retract_answer(engine, community_id, survey_id, "telegram", "42")
    assert member_answer(engine, community_id, survey_id, "telegram", "42") is None
    with pytest.raises(SurveyError, match="not one of"):
        record_answer(engine, community_id, survey_id, "telegram", "42", now=T0, option=2)


def test_survey_dms_are_queued_and_claimed_once(engine: Engine, store: IngestStore, ev: Events) -> None:
    community_id = seed(store, engine)
    for user in ("ann", "bob", "cy"):
        store.record_purchase(ev.purchase(user))
    refunded = ev.purchase("dee", charge="refunded")
    store.record_purchase(refunded)
    store.record_refund(RefundEvent(Platform.DISCORD, COMMUNITY, "refunded", T0 + timedelta(hours=1)))
    set_nudges_opt_out(engine, community_id, "discord", "cy", opt_out=True, now=T0)
    buyers = course_buyers(engine, community_id, "py-async", now=T0 + timedelta(days=1))
    assert len(buyers) == 3  # dee's purchase was refunded
    reachable = reachable_members(engine, buyers)
    assert len(reachable) == 2  # cy turned reminders off
    survey_id = nps_survey(engine, community_id, course_key="py-async")
    assert queue_dms(engine, survey_id, reachable, now=T0) == 2
    assert queue_dms(engine, survey_id, reachable, now=T0) == 0  # queued once
    pending = pending_dms(engine, community_id)
    assert [p.user_id for p in pending] == ["ann", "bob"]
    assert claim_dm(engine, pending[0].dm_id, now=T0)
    assert not claim_dm(engine, pending[0].dm_id, now=T0)  # a second process loses
    finish_dm(engine, pending[0].dm_id, sent_at=T0)
    assert [p.user_id for p in pending_dms(engine, community_id)] == ["bob"]
    assert survey_dms_sent_since(engine, community_id, T0 - timedelta(hours=1)) == 1


def test_after_purchase_is_due_in_its_window_only(engine: Engine, store: IngestStore, ev: Events) -> None:
    community_id = seed(store, engine)
    store.record_purchase(ev.purchase("ann", at=T0))
    store.record_purchase(ev.purchase("bob", at=T0 + timedelta(days=3)))
    store.record_purchase(ev.purchase("old", at=T0 - timedelta(days=30)))
    due = due_after_purchase(engine, community_id, days=14, now=T0 + timedelta(days=15))
    with engine.connect() as conn:
        ann = find_member_id(conn, community_id, "discord", "ann")
    assert due == {"py-async": [ann]}
    assert due_after_purchase(engine, community_id, days=14, now=T0 + timedelta(days=13)) == {}


def test_forget_deletes_answers_comments_and_dms_and_mydata_shows_them(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    community_id = seed(store, engine)
    store.record_purchase(ev.purchase("ann"))
    survey_id = nps_survey(engine, community_id, created_by="boss")
    record_answer(engine, community_id, survey_id, "discord", "ann", now=T0, score=3, comment="The videos stutter")
    record_answer(engine, community_id, survey_id, "discord", "bob", now=T0, score=10)
    with engine.connect() as conn:
        ann = find_member_id(conn, community_id, "discord", "ann")
        boss = find_member_id(conn, community_id, "discord", "boss")
    assert ann is not None and boss is not None
    queue_dms(engine, survey_id, [ann], now=T0)
    document = export_member_data(engine, community_id, "discord", "ann", now=T0)
    assert document is not None
    tables = document["tables"]
    assert isinstance(tables, dict)
    answers = tables["survey_responses"]["rows"]
    assert [(a["score"], a["comment"]) for a in answers] == [(3, "The videos stutter")]
    assert len(tables["survey_dms"]["rows"]) == 1
    with writing(engine).begin() as conn:
        report = delete_member_data(conn, ann)
        delete_member_data(conn, boss)
    assert report.deleted["survey_responses"] == 1 and report.deleted["survey_dms"] == 1
    with engine.connect() as conn:
        comments = conn.execute(select(SurveyResponse.comment)).scalars().all()
        assert comments == [None]  # bob's answer stays; ann's comment is gone
        assert conn.execute(select(func.count()).select_from(SurveyDm)).scalar_one() == 0
        # The survey stays (others answered it), detached from the admin who was forgotten.
        assert conn.execute(select(Survey.created_by_member_id)).scalar_one() is None


def test_frames_feed_the_results(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    survey_id = nps_survey(engine, community_id)
    for user, score in (("a", 10), ("b", 9), ("c", 3), ("d", 7)):
        record_answer(engine, community_id, survey_id, "discord", user, now=T0, score=score)
    results = survey_results(survey_frames(engine, community_id), timezone="Europe/Berlin")
    assert (results.overall.promoters, results.overall.detractors, results.overall.responses) == (2, 1, 4)
    assert results.overall.nps == pytest.approx(25.0)
    assert results.overall.response_rate == pytest.approx(0.4)  # 4 of the 10 members then


def test_the_report_json_has_the_surveys_of_its_range(engine: Engine, store: IngestStore, ev: Events) -> None:
    community_id = seed(store, engine)
    store.write_batch([ev.message("a", at=T0)])
    survey_id = nps_survey(engine, community_id)
    record_answer(engine, community_id, survey_id, "discord", "a", now=T0, score=10, comment="Kind people")
    record_answer(engine, community_id, survey_id, "discord", "b", now=T0 + timedelta(days=30), score=0)
    report, _ = build_community_report(
        engine, ReportRequest(COMMUNITY, as_of=(T0 + timedelta(days=1)).date()), now=T0 + timedelta(days=40)
    )
    section = json.loads(render_json(report))["surveys"]
    assert section["overall"]["responses"] == 1 and section["overall"]["nps"] == 100.0  # b answered later
    assert section["comments"] == [{"course": None, "band": "promoter", "comments": ["Kind people"]}]
