"""Surveys on Discord, end to end against the fake Discord with the real discord.py client: the NPS question posted
with 0–10 buttons, a score press answered ephemerally, a comment through /nps, a native poll whose
MESSAGE_POLL_VOTE_ADD / _REMOVE gateway events are stored per member, survey DMs refused by a member, and /forget."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.scheduler import Scheduler
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource
from tests.fakes.discord_api import Call
from tests.helpers.fake_actions import FakeClock
from tests.helpers.sqlite_lock import write_locked

from .conftest import ANN_ID, BOB_ID, CARA_ID, HarnessFactory
from .test_adapter import EPHEMERAL, body, sent_message

POSTS = r"/channels/\d+/messages"


def answers(h: Any) -> list[tuple[Any, ...]]:
    return h.rows(
        "SELECT m.platform_user_id, r.score, r.option, r.comment FROM survey_responses r "
        "JOIN members m ON m.id = r.member_id ORDER BY m.platform_user_id"
    )


def posted_message(h: Any, call: Call, message_id: str) -> dict[str, Any]:
    """The bot's posted message as Discord attaches it to a press on one of its buttons."""
    data = call.json or {}
    return {
        "id": message_id,
        "channel_id": h.fake.guild().channel_id,
        "type": 0,
        "content": data.get("content", ""),
        "author": h.fake.bot["user"],
        "timestamp": "2026-12-05T10:00:00+00:00",
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "flags": 0,
        "components": data.get("components", []),
    }


