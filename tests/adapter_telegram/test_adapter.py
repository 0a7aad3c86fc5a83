"""The Telegram adapter in-process: the real python-telegram-bot client against the fake Bot API.

Everything is observable the way a member or owner would notice it: what the bot sent where (the fake records
every call) and what ended up in the database.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from telegram import Bot

from bot.adapters.telegram.adapter import file_base_url
from bot.adapters.telegram.ratelimit import FloodGate, FloodLimits, Window
from bot.config import Secrets
from bot.core.markup import rich
from bot.core.payments import sign_payload
from bot.core.ports import AdapterStartError, DeliveryError
from bot.core.replies import Attachment, Button, OutgoingMessage, Reply
from storage.engine import make_engine
from tests.adapter_telegram.conftest import PRICE, SECRET, running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def to(chat_id: int) -> Any:
    return lambda call: int(call.params.get("chat_id", 0)) == chat_id


def texts(fake: FakeBotApi, chat_id: int) -> list[str]:
    return [str(c.params["text"]) for c in fake.calls_to("sendMessage") if int(c.params["chat_id"]) == chat_id]


def payload_for(user_id: int, amount: int = PRICE, course: str = "py-async") -> str:
    return sign_payload(SECRET, course, str(user_id), amount)


# --- start-up ------------------------------------------------------------------------------------------------


def test_file_url_follows_the_api_url() -> None:
    assert file_base_url("https://api.telegram.org/bot") == "https://api.telegram.org/file/bot"
    assert file_base_url("http://127.0.0.1:8081/bot/") == "http://127.0.0.1:8081/file/bot"


async def test_start_sets_the_command_menu_and_opts_in_to_reactions_and_members(
    fake: FakeBotApi, db_path: Path
) -> None:
    async with running(fake, db_path) as h:
        await h.fake.wait_for("getUpdates")
        menus = {
            c.params["scope"]["type"]: [x["command"] for x in c.params["commands"]]
            for c in fake.calls_to("setMyCommands")
        }
        assert "report" not in menus["default"] and "stats" in menus["default"]
        assert {"report", "grant", "refund", "stats"} <= set(menus["all_chat_administrators"])
        assert "report" in menus["chat"]  # the owner's private chat
        allowed = fake.calls_to("getUpdates")[0].params["allowed_updates"]
        assert {"message", "message_reaction", "chat_member", "pre_checkout_query", "callback_query"} <= set(allowed)
        # The opt-in works end to end: a reaction is delivered and stored.
        await h.deliver(p.group_message(p.BOB, "question", message_id=501))
        await h.deliver(p.reaction(p.ALICE, 501))
        await h.eventually(lambda: h.count("select count(*) from reactions") == 1, "the reaction is stored")
        assert fake.dropped == []


async def test_a_refused_token_stops_start_with_what_to_fix(fake: FakeBotApi, db_path: Path) -> None:
    wrong = Secrets(telegram_token="987654321:AAWrongTokenWrongTokenWrongToken_xyz", signing_secret=SECRET)
    with pytest.raises(AdapterStartError, match="COHORTBOT_TELEGRAM_TOKEN"):
        async with running(fake, db_path, secrets=wrong):
            pass


async def test_a_busy_webhook_port_stops_start_cleanly(
    fake: FakeBotApi, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTBOT_TELEGRAM_WEBHOOK_SECRET", "s3cret-token")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(AdapterStartError, match="webhook_listen"):
            async with running(
                fake, db_path, mode="webhook", webhook_listen=f"127.0.0.1:{port}", webhook_url="https://x.org/tg"
            ):
                pass


async def test_health_check_tells_the_owner_what_to_change(fake: FakeBotApi, db_path: Path) -> None:
    fake.statuses[(p.GROUP, fake.bot_id)] = "member"  # added, but not an admin; privacy mode is on by default
    fake.admin_rights["can_invite_users"] = False  # admin in the course chat, without the invite right
    async with running(fake, db_path):
        (dm,) = await fake.wait_for("sendMessage", to(p.OWNER))
        text = dm.params["text"]
        assert f"Chat {p.GROUP}: I am not an administrator" in text
        assert "privacy mode" in text
        assert f"Course chat {p.COURSE_CHAT}" in text and "Invite Users via Link" in text


async def test_health_check_is_quiet_when_all_is_well(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        assert await h.adapter.check_health() == []
    assert texts(fake, p.OWNER) == []


# --- logging -------------------------------------------------------------------------------------------------


async def test_activity_is_logged_and_a_replay_is_stored_once(fake: FakeBotApi, db_path: Path) -> None:
    updates = [
        p.group_message(p.ALICE, "hi all", message_id=10) | {"update_id": 1},
        p.group_message(
            p.BOB,
            "see `x` at https://x.dev",
            message_id=11,
            reply_to=p.message(p.group(), p.ALICE, "hi", message_id=10),
        )
        | {"update_id": 2},
        p.reaction(p.BOB, 10) | {"update_id": 3},
        # One join, delivered twice by Telegram: as a chat_member update and as a service message a second later.
        p.chat_member(p.CAROL, "left", "member", date=p.T + 5) | {"update_id": 4},
        p.service_join(p.CAROL, date=p.T + 6) | {"update_id": 5},
        p.group_message(p.ALICE, "not ours", chat_id=-100999) | {"update_id": 6},
        p.private_message(p.ALICE, "hello bot") | {"update_id": 7},
        {"edited_message": p.message(p.group(), p.ALICE, "hi all (edited)", message_id=10)} | {"update_id": 8},
    ]

    def stored() -> tuple[int, int, int]:
        return (
            h.count("select count(*) from messages"),
            h.count("select count(*) from reactions"),
            h.count("select count(*) from membership_events where kind = 'join'"),
        )

    async with running(fake, db_path) as h:
        await h.deliver(*updates)
        await h.eventually(lambda: stored() == (2, 1, 1), "2 messages, 1 reaction, 1 join")
        assert h.count("select count(*) from messages where is_reply = 1 and has_code = 1 and has_link = 1") == 1
    # A restart that gets the same updates again (Telegram redelivers what was not confirmed).
    async with running(fake, db_path) as h:
        await h.deliver(*updates)
        await h.settle()
        assert stored() == (2, 1, 1)


async def test_stop_stores_every_update_the_bot_received(fake: FakeBotApi, db_path: Path) -> None:
    burst = [p.group_message(p.ALICE, f"message {i}", message_id=2000 + i) for i in range(60)]
    async with running(fake, db_path):
        ids = [await fake.add_update(u) for u in burst]
        await fake.wait_confirmed(ids[:1])
    # stop() has returned and the writer stopped: every update the bot confirmed to Telegram (which will never
    # send it again) is in the database, none is left in a queue.
    confirmed = fake.confirmed_ids & set(ids)
    assert confirmed
    engine = make_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        stored = {int(r[0]) for r in conn.execute(text("select platform_message_id from messages"))}
    engine.dispose()
    by_update = {update_id: 2000 + i for i, update_id in enumerate(ids)}
    assert {by_update[u] for u in confirmed} <= stored
    # What was not confirmed comes again after a restart.
    async with running(fake, db_path) as h:
        await fake.wait_confirmed(ids)
        await h.eventually(lambda: h.count("select count(*) from messages") == 60, "all 60 stored after restart")


# --- commands ------------------------------------------------------------------------------------------------


async def test_personal_answer_goes_by_dm_with_a_pointer_in_the_group(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.group_message(p.ALICE, "/stats@cohort_test_bot", message_id=300))
        (dm,) = await fake.wait_for("sendMessage", to(p.ALICE))
        (pointer,) = await fake.wait_for("sendMessage", to(p.GROUP))
        assert dm.params["parse_mode"] == "HTML"
        assert "privately" in pointer.params["text"]
        assert pointer.params["reply_parameters"]["message_id"] == 300
        await h.settle()
        assert h.count("select count(*) from messages") == 0  # talking to the bot is not community activity


async def test_member_who_never_started_the_bot_gets_a_start_link(fake: FakeBotApi, db_path: Path) -> None:
    fake.unreachable_users.add(p.ALICE)
    async with running(fake, db_path):
        await fake.add_update(p.group_message(p.ALICE, "/mydata"))
        (pointer,) = await fake.wait_for("sendMessage", to(p.GROUP))
        assert "https://t.me/cohort_test_bot?start=mydata" in pointer.params["text"]


async def test_deep_link_start_runs_the_command(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.group_message(p.ALICE, "hello everyone", message_id=301, date=int(time.time()) - 60))
        await h.settle()
        await fake.add_update(p.private_message(p.ALICE, "/start stats"))
        (dm,) = await fake.wait_for("sendMessage", to(p.ALICE))
        # Only /stats answers this: her own figures, with the message she just posted; not the /start welcome.
        assert "Your activity in PyCraft" in dm.params["text"]
        assert "Last 7 days: 1 message on 1 active day" in dm.params["text"]
        assert "activity bot of PyCraft" not in dm.params["text"]


async def test_start_with_an_unknown_parameter_just_starts(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path):
        await fake.add_update(p.private_message(p.ALICE, "/start promo2024"))
        (dm,) = await fake.wait_for("sendMessage", to(p.ALICE))
        assert "activity bot of PyCraft" in dm.params["text"]  # the welcome, as a plain /start
        assert "Usage" not in dm.params["text"] and "more than it expects" not in dm.params["text"]


async def test_anonymous_admin_is_asked_to_show_themselves(fake: FakeBotApi, db_path: Path) -> None:
    anonymous = p.message(p.group(), 1087968824, "/report", sender_chat=p.group())
    async with running(fake, db_path):
        await fake.add_update({"message": anonymous})
        (answer,) = await fake.wait_for("sendMessage", to(p.GROUP))
        assert "anonymous" in answer.params["text"]
        assert fake.calls_to("sendPhoto") == []


async def test_admin_commands_are_refused_to_members_and_answered_for_admins(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.group_message(p.BOB, "/report"))
        (refusal,) = await fake.wait_for("sendMessage", to(p.BOB))
        assert "only for the community's admins" in refusal.params["text"]
        await h.settle()
        assert fake.calls_to("sendPhoto") == []  # no report went anywhere
        # A chat administrator (Telegram says so) gets the report and its chart (privately: it names members).
        fake.statuses[(p.GROUP, p.CAROL)] = "administrator"
        await h.deliver(p.group_message(p.CAROL, "/report"))
        (photo,) = await fake.wait_for("sendPhoto", to(p.CAROL))
        assert photo.files["photo"][1].startswith(b"\x89PNG")
        # An owner in a private chat.
        await h.deliver(p.private_message(p.OWNER, "/report"))
        await fake.wait_for("sendPhoto", to(p.OWNER))


async def test_grant_as_a_reply_names_the_replied_member(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        bobs = p.message(p.group(), p.BOB, "I paid by bank transfer", message_id=400)
        await h.deliver({"message": bobs}, p.group_message(p.OWNER, "/grant py-async", reply_to=bobs))
        (invite,) = await fake.wait_for("createChatInviteLink")
        assert int(invite.params["chat_id"]) == p.COURSE_CHAT and invite.params["member_limit"] == 1
        await h.eventually(
            lambda: (
                h.count(
                    "select count(*) from purchases pu join members m on m.id = pu.member_id "
                    f"where m.platform_user_id = '{p.BOB}' and pu.source = 'grant'"
                )
                == 1
            ),
            "a grant recorded for Bob",
        )


async def test_courses_button_buys_with_a_stars_invoice(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.private_message(p.ALICE, "/courses"))
        (listing,) = await fake.wait_for("sendMessage", to(p.ALICE))
        buttons = [b for row in listing.params["reply_markup"]["inline_keyboard"] for b in row]
        assert buttons[0]["callback_data"] == "/buy py-async"
        await h.deliver(p.callback(p.ALICE, buttons[0]["callback_data"]))
        await fake.wait_for("answerCallbackQuery")
        (invoice,) = await fake.wait_for("sendInvoice", to(p.ALICE))
        assert invoice.params["currency"] == "XTR"
        assert invoice.params["prices"] == [{"label": "Async Python", "amount": PRICE}]
        assert invoice.params.get("provider_token", "") == ""
        assert invoice.params["payload"] == payload_for(p.ALICE)


async def test_buy_in_a_group_sends_the_invoice_privately(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path):
        await fake.add_update(p.group_message(p.ALICE, "/buy py-async"))
        await fake.wait_for("sendInvoice", to(p.ALICE))
        (pointer,) = await fake.wait_for("sendMessage", to(p.GROUP))
        assert "privately" in pointer.params["text"]
        assert not [c for c in fake.calls_to("sendInvoice") if int(c.params["chat_id"]) == p.GROUP]


# --- payments ------------------------------------------------------------------------------------------------


async def test_checkout_is_accepted_or_refused_with_a_reason(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path):
        await fake.add_update(p.pre_checkout(p.ALICE, payload_for(p.ALICE), PRICE, query_id="good"))
        await fake.add_update(p.pre_checkout(p.ALICE, payload_for(p.ALICE, amount=1), 1, query_id="cheap"))
        await fake.add_update(p.pre_checkout(p.ALICE, "c1:py-async:600001:50:forged", PRICE, query_id="forged"))
        answers = {c.params["pre_checkout_query_id"]: c for c in await fake.wait_for("answerPreCheckoutQuery", count=3)}
        assert answers["good"].params["ok"] is True
        assert answers["cheap"].params["ok"] is False and answers["cheap"].params["error_message"]
        assert answers["forged"].params["ok"] is False and "not valid" in answers["forged"].params["error_message"]


async def test_payment_is_committed_once_and_grants_once(fake: FakeBotApi, db_path: Path) -> None:
    payment = p.successful_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxONE") | {"update_id": 50}
    async with running(fake, db_path) as h:
        await h.deliver(payment)
        (invite,) = await fake.wait_for("createChatInviteLink")
        assert invite.params["member_limit"] == 1
        (receipt,) = await fake.wait_for("sendMessage", lambda c: "fakeInvite" in c.params.get("text", ""))
        assert int(receipt.params["chat_id"]) == p.ALICE
        assert h.count("select count(*) from purchases where charge_id = 'stxONE'") == 1
    async with running(fake, db_path) as h:  # Telegram delivers it again after a restart
        await h.deliver(payment)
        await h.settle()
        assert h.count("select count(*) from purchases where charge_id = 'stxONE'") == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1


async def test_refund_returns_stars_and_removes_access(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.successful_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxTWO"))
        await fake.wait_for("createChatInviteLink")
        await h.settle()
        await h.deliver(p.private_message(p.OWNER, f"/refund {p.ALICE} py-async"))
        (question,) = await fake.wait_for("sendMessage", lambda c: "Refund this payment?" in c.params["text"])
        (row,) = question.params["reply_markup"]["inline_keyboard"]
        await h.deliver(p.callback(p.OWNER, row[0]["callback_data"]))
        (refund,) = await fake.wait_for("refundStarPayment")
        assert refund.params == {"user_id": p.ALICE, "telegram_payment_charge_id": "stxTWO"}
        (ban,) = await fake.wait_for("banChatMember")
        (unban,) = await fake.wait_for("unbanChatMember")
        assert int(ban.params["chat_id"]) == p.COURSE_CHAT and unban.params["only_if_banned"] is True
        assert h.count("select count(*) from refunds") == 1
        # Telegram then reports the refund to the buyer's chat: already recorded, nothing happens twice.
        await h.deliver(p.refunded_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxTWO"))
        await h.settle()
        assert h.count("select count(*) from refunds") == 1
        assert len(fake.calls_to("banChatMember")) == 1


async def test_a_refund_telegram_reports_is_recorded(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await h.deliver(p.successful_payment(p.BOB, payload_for(p.BOB), PRICE, charge="stxTHREE"))
        await fake.wait_for("createChatInviteLink")
        await h.deliver(p.refunded_payment(p.BOB, payload_for(p.BOB), PRICE, charge="stxTHREE"))
        await fake.wait_for("banChatMember")
        await h.eventually(lambda: h.count("select count(*) from refunds") == 1, "the refund is recorded")


# --- sending -------------------------------------------------------------------------------------------------


async def test_send_waits_out_a_429_and_delivers(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        await fake.wait_for("getUpdates")
        fake.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1, match=to(p.GROUP))
        started = time.monotonic()
        await h.adapter.send(OutgoingMessage("telegram", str(p.GROUP), Reply(rich("Weekly digest"))))
        attempts = [c for c in fake.calls_to("sendMessage") if int(c.params["chat_id"]) == p.GROUP]
        assert len(attempts) == 2
        assert attempts[1].at - attempts[0].at >= 0.95
        assert time.monotonic() - started >= 0.95


async def test_send_to_a_member_who_blocked_the_bot_is_a_delivery_error(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        fake.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", match=to(p.BOB))
        with pytest.raises(DeliveryError) as caught:
            await h.adapter.send(OutgoingMessage("telegram", str(p.BOB), Reply(rich("We miss you")), direct=True))
        assert caught.value.unreachable_user


async def test_long_answers_are_split_and_files_and_buttons_rendered(fake: FakeBotApi, db_path: Path) -> None:
    reply = Reply(
        rich(*[f"line {i} <b>not bold</b>" for i in range(400)]),
        attachments=(Attachment("chart.png", PNG, "image/png"), Attachment("data.json", b"{}", "application/json")),
        buttons=(Button("Open", "url", "https://pycraft.dev"),),
    )
    async with running(fake, db_path) as h:
        await h.adapter.send(OutgoingMessage("telegram", str(p.GROUP), reply))
        parts = texts(fake, p.GROUP)
        assert len(parts) >= 3 and all(len(t) <= 4096 for t in parts)
        assert "&lt;b&gt;not bold&lt;/b&gt;" in parts[0]  # member-visible text is escaped, never markup
        (photo,) = fake.calls_to("sendPhoto")
        (document,) = fake.calls_to("sendDocument")
        assert document.files["document"][0] == "data.json"
        assert document.params["reply_markup"]["inline_keyboard"][0][0]["url"] == "https://pycraft.dev"
        assert photo.files["photo"][1] == PNG


class HandTime:
    """The flood gate's clock, moved only by the test, and its sleep, which records the wait and returns at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def hand_gate(limits: FloodLimits | None = None) -> tuple[FloodGate, HandTime]:
    time_ = HandTime()
    return FloodGate(limits, clock=time_.clock, sleep=time_.sleep), time_


