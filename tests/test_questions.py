"""Questions and answers on small hand-made threads, through real storage (SQLite and PostgreSQL).

Each scenario is stored as platform events through ``IngestStore``, read back by ``storage.questions`` and measured
by ``analytics.questions``: the definitions of docs/metrics.md, "Questions and answers".
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import func, select

from analytics.questions import QuestionRules, find_questions, in_range, questions_summary
from bot.config import HelpSettings
from bot.questions import question_rules
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
from storage.ingest import IngestStore
from storage.models import QuestionPing
from storage.questions import HelpScope, claim_ping, help_messages
from tests.conftest import COMMUNITY

pytestmark = pytest.mark.storage

T = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
END = T + timedelta(days=7)
DEFAULT_RULES = QuestionRules()
_ids = count(1)


def msg(
    user: str,
    minutes: float,
    *,
    channel: str,
    parent: str | None = None,
    topic: str | None = None,
    reply_to: str | None = None,
    bot: bool = False,
    platform: Platform = Platform.DISCORD,
) -> MessageEvent:
    return MessageEvent(
        platform=platform,
        community=COMMUNITY,
        message_id=str(next(_ids)),
        channel=ChannelRef(channel, name=f"ch{channel}", thread_id=topic, parent_id=parent),
        author=MemberRef(user, display_name=user.title(), is_bot=bot),
        occurred_at=T + timedelta(minutes=minutes),
        length=20,
        reply_to_message_id="1" if reply_to else None,
        reply_to_user_id=reply_to,
    )


def questions(
    store: IngestStore, scope: HelpScope, rules: QuestionRules = DEFAULT_RULES, end: datetime = END
) -> list[tuple[str, str | None, float | None]]:
    """(asker, first answerer, minutes to the answer) of every question asked in [T, end)."""
    with store.engine.connect() as conn:
        frame = help_messages(
            conn, store.community_id(COMMUNITY), scope, start=T, end=end, quiet_minutes=rules.quiet_minutes
        )
    found = in_range(find_questions(frame, rules), T, end)
    waits = (found["answered_at"] - found["asked_at"]).dt.total_seconds() / 60
    return [
        (str(asker), None if pd.isna(answerer) else str(answerer), None if pd.isna(wait) else float(wait))
        for asker, answerer, wait in zip(found["asker"], found["answerer"], waits, strict=True)
    ]


def forum_post(store: IngestStore) -> None:
    """Forum 500: post 501 (self-reply, bot reply, then an answer after 90 min) and post 502 (only a bot answers)."""
    store.write_batch(
        [
            msg("ann", 0, channel="501", parent="500"),
            msg("ann", 5, channel="501", parent="500"),  # the asker adds detail: not an answer
            msg("helpbot", 6, channel="501", parent="500", bot=True),  # a bot: not an answer
            msg("bob", 90, channel="501", parent="500"),
            msg("cid", 120, channel="502", parent="500"),
            msg("helpbot", 121, channel="502", parent="500", bot=True),
        ]
    )


def test_a_forum_post_is_answered_by_the_first_other_human_not_the_asker_or_a_bot(store: IngestStore) -> None:
    forum_post(store)
    # No [help] channels at all: a Discord forum (threads, no message of its own) is a help channel by itself.
    assert questions(store, HelpScope()) == [("Ann", "Bob", 90.0), ("Cid", None, None)]


def test_an_excluded_forum_has_no_questions(store: IngestStore) -> None:
    forum_post(store)
    assert questions(store, HelpScope(exclude=("500",))) == []


def test_a_text_channel_with_threads_is_not_taken_for_a_forum(store: IngestStore) -> None:
    store.write_batch([msg("ann", 0, channel="700"), msg("ann", 1, channel="701", parent="700")])
    assert questions(store, HelpScope()) == []
    assert [q[0] for q in questions(store, HelpScope(channels=("700",)))] == ["Ann", "Ann"]  # channel + its thread


def flat_channel(store: IngestStore) -> None:
    """Channel 600: a question answered in its conversation, then two questions after silences."""
    store.write_batch(
        [
            msg("ann", 0, channel="600"),
            msg("bob", 10, channel="600"),  # same conversation: answers Ann after 10 min
            msg("ann", 12, channel="600"),
            msg("cid", 100, channel="600"),  # 88 min of silence: a new question
            msg("dan", 200, channel="600"),  # 100 min of silence: a new question, not Cid's answer
            msg("helpbot", 201, channel="600", bot=True),  # bots neither answer nor break the silence
            msg("eve", 215, channel="600"),  # answers Dan
        ]
    )


def test_flat_channel_heuristic_a_message_after_a_silence_is_a_new_question_not_an_answer(store: IngestStore) -> None:
    flat_channel(store)
    assert questions(store, HelpScope(channels=("600",))) == [
        ("Ann", "Bob", 10.0),
        ("Cid", None, None),
        ("Dan", "Eve", 15.0),
    ]
    # With two hours of quiet needed, Dan's message continues Cid's conversation and answers it.
    assert questions(store, HelpScope(channels=("600",)), QuestionRules(quiet_minutes=120)) == [
        ("Ann", "Bob", 10.0),
    ]


def test_an_answer_after_the_window_does_not_count(store: IngestStore) -> None:
    # Ann keeps the conversation going every 20 minutes; Bob only speaks 80 minutes after her question.
    store.write_batch(
        [msg("ann", m, channel="600") for m in (0, 20, 40, 60)] + [msg("bob", 80, channel="600")],
    )
    scope = HelpScope(channels=("600",))
    assert questions(store, scope, QuestionRules(answer_window_hours=1)) == [("Ann", None, None)]
    assert questions(store, scope, QuestionRules(answer_window_hours=2)) == [("Ann", "Bob", 80.0)]


def test_a_reply_to_the_asker_answers_even_after_a_silence_and_is_no_question(store: IngestStore) -> None:
    tg = Platform.TELEGRAM
    store.write_batch(
        [
            msg("ann", 0, channel="-100777", platform=tg),
            msg("bob", 300, channel="-100777", reply_to="ann", platform=tg),  # a reply names its target
            msg("ann", 301, channel="-100777", reply_to="ann", platform=tg),  # replying to oneself: no answer
            msg("cid", 600, channel="-100777", platform=tg),
            msg("dan", 605, channel="-100777", reply_to="eve", platform=tg),  # answers Eve, not Cid
        ]
    )
    assert questions(store, HelpScope(channels=("-100777",))) == [("Ann", "Bob", 300.0), ("Cid", None, None)]


def test_a_telegram_topic_is_a_help_channel_of_its_own(store: IngestStore) -> None:
    tg = Platform.TELEGRAM
    store.write_batch(
        [
            msg("ann", 0, channel="-100777", topic="5", platform=tg),
            msg("bob", 3, channel="-100777", topic="5", platform=tg),
            msg("cid", 0, channel="-100777", topic="9", platform=tg),  # another topic: not listed
        ]
    )
    assert questions(store, HelpScope(channels=("-100777#5",))) == [("Ann", "Bob", 3.0)]
    # The whole chat: each topic is its own place, so Cid's question is not answered by Bob.
    assert sorted(questions(store, HelpScope(channels=("-100777",)))) == [("Ann", "Bob", 3.0), ("Cid", None, None)]
    assert questions(store, HelpScope(channels=("-100777",), exclude=("-100777#9",))) == [("Ann", "Bob", 3.0)]


def test_an_answer_after_the_end_is_not_seen_and_unanswered_needs_the_limit(store: IngestStore) -> None:
    forum_post(store)
    assert questions(store, HelpScope(), end=T + timedelta(minutes=60)) == [("Ann", None, None)]
    with store.engine.connect() as conn:
        frame = help_messages(conn, store.community_id(COMMUNITY), HelpScope(), start=T, end=END, quiet_minutes=30)
    summary = questions_summary(
        frame, QuestionRules(), timezone=ZoneInfo("UTC"), first_week=date(2024, 3, 4), as_of=date(2024, 3, 4)
    )
    # As of the end of Monday: Cid has waited 13 hours (under the 24-hour limit), so nobody is unanswered yet.
    assert (summary.total.questions, summary.total.unanswered, summary.waiting) == (2, 0, ())
    # Both are over an hour old (neither answered within one); none is 24 hours old yet.
    assert (summary.total.answered_1h, summary.total.answered_24h) == (0.0, None)
    summary = questions_summary(
        frame, QuestionRules(), timezone=ZoneInfo("UTC"), first_week=date(2024, 3, 4), as_of=date(2024, 3, 5)
    )
    assert summary.total.unanswered == 1 and [w.asker for w in summary.waiting] == ["Cid"]
    assert (summary.total.answered_1h, summary.total.answered_24h) == (0.0, 0.5)
    assert summary.total.median_minutes == 90.0
    assert [(h.name, h.answers) for h in summary.helpers] == [("Bob", 1)]
    assert [(c.name, c.figures.questions) for c in summary.channels] == [
        ("500", 2)
    ]  # a forum is known by its threads' parent id


def test_a_ping_is_claimed_once(store: IngestStore) -> None:
    forum_post(store)
    with store.engine.connect() as conn:
        frame = help_messages(conn, store.community_id(COMMUNITY), HelpScope(), start=T, end=END, quiet_minutes=30)
    first = int(find_questions(frame, question_rules(HelpSettings()))["message_id"].iloc[0])
    cid = store.community_id(COMMUNITY)
    with store.engine.begin() as conn:
        assert claim_ping(conn, cid, first, at=END) is True
    with store.engine.begin() as conn:
        assert claim_ping(conn, cid, first, at=END) is False
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(QuestionPing)).scalar() == 1


def test_a_thread_started_from_a_help_message_makes_that_message_its_question(store: IngestStore) -> None:
    # Discord gives a thread started from a message the message's id: Ann's message 7001 in #700, answered by Bob
    # in thread 7001 after 50 minutes (a silence in the channel, but the thread is the conversation).
    store.write_batch(
        [
            MessageEvent(
                platform=Platform.DISCORD,
                community=COMMUNITY,
                message_id="7001",
                channel=ChannelRef("700", name="help"),
                author=MemberRef("ann", display_name="Ann"),
                occurred_at=T,
                length=20,
            ),
            msg("bob", 50, channel="7001", parent="700"),
            msg("ann", 55, channel="7001", parent="700"),
            msg("cid", 120, channel="700"),  # a new question in the channel itself
        ]
    )
    assert questions(store, HelpScope(channels=("700",))) == [("Ann", "Bob", 50.0), ("Cid", None, None)]


def test_every_case_agrees_with_the_duckdb_reference(store: IngestStore) -> None:
    """The structural cases the Komodo CSV lacks (forum posts, started threads, replies, topics), checked in SQL."""
    pytest.importorskip("duckdb", reason="the cross-check runs DuckDB (pip install duckdb)")
    from bench.analytics.compare import compare
    from bench.analytics.questions import ours, reference

    tg = Platform.TELEGRAM
    forum_post(store)
    flat_channel(store)
    store.write_batch(
        [
            msg("ann", 0, channel="-100777", platform=tg),
            msg("bob", 300, channel="-100777", reply_to="ann", platform=tg),
            msg("cid", 600, channel="-100777", platform=tg),
            msg("dan", 605, channel="-100777", reply_to="eve", platform=tg),
            msg("eve", 0, channel="-100777", topic="5", platform=tg),
            msg("fay", 3, channel="-100777", topic="5", platform=tg),
            msg("gus", 0, channel="-100777", topic="9", platform=tg),
            msg("ann", 2000, channel="600"),
            msg("bob", 2000 + 60 * 30, channel="600"),  # after the 24-hour window: not an answer but a new question
            MessageEvent(
                platform=Platform.DISCORD,
                community=COMMUNITY,
                message_id="7001",
                channel=ChannelRef("700", name="help"),
                author=MemberRef("ann", display_name="Ann"),
                occurred_at=T,
                length=20,
            ),
            msg("bob", 50, channel="7001", parent="700"),
            msg("cid", 120, channel="700"),
        ]
    )
    rules = QuestionRules()
    scope = HelpScope(channels=("600", "700", "-100777"), exclude=("-100777#9",))
    cid = store.community_id(COMMUNITY)
    tz = ZoneInfo("Europe/Berlin")
    with store.engine.connect() as conn:
        frame = help_messages(conn, cid, scope, start=T - timedelta(days=7), end=END, quiet_minutes=30)
    first, last = date(2024, 2, 26), date(2024, 3, 10)
    mine = ours(questions_summary(frame, rules, timezone=tz, first_week=first, as_of=last, top_n=1000))
    theirs = reference(
        store.engine,
        cid,
        channels=scope.channels,
        exclude=scope.exclude,
        quiet_minutes=30,
        answer_window_hours=24,
        unanswered_after_hours=24,
        timezone=tz,
        first_week=first,
        as_of=last,
    )
    assert compare(mine, theirs) == []
    assert mine["questions.total"][0] == 12 and len(mine["questions.channels"]) == 4