async def test_nps_buttons_comment_and_forget(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    refused = await h.fake.slash(ANN_ID, "survey", {"kind": "nps"})
    [answer] = await h.fake.wait_responses(refused)
    assert "only for the community's admins" in body(answer)["content"]

    token = await h.fake.slash(BOB_ID, "survey", {"kind": "nps"})  # Bob has the admin role
    [ack] = await h.fake.wait_responses(token)
    assert body(ack)["flags"] & EPHEMERAL and "Posted NPS question #1" in body(ack)["content"]
    [post] = await h.fake.wait_for_call("POST", POSTS)
    assert "How likely are you to recommend PyCraft to a friend?" in (post.json or {})["content"]
    buttons = [b for row in (post.json or {})["components"] for b in row["components"]]
    assert [b["label"] for b in buttons] == [str(n) for n in range(11)]
    by_label = {b["label"]: b["custom_id"] for b in buttons}
    assert by_label["9"] == "cmd:/nps 1 9"

    press = await h.fake.press(ANN_ID, posted_message(h, post, "990001"), by_label["9"])
    [thanks] = await h.fake.wait_responses(press)
    assert body(thanks)["flags"] & EPHEMERAL and "your score 9 is saved" in body(thanks)["content"]
    token = await h.fake.slash(ANN_ID, "nps", {"survey": "1", "score": "9", "comment": "Great reviews"})
    await h.fake.wait_responses(token)
    press = await h.fake.press(CARA_ID, posted_message(h, post, "990001"), by_label["4"])
    await h.fake.wait_responses(press)
    bad = await h.fake.slash(CARA_ID, "nps", {"survey": "1", "score": "11"})
    [usage] = await h.fake.wait_responses(bad)
    assert "from 0 to 10" in body(usage)["content"]
    assert answers(h) == [(ANN_ID, 9, None, "Great reviews"), (CARA_ID, 4, None, None)]

    token = await h.fake.slash(ANN_ID, "mydata")
    [export] = await h.fake.wait_responses(token)
    [(_, data)] = export.files.items()
    assert b"Great reviews" in data

    token = await h.fake.slash(ANN_ID, "forget")
    [ask] = await h.fake.wait_responses(token)
    [button] = [b for row in body(ask)["components"] for b in row["components"]]
    press = await h.fake.press(ANN_ID, sent_message(h, ask), button["custom_id"])
    await h.fake.wait_responses(press)
    assert await h.eventually(lambda: answers(h) == [(CARA_ID, 4, None, None)])


async def test_native_poll_votes_arrive_as_gateway_events(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    token = await h.fake.slash(BOB_ID, "survey", {"kind": "poll", "details": '"Next workshop?" "asyncio" "typing"'})
    [ack] = await h.fake.wait_responses(token)
    assert "Posted poll #1" in body(ack)["content"]
    [post] = await h.fake.wait_for_call("POST", POSTS)
    poll = (post.json or {})["poll"]
    assert poll["question"]["text"] == "Next workshop?"
    assert [a["poll_media"]["text"] for a in poll["answers"]] == ["asyncio", "typing"]
    assert not poll["allow_multiselect"]
    [(message_id,)] = h.rows("SELECT poll_id FROM surveys")

    assert await h.fake.poll_vote(ANN_ID, message_id, 2)
    assert await h.fake.poll_vote(CARA_ID, message_id, 1)
    await h.fake.poll_vote(ANN_ID, message_id, 2, added=False)  # Ann changes her vote: remove, then vote again
    await h.fake.poll_vote(ANN_ID, message_id, 1)
    await h.fake.poll_vote(CARA_ID, message_id, 1, added=False)  # Cara withdraws hers
    await h.fake.poll_vote(BOB_ID, "123456789012345678", 1)  # not one of our polls
    assert await h.eventually(lambda: answers(h) == [(ANN_ID, None, 0, None)])

    token = await h.fake.slash(BOB_ID, "survey", {"kind": "poll", "details": '"Unclosed quote'})
    [usage] = await h.fake.wait_responses(token)
    assert "could not be read" in body(usage)["content"]
    assert len(h.fake.find("POST", POSTS)) == 1


async def test_a_buyer_who_refuses_dms_is_marked_and_not_counted(make_harness: HarnessFactory) -> None:
    h = await make_harness(sections={"nudges": {"quiet_hours": "00:00-00:00", "max_per_minute": 60}})
    for user, charge in ((ANN_ID, "e1"), (CARA_ID, "e2")):
        await h.writer.record_purchase(
            PurchaseEvent(
                platform=Platform.DISCORD,
                community="PyCraft",
                charge_id=charge,
                member=MemberRef(user),
                course_id="rust-intro",
                amount=350,
                currency="XTR",
                occurred_at=datetime(2026, 11, 1, tzinfo=UTC),
                source=PurchaseSource.TELEGRAM_STARS,
            )
        )
    token = await h.fake.slash(BOB_ID, "survey", {"kind": "nps", "details": "rust-intro"})
    [ack] = await h.fake.wait_responses(token)
    assert "queued for 2 of its 2 buyers" in body(ack)["content"]
    h.fake.inject_cannot_dm(times=1)

    async def no_wait(_: float) -> None:
        return None

    sched = Scheduler(
        settings=h.settings,
        engine=h.engine,
        clock=FakeClock(datetime(2026, 12, 5, 12, tzinfo=UTC)),
        adapters=[h.adapter],
        community_id=lambda: h.dispatcher.community_id,
        sleep=no_wait,
    )
    result = await sched.run("surveys")
    assert "sent 1" in result.detail and "failed 1" in result.detail
    asked = [c for c in h.fake.find("POST", POSTS) if "recommend Intro to Rust" in (c.json or {}).get("content", "")]
    assert len(asked) == 2  # one refused by Discord (50007), one delivered with its buttons
    assert len([b for row in (asked[-1].json or {})["components"] for b in row["components"]]) == 11
    [(unreachable,)] = h.rows("SELECT count(*) FROM members WHERE dm_unreachable_at IS NOT NULL")
    assert unreachable == 1
    result = await sched.run("surveys")  # nothing is sent twice
    assert "sent 0" in result.detail


async def test_a_vote_while_the_database_is_locked_is_stored_once_it_frees(
    make_harness: HarnessFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    h = await make_harness(busy_timeout_ms=100, retry_wait=0.2)
    token = await h.fake.slash(BOB_ID, "survey", {"kind": "poll", "details": '"Tabs or spaces?" "tabs" "spaces"'})
    await h.fake.wait_responses(token)
    [(message_id,)] = h.rows("SELECT poll_id FROM surveys")
    with write_locked(tmp_path / "bot.db"):
        await h.fake.poll_vote(ANN_ID, message_id, 2)  # Discord sends it once: it must not be dropped
        await h.fake.poll_vote(ANN_ID, message_id, 2, added=False)
        await h.fake.poll_vote(ANN_ID, message_id, 1)  # her final vote, after a change of mind
        await h.fake.wait_for(
            lambda: sum("database is locked); retrying" in r.getMessage() for r in caplog.records) >= 2
        )
    assert await h.eventually(lambda: answers(h) == [(ANN_ID, None, 0, None)])
