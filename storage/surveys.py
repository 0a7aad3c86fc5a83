"""Surveys: NPS questions and native polls, members' answers, and the survey DMs queued, claimed and sent.

One answer per member per survey: answering again (a changed score, a changed poll vote) updates the row, and a
retracted poll vote deletes it. A member's comment is stored only when they write one. A survey DM is queued once
per member and survey (a unique row), claimed by one conditional ``UPDATE`` before it is sent, so two processes
(or a restart half-way) never send it twice. Every write commits before the function returns.

Answers, comments and survey DMs are member data: ``/forget`` deletes them and ``/mydata`` exports them (their
tables declare ``member_data``, see ``storage.models``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from analytics.surveys import SurveyFrames
from storage.engine import writing
from storage.ledger import ensure_member
from storage.models import Course, Member, Purchase, Refund, Survey, SurveyDm, SurveyResponse

SurveyKind = Literal["nps", "poll"]
SurveyOrigin = Literal["channel", "dm", "after_purchase"]
NPS_SCORES = range(0, 11)
COMMENT_LIMIT = 1000
QUESTION_LIMIT = 300
AFTER_PURCHASE_GRACE = timedelta(days=7)
"""Purchases this much older than ``after_purchase_days`` are no longer asked: a bot that was down for a few days
still asks, but turning the option on does not message every buyer of the past years at once."""


class SurveyError(ValueError):
    """A survey answer that cannot be taken (unknown survey, score out of range); the message says why."""


@dataclass(frozen=True, slots=True)
class SurveyRecord:
    """A stored survey."""

    id: int
    kind: str
    origin: str
    question: str
    options: tuple[str, ...]
    course_key: str | None
    course_title: str | None
    platform: str | None
    channel_id: str | None
    platform_message_id: str | None
    poll_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    """A member's stored answer."""

    survey_id: int
    score: int | None
    option: int | None
    comment: str | None
    answered_at: datetime


@dataclass(frozen=True, slots=True)
class PendingDm:
    """A queued survey DM with what sending it needs to know about the member."""

    dm_id: int
    survey_id: int
    member_id: int
    platform: str
    user_id: str
    opted_out: bool
    unreachable: bool


def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def _course_id(conn: Connection, community_id: int, course_key: str) -> int:
    found = conn.execute(
        select(Course.id).where(Course.community_id == community_id, Course.course_key == course_key)
    ).scalar()
    if found is None:
        raise SurveyError(f"there is no course {course_key!r} in the database (is it in [[courses]]?)")
    return int(found)


def create_survey(
    engine: Engine,
    community_id: int,
    *,
    kind: SurveyKind,
    origin: SurveyOrigin,
    question: str,
    now: datetime,
    options: Sequence[str] = (),
    course_key: str | None = None,
    platform: str | None = None,
    channel_id: str | None = None,
    created_by: str | None = None,
    audience: int | None = None,
) -> int:
    """Store a new survey and return its id.

    Args:
        engine: The database.
        community_id: The community.
        kind: ``nps`` or ``poll``.
        origin: ``channel``, ``dm`` or ``after_purchase``.
        question: What is asked (at most 300 characters).
        now: When it was created.
        options: A poll's answers (2 to 10); empty for NPS.
        course_key: The course it is about, if any.
        platform: Where it is posted (``channel`` surveys) or None.
        channel_id: The platform channel it is posted in.
        created_by: The platform user id of the admin who created it (on ``platform``).
        audience: Members who could answer a channel post.

    Raises:
        SurveyError: A question too long or empty, a poll without 2 to 10 answers, an unknown course.
    """
    question = question.strip()
    if not question or len(question) > QUESTION_LIMIT:
        raise SurveyError(f"a survey question has 1 to {QUESTION_LIMIT} characters")
    if kind == "poll" and not 2 <= len(options) <= 10:
        raise SurveyError("a poll has 2 to 10 answers")
    with writing(engine).begin() as conn:
        course_id = _course_id(conn, community_id, course_key) if course_key else None
        creator = ensure_member(conn, community_id, platform, created_by, now=now) if platform and created_by else None
        return int(
            conn.execute(
                insert(Survey)
                .values(
                    community_id=community_id,
                    kind=kind,
                    origin=origin,
                    question=question,
                    options=json.dumps(list(options)) if kind == "poll" else None,
                    course_id=course_id,
                    platform=platform,
                    channel_id=channel_id,
                    audience=audience,
                    created_by_member_id=creator,
                    created_at=now,
                )
                .returning(Survey.id)
            ).scalar_one()
        )


