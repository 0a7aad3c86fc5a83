"""Surveys on Telegram, end to end against the fake Bot API with the real python-telegram-bot client: the NPS
question with 0–10 buttons, a score tap and a written comment, a native non-anonymous poll and its votes, survey DMs
to a course's buyers within the DM budget and opt-outs, and /mydata and /forget covering answers and comments."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.scheduler import Scheduler
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource
from tests.adapter_telegram.conftest import Harness, running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import Call, FakeBotApi
from tests.helpers.fake_actions import FakeClock


def _to(chat: int) -> Any:
    return lambda c: int(c.params["chat_id"]) == chat


def _buttons(call: Call) -> list[list[tuple[str, str]]]:
    markup = call.params["reply_markup"]
    return [[(b["text"], b["callback_data"]) for b in row] for row in markup["inline_keyboard"]]


def _answers(h: Harness) -> list[tuple[str, int | None, int | None, str | None]]:
    with h.engine.connect() as conn:
        rows = conn.execute(
            text(
                "select m.platform_user_id, r.score, r.option, r.comment from survey_responses r "
                "join members m on m.id = r.member_id order by m.platform_user_id"
            )
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_nps_in_the_group_buttons_comment_mydata_and_forget(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.group_message(p.ALICE, "/survey nps"))
        refusal = await fake.wait_for("sendMessage", _to(p.ALICE))
        assert "only for the community's admins" in refusal[0].params["text"]

        await h.deliver(p.group_message(p.OWNER, "/survey nps"))
        posted = await fake.wait_for("sendMessage", lambda c: "How likely" in c.params["text"])
        call = posted[0]
        assert int(call.params["chat_id"]) == p.GROUP
        assert "How likely are you to recommend PyCraft to a friend?" in call.params["text"]
        rows = _buttons(call)
        assert [len(r) for r in rows] == [6, 5]  # 0–5 and 6–10
        labels = [label for row in rows for label, _ in row]
        assert labels == [str(n) for n in range(11)]
        eight = dict(pair for row in rows for pair in row)["8"]
        await fake.wait_for("sendMessage", lambda c: "Posted NPS question" in c.params["text"])

        await h.deliver(p.callback(p.ALICE, eight, chat=p.group(), query_id="q1"))
        thanks = await fake.wait_for("sendMessage", lambda c: "your score 8 is saved" in c.params["text"])
        assert int(thanks[0].params["chat_id"]) == p.ALICE  # privately, never in the group
        assert "stored only because you write it" in thanks[0].params["text"]
        await h.deliver(p.private_message(p.ALICE, f"{eight} The mentors answer fast"))
        await fake.wait_for("sendMessage", lambda c: "your comment are saved" in c.params["text"])
        # Bob changes his mind: one answer, the last score.
        await h.deliver(p.callback(p.BOB, eight.rsplit(" ", 1)[0] + " 3", chat=p.group(), query_id="q2"))
        await fake.wait_for("sendMessage", lambda c: "your score 3 is saved" in c.params["text"])
        await h.deliver(p.callback(p.BOB, eight.rsplit(" ", 1)[0] + " 10", chat=p.group(), query_id="q3"))
        await fake.wait_for("sendMessage", lambda c: "your score 10 is saved" in c.params["text"])
        assert _answers(h) == [
            (str(p.ALICE), 8, None, "The mentors answer fast"),
            (str(p.BOB), 10, None, None),
        ]

        await h.deliver(p.private_message(p.ALICE, "/mydata"))
        document = (await fake.wait_for("sendDocument", _to(p.ALICE)))[0]
        export = json.loads(next(iter(document.files.values()))[1])
        rows_out = export["tables"]["survey_responses"]["rows"]
        assert [(r["score"], r["comment"]) for r in rows_out] == [(8, "The mentors answer fast")]

        await h.deliver(p.private_message(p.ALICE, "/forget"))
        ask = await fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params and "forget" in str(c.params))
        confirm = _buttons(ask[-1])[0][0][1]
        await h.deliver(p.callback(p.ALICE, confirm, query_id="q4"))
        await h.eventually(lambda: len(_answers(h)) == 1, "Alice's answer deleted")
        assert _answers(h) == [(str(p.BOB), 10, None, None)]
        assert h.count("select count(*) from survey_responses where comment is not null") == 0


async def test_native_poll_votes_are_attributed_changed_and_withdrawn(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.group_message(p.OWNER, '/survey poll "Next workshop?" "asyncio" "typing" "packaging"'))
        sent = (await fake.wait_for("sendPoll"))[0]
        assert sent.params["is_anonymous"] in (False, "false", "False")  # votes name their members
        assert int(sent.params["chat_id"]) == p.GROUP
        poll_id = next(iter(fake.polls))
        assert [o["text"] for o in fake.polls[poll_id]["options"]] == ["asyncio", "typing", "packaging"]
        await fake.wait_for("sendMessage", lambda c: "Posted poll" in c.params["text"])

        await h.deliver(p.poll_answer(poll_id, p.ALICE, [1]), p.poll_answer(poll_id, p.BOB, [2]))
        await h.deliver(p.poll_answer(poll_id, p.ALICE, [0]))  # changed vote
        await h.deliver(p.poll_answer(poll_id, p.BOB, [2]))  # a redelivery stores nothing twice
        assert _answers(h) == [(str(p.ALICE), None, 0, None), (str(p.BOB), None, 2, None)]
        await h.deliver(p.poll_answer(poll_id, p.BOB, []))  # withdrawn in the app
        assert _answers(h) == [(str(p.ALICE), None, 0, None)]
        await h.deliver(p.poll_answer("someone-elses-poll", p.CAROL, [0]))
        assert len(_answers(h)) == 1

        await h.deliver(p.group_message(p.OWNER, '/survey poll "Only one answer?" "yes"'))
        usage = await fake.wait_for("sendMessage", lambda c: "2 to 10 answers" in c.params["text"])
        assert int(usage[0].params["chat_id"]) == p.OWNER
        assert len(fake.calls_to("sendPoll")) == 1


def _purchase(user: int, charge: str) -> PurchaseEvent:
    return PurchaseEvent(
        platform=Platform.TELEGRAM,
        community="PyCraft",
        charge_id=charge,
        member=MemberRef(str(user)),
        course_id="py-async",
        amount=50,
        currency="XTR",
        occurred_at=datetime(2026, 11, 1, 12, tzinfo=UTC),
        source=PurchaseSource.TELEGRAM_STARS,
    )


async def test_buyers_are_asked_privately_within_the_dm_budget_and_opt_outs(fake: FakeBotApi, db_path: Path) -> None:
    nudges = {"max_per_day": 2, "max_per_minute": 60, "quiet_hours": "22:00-08:00"}
    async with running(fake, db_path, extra={"nudges": nudges}) as h:
        for user, charge in ((p.ALICE, "c1"), (p.BOB, "c2"), (p.CAROL, "c3"), (p.OWNER, "c4")):
            await h.writer.record_purchase(_purchase(user, charge))
        await h.deliver(p.private_message(p.CAROL, "/nudges off"))
        await fake.wait_for("sendMessage", _to(p.CAROL))
        await h.deliver(p.private_message(p.OWNER, "/survey nps py-async"))
        queued = await fake.wait_for("sendMessage", lambda c: "queued for" in c.params["text"])
        assert "queued for 3 of its 4 buyers" in queued[0].params["text"]

        async def no_wait(_: float) -> None:
            return None

        clock = FakeClock(datetime(2026, 12, 5, 23, 30, tzinfo=UTC))  # quiet hours
        sched = Scheduler(
            settings=h.settings,
            engine=h.engine,
            clock=clock,
            adapters=[h.adapter],
            community_id=lambda: h.adapter.deps.dispatcher.community_id,
            sleep=no_wait,
        )
        before = len(fake.calls_to("sendMessage"))
        result = await sched.run("surveys")
        assert result.outcome == "skipped" and len(fake.calls_to("sendMessage")) == before
        clock.current = datetime(2026, 12, 6, 10, tzinfo=UTC)
        result = await sched.run("surveys")
        assert "sent 2" in result.detail and "left for later 1" in result.detail
        asked = [c for c in fake.calls_to("sendMessage") if "recommend Async Python" in c.params["text"]]
        assert len(asked) == 2 and p.CAROL not in {int(c.params["chat_id"]) for c in asked}
        assert all(len(_buttons(c)) == 2 for c in asked)
        result = await sched.run("surveys")  # the day's budget is spent
        assert "sent 0" in result.detail
        clock.current = datetime(2026, 12, 7, 10, tzinfo=UTC)
        result = await sched.run("surveys")
        assert "sent 1" in result.detail
        asked = [c for c in fake.calls_to("sendMessage") if "recommend Async Python" in c.params["text"]]
        assert sorted(int(c.params["chat_id"]) for c in asked) == sorted([p.ALICE, p.BOB, p.OWNER])
        result = await sched.run("surveys")  # everyone was asked once
        assert "sent 0" in result.detail and "left for later 0" in result.detail


async def test_the_after_purchase_question_goes_once_when_due(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path, extra={"surveys": {"after_purchase_days": 14}}) as h:
        await h.writer.record_purchase(_purchase(p.ALICE, "late"))  # bought on 1 November, 12:00 UTC

        async def no_wait(_: float) -> None:
            return None

        clock = FakeClock(datetime(2026, 11, 15, 11, tzinfo=UTC))  # 13 days 23 hours later: not yet
        sched = Scheduler(
            settings=h.settings,
            engine=h.engine,
            clock=clock,
            adapters=[h.adapter],
            community_id=lambda: h.adapter.deps.dispatcher.community_id,
            sleep=no_wait,
        )
        result = await sched.run("surveys")
        assert "0 newly queued" in result.detail

        def asked() -> list[Call]:
            return [c for c in fake.calls_to("sendMessage") if "recommend Async Python" in c.params["text"]]

        assert asked() == []
        clock.current = datetime(2026, 11, 15, 13, tzinfo=UTC)
        result = await sched.run("surveys")
        assert "1 newly queued, sent 1" in result.detail
        [dm] = asked()
        assert int(dm.params["chat_id"]) == p.ALICE
        press = _buttons(dm)[1][-1][1]  # "10"
        await h.deliver(p.callback(p.ALICE, press, query_id="after"))
        await fake.wait_for("sendMessage", lambda c: "your score 10 is saved" in c.params["text"])
        clock.current = datetime(2026, 11, 16, 13, tzinfo=UTC)
        result = await sched.run("surveys")  # asked once, however often the job runs
        assert "0 newly queued, sent 0" in result.detail and len(asked()) == 1
        with h.engine.connect() as conn:
            origin = conn.execute(
                text("select s.origin, c.course_key from surveys s join courses c on c.id = s.course_id")
            )
            assert origin.all() == [("after_purchase", "py-async")]
        assert _answers(h) == [(str(p.ALICE), 10, None, None)]


async def test_survey_commands_say_what_is_wrong(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.private_message(p.OWNER, "/survey nps"))
        await fake.wait_for(
            "sendMessage", lambda c: "in the community channel where it should be posted" in c.params["text"]
        )
        await h.deliver(p.private_message(p.OWNER, "/survey nps no-such-course"))
        await fake.wait_for("sendMessage", lambda c: "There is no course 'no-such-course'" in c.params["text"])
        await h.deliver(p.private_message(p.ALICE, "/nps 99 7"))
        await fake.wait_for("sendMessage", lambda c: "There is no satisfaction question #99" in c.params["text"])
        assert h.count("select count(*) from surveys") == 0 and h.count("select count(*) from survey_responses") == 0