async def test_flood_gate_spaces_sends_to_one_chat_but_not_across_chats() -> None:
    gate, hand = hand_gate(FloodLimits(per_chat=Window(2, 0.3), per_group=Window(100, 1), overall=Window(100, 1)))
    waits = await asyncio.gather(*(gate.acquire(p.ALICE) for _ in range(4)))
    # 2 sends fit in the window; the next 2 wait until the first 2 leave it, 0.3 s later.
    assert [round(w, 9) for w in waits] == [0.0, 0.0, 0.3, 0.3]
    hand.now += 1  # the chat's window is empty again
    waits = await asyncio.gather(*(gate.acquire(user) for user in range(1, 20)))
    assert waits == [0.0] * 19  # one send to each of 19 chats: no chat's limit is reached, nobody waits


async def test_flood_gate_keeps_to_the_overall_limit_across_chats() -> None:
    gate, hand = hand_gate(FloodLimits(per_chat=Window(3, 3), per_group=Window(20, 60), overall=Window(30, 1)))
    waits = await asyncio.gather(*(gate.acquire(user) for user in range(1, 33)))
    assert waits[:30] == [0.0] * 30
    assert [round(w, 9) for w in waits[30:]] == [1.0, 1.0]  # the 31st and 32nd wait for the second's window
    hand.now += 1.0  # they are sent; the next send falls in their window, which holds only 2
    assert await gate.acquire(33) == 0.0