def delete_survey(engine: Engine, survey_id: int) -> None:
    """Delete a survey that never went up (posting it failed), with anything queued for it."""
    with writing(engine).begin() as conn:
        conn.execute(delete(SurveyDm).where(SurveyDm.survey_id == survey_id))
        conn.execute(delete(SurveyResponse).where(SurveyResponse.survey_id == survey_id))
        conn.execute(delete(Survey).where(Survey.id == survey_id))


def set_posted(engine: Engine, survey_id: int, *, message_id: str | None, poll_id: str | None = None) -> None:
    """Record the platform's ids of the posted survey (a native poll's answers are matched by ``poll_id``)."""
    with writing(engine).begin() as conn:
        conn.execute(
            update(Survey).where(Survey.id == survey_id).values(platform_message_id=message_id, poll_id=poll_id)
        )


def _survey_query() -> Any:
    return select(
        Survey.id,
        Survey.kind,
        Survey.origin,
        Survey.question,
        Survey.options,
        Course.course_key,
        Course.title,
        Survey.platform,
        Survey.channel_id,
        Survey.platform_message_id,
        Survey.poll_id,
        Survey.created_at,
    ).outerjoin(Course, Course.id == Survey.course_id)


def _record(row: Any) -> SurveyRecord:
    return SurveyRecord(
        id=int(row.id),
        kind=row.kind,
        origin=row.origin,
        question=row.question,
        options=tuple(json.loads(row.options)) if row.options else (),
        course_key=row.course_key,
        course_title=row.title,
        platform=row.platform,
        channel_id=row.channel_id,
        platform_message_id=row.platform_message_id,
        poll_id=row.poll_id,
        created_at=row.created_at,
    )


def get_survey(engine: Engine, community_id: int, survey_id: int) -> SurveyRecord | None:
    """The community's survey ``survey_id``, or None."""
    with engine.connect() as conn:
        row = conn.execute(_survey_query().where(Survey.id == survey_id, Survey.community_id == community_id)).first()
    return _record(row) if row is not None else None


