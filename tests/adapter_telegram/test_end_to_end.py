"""End to end: the real ``cohortbot run`` in a subprocess, talking to the fake Bot API over HTTP.

One community's day: members talk, react and join; a member checks their stats; another buys a course in Telegram
Stars and gets a one-time invite link; an owner refunds it; a member who is not an admin tries /report. Then the bot
is stopped with SIGTERM and restarted, Telegram delivers the same updates again, and nothing is stored twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from bot.core.payments import sign_payload
from storage.engine import make_engine
from tests.adapter_telegram.conftest import PRICE, SECRET
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import Call, FakeBotApi
from tests.helpers.cohortbot_process import Bot, run_cli, running_bot

pytestmark = pytest.mark.slow


def write_config(path: Path, base_url: str, db: Path) -> None:
    path.write_text(
        f"""
[community]
name = "PyCraft"
timezone = "UTC"

[storage]
url = "sqlite:///{db}"

[telegram]
enabled = true
chat_ids = [{p.GROUP}]
owner_ids = [{p.OWNER}]
api_base_url = "{base_url}"

[digest]
enabled = false

[[courses]]
id = "py-async"
title = "Async Python"
description = "Eight weeks of asyncio"
price_stars = {PRICE}
telegram_chat_id = {p.COURSE_CHAT}
""",
        encoding="utf-8",
    )


def secrets(token: str) -> dict[str, str]:
    return {"COHORTBOT_TELEGRAM_TOKEN": token, "COHORTBOT_SECRET": SECRET}


def cohortbot(config: Path, token: str) -> AbstractAsyncContextManager[Bot]:
    return running_bot(config, secrets(token))


async def db_upgrade(config: Path, token: str) -> None:
    code, err = await run_cli("db", "upgrade", "--config", str(config), secrets=secrets(token))
    assert code == 0, err


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


async def eventually(check: Callable[[], bool], what: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)


def to(chat_id: int) -> Callable[[Call], bool]:
    return lambda call: int(call.params.get("chat_id", 0)) == chat_id


async def test_a_day_in_the_community_through_cohortbot_run(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    async with FakeBotApi() as fake:
        write_config(config, fake.base_url, db)
        await db_upgrade(config, fake.token)
        engine = make_engine(f"sqlite:///{db}")
        now = int(time.time())  # /stats counts the last 7 and 30 days
        talk = [
            p.group_message(p.ALICE, "morning! anyone tried TaskGroup?", message_id=1, date=now) | {"update_id": 1},
            p.group_message(p.BOB, "yes: `async with asyncio.TaskGroup()`", message_id=2, date=now) | {"update_id": 2},
            p.reaction(p.ALICE, 2, new=("🔥",), date=now) | {"update_id": 3},
            p.chat_member(p.CAROL, "left", "member", date=now) | {"update_id": 4},
            p.service_join(p.CAROL, date=now + 1) | {"update_id": 5},
        ]
        async with cohortbot(config, fake.token) as bot:
            for update in talk:
                await fake.add_update(update)
            await eventually(
                lambda: (
                    (
                        count(engine, "select count(*) from messages"),
                        count(engine, "select count(*) from reactions"),
                        count(engine, "select count(*) from membership_events where kind = 'join'"),
                    )
                    == (2, 1, 1)
                ),
                "two messages, one reaction and one join stored",
            )

            # /stats in the group: the answer is personal, so it arrives by DM with a pointer in the group.
            await fake.add_update(p.group_message(p.ALICE, "/stats", message_id=3) | {"update_id": 6})
            (stats,) = await fake.wait_for("sendMessage", to(p.ALICE), within=20)
            assert "1 message" in stats.params["text"]
            await fake.wait_for("sendMessage", lambda c: to(p.GROUP)(c) and "privately" in c.params["text"])

            # Buying a course: /buy → Stars invoice → pre-checkout → payment → one-time invite link by DM.
            await fake.add_update(p.private_message(p.BOB, "/buy py-async") | {"update_id": 7})
            (invoice,) = await fake.wait_for("sendInvoice", to(p.BOB), within=20)
            assert invoice.params["currency"] == "XTR"
            assert invoice.params["prices"] == [{"label": "Async Python", "amount": PRICE}]
            payload = invoice.params["payload"]
            assert payload == sign_payload(SECRET, "py-async", str(p.BOB), PRICE)
            await fake.add_update(p.pre_checkout(p.BOB, payload, PRICE, query_id="q1") | {"update_id": 8})
            (answer,) = await fake.wait_for("answerPreCheckoutQuery")
            assert answer.params["ok"] is True
            payment = p.successful_payment(p.BOB, payload, PRICE, charge="stxE2E") | {"update_id": 9}
            await fake.add_update(payment)
            (invite,) = await fake.wait_for("createChatInviteLink")
            assert int(invite.params["chat_id"]) == p.COURSE_CHAT and invite.params["member_limit"] == 1
            (receipt,) = await fake.wait_for("sendMessage", lambda c: to(p.BOB)(c) and "fakeInvite" in c.params["text"])
            assert count(engine, "select count(*) from purchases where charge_id = 'stxE2E'") == 1

            # A member who is not an admin tries /report: a polite refusal, and no report goes anywhere.
            await fake.add_update(p.group_message(p.CAROL, "/report", message_id=4) | {"update_id": 10})
            (refusal,) = await fake.wait_for("sendMessage", to(p.CAROL))
            assert "only for the community's admins" in refusal.params["text"]

            # The owner refunds the purchase: Stars go back, the refund is recorded, access is removed.
            await fake.add_update(p.private_message(p.OWNER, f"/refund {p.BOB} py-async") | {"update_id": 11})
            (question,) = await fake.wait_for("sendMessage", lambda c: "Refund this payment?" in c.params["text"])
            (row,) = question.params["reply_markup"]["inline_keyboard"]
            await fake.add_update(p.callback(p.OWNER, row[0]["callback_data"]) | {"update_id": 12})
            (refund,) = await fake.wait_for("refundStarPayment", within=20)
            assert refund.params == {"user_id": p.BOB, "telegram_payment_charge_id": "stxE2E"}
            await fake.wait_for("banChatMember", to(p.COURSE_CHAT))
            await eventually(lambda: count(engine, "select count(*) from refunds") == 1, "the refund is recorded")
            await fake.wait_for("sendMessage", to(p.OWNER))
            assert fake.calls_to("sendPhoto") == []

            # Updates arriving right before SIGTERM: every one the bot received must be stored.
            burst = [
                p.group_message(p.ALICE, f"burst {i}", message_id=100 + i) | {"update_id": 100 + i} for i in range(40)
            ]
            for update in burst:
                await fake.add_update(update)
            await fake.wait_confirmed([100])  # the burst is arriving
            assert await bot.terminate() == 0
        # Every update the bot confirmed to Telegram (which never sends it again) is stored. Burst message ids
        # equal their update ids.
        confirmed = {u for u in fake.confirmed_ids if u >= 100}
        assert confirmed
        with engine.connect() as conn:
            stored = {int(r[0]) for r in conn.execute(text("select platform_message_id from messages"))}
        assert confirmed <= stored
        assert fake.token not in bot.log  # the token never reaches the log

        # Restart; Telegram delivers everything again (say the offset was lost). Nothing is stored twice and the
        # payment does not grant access a second time.
        fake.pending.clear()
        for update in [*talk, payment, *burst]:
            await fake.add_update(update)
        invites_before = len(fake.calls_to("createChatInviteLink"))
        async with cohortbot(config, fake.token) as bot:
            await fake.wait_confirmed([u["update_id"] for u in [*talk, payment, *burst]], within=30)
            await eventually(
                lambda: count(engine, "select count(*) from messages") == 2 + len(burst), "the burst is complete"
            )
            assert await bot.terminate() == 0
        assert count(engine, "select count(*) from messages") == 2 + len(burst)
        assert count(engine, "select count(*) from reactions") == 1
        assert count(engine, "select count(*) from membership_events where kind = 'join'") == 1
        assert count(engine, "select count(*) from purchases") == 1
        assert len(fake.calls_to("createChatInviteLink")) == invites_before
        assert receipt.params["text"].count("fakeInvite") == 1
        engine.dispose()


async def test_a_crash_loses_no_update_and_stores_none_twice(tmp_path: Path) -> None:
    db = tmp_path / "cohortbot.db"
    config = tmp_path / "cohortbot.toml"
    async with FakeBotApi() as fake:
        write_config(config, fake.base_url, db)
        await db_upgrade(config, fake.token)
        engine = make_engine(f"sqlite:///{db}")
        burst = [p.group_message(p.ALICE, f"msg {i}", message_id=500 + i) | {"update_id": 500 + i} for i in range(60)]
        async with cohortbot(config, fake.token) as bot:
            for update in burst[:30]:
                await fake.add_update(update)
            await fake.wait_confirmed([500])  # the bot is working through them...
            bot.process.kill()  # ...when the machine loses power: no SIGTERM, no flush
            await bot.process.wait()
        for update in burst[30:]:
            await fake.add_update(update)
        # Telegram still holds every update the bot had not confirmed; a confirmed one was stored before.
        async with cohortbot(config, fake.token) as bot:
            await fake.wait_confirmed([u["update_id"] for u in burst], within=30)
            await eventually(lambda: count(engine, "select count(*) from messages") == 60, "all 60 messages")
            assert await bot.terminate() == 0
        with engine.connect() as conn:
            ids = sorted(int(r[0]) for r in conn.execute(text("select platform_message_id from messages")))
        assert ids == [500 + i for i in range(60)]
        assert count(engine, "select sum(messages) from member_daily_activity") == 60  # counted once each
        engine.dispose()