async def test_flood_gate_holds_a_chat_after_a_429() -> None:
    gate, hand = hand_gate()
    gate.pause(p.GROUP, 0.3)
    assert await gate.acquire(p.ALICE) == 0.0  # other chats go on
    assert round(await gate.acquire(p.GROUP), 9) == 0.3
    assert [round(s, 9) for s in hand.sleeps] == [0.3]  # the only wait spent was the group's
    hand.now += 0.3
    gate.pause(None, 2)  # a 429 for the whole bot holds every chat
    assert await gate.acquire(p.BOB) == 2.0
    assert await gate.acquire(p.ALICE) == 2.0


# --- webhook mode --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_webhook_checks_the_secret_and_acknowledges_after_storing(
    fake: FakeBotApi, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COHORTBOT_TELEGRAM_WEBHOOK_SECRET", "s3cret-token")
    port = free_port()
    async with running(
        fake,
        db_path,
        mode="webhook",
        webhook_listen=f"127.0.0.1:{port}",
        webhook_url="https://bot.pycraft.dev/telegram",
    ) as h:
        (hook,) = await fake.wait_for("setWebhook")
        assert hook.params["url"] == "https://bot.pycraft.dev/telegram"
        assert hook.params["secret_token"] == "s3cret-token"
        assert "message_reaction" in hook.params["allowed_updates"]
        assert fake.calls_to("getUpdates") == []
        url = f"http://127.0.0.1:{port}/telegram"
        update = p.group_message(p.ALICE, "via webhook", message_id=900) | {"update_id": 77}
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 403
            assert h.count("select count(*) from messages") == 0
            headers = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 200
                # Acknowledged means stored: no waiting for the writer.
                assert h.count("select count(*) from messages") == 1
            payment = p.successful_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxHOOK") | {"update_id": 78}
            async with http.post(url, json=payment, headers=headers) as response:
                assert response.status == 200
                assert h.count("select count(*) from purchases where charge_id = 'stxHOOK'") == 1
            async with http.post(url, data=b"not json", headers=headers) as response:
                assert response.status == 400


async def test_owner_ids_are_admins_everywhere_and_admin_answers_are_cached(fake: FakeBotApi, db_path: Path) -> None:
    async with running(fake, db_path) as h:
        assert await h.adapter.is_admin(p.OWNER, None)
        assert not await h.adapter.is_admin(p.BOB, None)
        before = len(fake.calls_to("getChatMember"))
        assert not await h.adapter.is_admin(p.BOB, None)
        assert len(fake.calls_to("getChatMember")) == before  # cached


async def test_the_fake_drops_opt_in_updates_a_bot_did_not_ask_for(fake: FakeBotApi) -> None:
    # The fake is only worth testing against if it is as strict as Telegram.
    async with Bot(fake.token, base_url=fake.base_url) as bot:
        await fake.add_update(p.reaction(p.ALICE, 1))
        await fake.add_update(p.group_message(p.ALICE, "hi"))
        updates = await bot.get_updates(timeout=0, allowed_updates=["message"])
    assert [u.message is not None for u in updates] == [True]
    assert len(fake.dropped) == 1 and "message_reaction" in fake.dropped[0]