def survey_by_poll(engine: Engine, community_id: int, platform: str, poll_id: str) -> SurveyRecord | None:
    """The native poll a platform's poll id (Telegram) or message id (Discord) belongs to, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            _survey_query().where(
                Survey.community_id == community_id, Survey.platform == platform, Survey.poll_id == poll_id
            )
        ).first()
    return _record(row) if row is not None else None


def record_answer(
    engine: Engine,
    community_id: int,
    survey_id: int,
    platform: str,
    user_id: str,
    *,
    now: datetime,
    score: int | None = None,
    option: int | None = None,
    comment: str | None = None,
) -> AnswerRecord:
    """Store (or change) a member's answer; a comment is stored only when given, and kept when the score changes.

    Raises:
        SurveyError: The survey does not exist in the community, a score outside 0–10 for an NPS survey, an
            option the poll does not have, or a comment longer than 1,000 characters.
    """
    with writing(engine).begin() as conn:
        row = conn.execute(
            select(Survey.kind, Survey.options).where(Survey.id == survey_id, Survey.community_id == community_id)
        ).first()
        if row is None:
            raise SurveyError(f"there is no survey {survey_id}")
        kind, options = row
        if kind == "nps" and (score is None or score not in NPS_SCORES):
            raise SurveyError("an NPS answer is a score from 0 to 10")
        if kind == "poll" and (option is None or not 0 <= option < len(json.loads(options or "[]"))):
            raise SurveyError("that answer is not one of the poll's")
        if comment is not None:
            comment = comment.strip()
            if len(comment) > COMMENT_LIMIT:
                raise SurveyError(f"a comment has at most {COMMENT_LIMIT} characters")
        member_id = ensure_member(conn, community_id, platform, user_id, now=now)
        values: dict[str, Any] = {"score": score, "option": option, "answered_at": now}
        if comment:
            values["comment"] = comment
        conn.execute(
            _insert(conn)(SurveyResponse)
            .values(survey_id=survey_id, member_id=member_id, **values)
            .on_conflict_do_update(
                index_elements=["survey_id", "member_id"],
                set_=values,
                # An older answer delivered late (a replayed vote) never overwrites a newer one.
                where=SurveyResponse.answered_at <= now,
            )
        )
        stored = conn.execute(
            select(
                SurveyResponse.score, SurveyResponse.option, SurveyResponse.comment, SurveyResponse.answered_at
            ).where(SurveyResponse.survey_id == survey_id, SurveyResponse.member_id == member_id)
        ).one()
    return AnswerRecord(survey_id, stored[0], stored[1], stored[2], stored[3])


def retract_answer(
    engine: Engine, community_id: int, survey_id: int, platform: str, user_id: str, *, option: int | None = None
) -> bool:
    """Delete a member's answer (a retracted poll vote); with ``option``, only if that is their stored vote.

    Returns:
        Whether an answer was deleted.
    """
    with writing(engine).begin() as conn:
        member_id = conn.execute(
            select(Member.id).where(
                Member.community_id == community_id, Member.platform == platform, Member.platform_user_id == user_id
            )
        ).scalar()
        if member_id is None:
            return False
        where = [SurveyResponse.survey_id == survey_id, SurveyResponse.member_id == member_id]
        if option is not None:
            where.append(SurveyResponse.option == option)
        return bool(conn.execute(delete(SurveyResponse).where(*where)).rowcount)


def member_answer(
    engine: Engine, community_id: int, survey_id: int, platform: str, user_id: str
) -> AnswerRecord | None:
    """A member's stored answer to a survey, or None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(SurveyResponse.score, SurveyResponse.option, SurveyResponse.comment, SurveyResponse.answered_at)
            .join(Member, Member.id == SurveyResponse.member_id)
            .where(
                SurveyResponse.survey_id == survey_id,
                Member.community_id == community_id,
                Member.platform == platform,
                Member.platform_user_id == user_id,
            )
        ).first()
    return AnswerRecord(survey_id, row[0], row[1], row[2], row[3]) if row is not None else None


# --- survey DMs ---------------------------------------------------------------------------------------------------


def course_buyers(engine: Engine, community_id: int, course_key: str, *, now: datetime) -> list[int]:
    """The member ids of everyone who owns ``course_key`` at ``now`` (a live, non-test purchase), humans only."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Purchase.member_id)
            .distinct()
            .join(Course, Course.id == Purchase.course_id)
            .join(Member, Member.id == Purchase.member_id)
            .outerjoin(Refund, Refund.purchase_id == Purchase.id)
            .where(
                Purchase.community_id == community_id,
                Course.course_key == course_key,
                Refund.id.is_(None),
                Purchase.is_test.is_(False),
                Member.is_bot.is_(False),
                (Purchase.access_ends_at.is_(None)) | (Purchase.access_ends_at > now),
            )
            .order_by(Purchase.member_id)
        ).all()
    return [int(r[0]) for r in rows if r[0] is not None]


def reachable_members(engine: Engine, member_ids: Sequence[int]) -> list[int]:
    """Those of ``member_ids`` who may be messaged: reminders not turned off, direct messages not refused."""
    if not member_ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            select(Member.id).where(
                Member.id.in_(list(member_ids)), Member.nudges_opt_out.is_(False), Member.dm_unreachable_at.is_(None)
            )
        ).all()
    return sorted(int(r[0]) for r in rows)


def queue_dms(engine: Engine, survey_id: int, member_ids: Iterable[int], *, now: datetime) -> int:
    """Queue the survey for these members (once each: queuing again adds nobody twice); returns how many were new."""
    ids = sorted(set(member_ids))
    if not ids:
        return 0
    added = 0
    with writing(engine).begin() as conn:
        for member_id in ids:
            added += len(
                conn.execute(
                    _insert(conn)(SurveyDm)
                    .values(survey_id=survey_id, member_id=member_id, queued_at=now)
                    .on_conflict_do_nothing(index_elements=["survey_id", "member_id"])
                    .returning(SurveyDm.id)
                ).all()
            )
    return added


def after_purchase_survey(engine: Engine, community_id: int, course_key: str, question: str, *, now: datetime) -> int:
    """The course's automatic after-purchase NPS survey (one per course), created the first time it is needed."""
    with writing(engine).begin() as conn:
        course_id = _course_id(conn, community_id, course_key)
        found = conn.execute(
            select(Survey.id)
            .where(
                Survey.community_id == community_id, Survey.origin == "after_purchase", Survey.course_id == course_id
            )
            .order_by(Survey.id)
        ).scalar()
        if found is not None:
            return int(found)
    return create_survey(
        engine, community_id, kind="nps", origin="after_purchase", question=question, now=now, course_key=course_key
    )


def due_after_purchase(engine: Engine, community_id: int, *, days: int, now: datetime) -> dict[str, list[int]]:
    """Buyers whose purchase is ``days`` old (within a week's grace), not refunded, per course key."""
    due_before = now - timedelta(days=days)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Course.course_key, Purchase.member_id)
            .join(Course, Course.id == Purchase.course_id)
            .join(Member, Member.id == Purchase.member_id)
            .outerjoin(Refund, Refund.purchase_id == Purchase.id)
            .where(
                Purchase.community_id == community_id,
                Purchase.purchased_at <= due_before,
                Purchase.purchased_at > due_before - AFTER_PURCHASE_GRACE,
                Refund.id.is_(None),
                Purchase.is_test.is_(False),
                Member.is_bot.is_(False),
            )
            .order_by(Purchase.purchased_at, Purchase.id)
        ).all()
    due: dict[str, list[int]] = {}
    for course_key, member_id in rows:
        if member_id is not None:
            due.setdefault(course_key, []).append(int(member_id))
    return due


def pending_dms(engine: Engine, community_id: int, *, limit: int = 500) -> list[PendingDm]:
    """Queued survey DMs nobody has claimed yet, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                SurveyDm.id,
                SurveyDm.survey_id,
                Member.id,
                Member.platform,
                Member.platform_user_id,
                Member.nudges_opt_out,
                Member.dm_unreachable_at,
            )
            .join(Survey, Survey.id == SurveyDm.survey_id)
            .join(Member, Member.id == SurveyDm.member_id)
            .where(Survey.community_id == community_id, SurveyDm.claimed_at.is_(None))
            .order_by(SurveyDm.queued_at, SurveyDm.id)
            .limit(limit)
        ).all()
    return [PendingDm(int(r[0]), int(r[1]), int(r[2]), r[3], r[4], bool(r[5]), r[6] is not None) for r in rows]


def claim_dm(engine: Engine, dm_id: int, *, now: datetime) -> bool:
    """Claim a queued DM for sending; True only for the one caller that may send it."""
    with writing(engine).begin() as conn:
        return bool(
            conn.execute(
                update(SurveyDm).where(SurveyDm.id == dm_id, SurveyDm.claimed_at.is_(None)).values(claimed_at=now)
            ).rowcount
        )


def finish_dm(engine: Engine, dm_id: int, *, sent_at: datetime | None, error: str | None = None) -> None:
    """Record how a claimed DM ended: sent at ``sent_at``, or not sent and why (``error``)."""
    with writing(engine).begin() as conn:
        conn.execute(update(SurveyDm).where(SurveyDm.id == dm_id).values(sent_at=sent_at, error=error and error[:500]))


def survey_dms_sent_since(engine: Engine, community_id: int, since: datetime) -> int:
    """Survey DMs actually sent since ``since`` (they count against the daily DM budget with nudges)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(func.count())
            .select_from(SurveyDm)
            .join(Survey, Survey.id == SurveyDm.survey_id)
            .where(Survey.community_id == community_id, SurveyDm.sent_at >= since)
        ).scalar()
    return int(value or 0)


# --- the frames the results are computed from ----------------------------------------------------------------------


def survey_frames(engine: Engine, community_id: int) -> SurveyFrames:
    """Every survey of the community with its audience, and every answer with its course (``analytics.surveys``)."""
    sent = (
        select(SurveyDm.survey_id, func.count().label("sent"))
        .where(SurveyDm.sent_at.is_not(None))
        .group_by(SurveyDm.survey_id)
        .subquery()
    )
    with engine.connect() as conn:
        survey_rows = conn.execute(
            select(
                Survey.id,
                Survey.kind,
                Survey.origin,
                Survey.question,
                Survey.options,
                Course.course_key,
                Survey.created_at,
                Survey.audience,
                sent.c.sent,
            )
            .outerjoin(Course, Course.id == Survey.course_id)
            .outerjoin(sent, sent.c.survey_id == Survey.id)
            .where(Survey.community_id == community_id)
            .order_by(Survey.id)
        ).all()
        answer_rows = conn.execute(
            select(
                SurveyResponse.survey_id,
                SurveyResponse.member_id,
                SurveyResponse.score,
                SurveyResponse.option,
                SurveyResponse.comment,
                SurveyResponse.answered_at,
            )
            .join(Survey, Survey.id == SurveyResponse.survey_id)
            .where(Survey.community_id == community_id)
            .order_by(SurveyResponse.answered_at, SurveyResponse.id)
        ).all()
    surveys = pd.DataFrame(
        {
            "survey_id": pd.Series([int(r[0]) for r in survey_rows], dtype="int64"),
            "kind": pd.Series([r[1] for r in survey_rows], dtype="object"),
            "origin": pd.Series([r[2] for r in survey_rows], dtype="object"),
            "question": pd.Series([r[3] for r in survey_rows], dtype="object"),
            "options": pd.Series([tuple(json.loads(r[4])) if r[4] else () for r in survey_rows], dtype="object"),
            "course": pd.Series([r[5] for r in survey_rows], dtype="object"),
            "created_at": pd.Series([r[6] for r in survey_rows], dtype="datetime64[ns, UTC]"),
            # Channel posts: the members who could see them; DMs: the ones delivered.
            "audience": pd.Series(
                [int(r[8] or 0) if r[2] != "channel" else int(r[7] or 0) for r in survey_rows], dtype="int64"
            ),
        }
    )
    answers = pd.DataFrame(
        {
            "survey_id": pd.Series([int(r[0]) for r in answer_rows], dtype="int64"),
            "member_id": pd.Series([int(r[1]) for r in answer_rows], dtype="int64"),
            "score": pd.Series([r[2] for r in answer_rows], dtype="Int64"),
            "option": pd.Series([r[3] for r in answer_rows], dtype="Int64"),
            "comment": pd.Series([r[4] for r in answer_rows], dtype="object"),
            "answered_at": pd.Series([r[5] for r in answer_rows], dtype="datetime64[ns, UTC]"),
        }
    )
    return SurveyFrames(surveys=surveys, answers=answers)
