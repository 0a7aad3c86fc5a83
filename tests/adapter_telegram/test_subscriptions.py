"""Monthly courses as Telegram Stars subscriptions, through the real python-telegram-bot client against the fake
Bot API: the subscription invoice link, the first payment and renewals (a renewal delivered twice extends once),
cancelling from /subscriptions, the reminder before renewal, removal from the course chat once access runs out and
the message saying how to come back; and the owners' sale alerts, which never reach a member."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.core.payments import sign_payload
from bot.core.subscriptions import run_subscriptions
from tests.adapter_telegram.conftest import SECRET, Harness, running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import Call, FakeBotApi

CLUB_PRICE = 250
ALERTS = -1009000000001
DAY = 86_400
EXTRA: dict[str, Any] = {
    "courses": [
        {
            "id": "club",
            "title": "Review club",
            "price_stars": CLUB_PRICE,
            "billing": "monthly",
            "telegram_chat_id": p.COURSE_CHAT,
        }
    ],
    "sales": {"alert_chat": ALERTS, "renewal_reminder_days": 3},
}


def club_payload(user_id: int) -> str:
    return sign_payload(SECRET, "club", str(user_id), CLUB_PRICE)


def to(chat_id: int, containing: str = "") -> Any:
    return lambda call: int(call.params.get("chat_id", 0)) == chat_id and containing in call.params.get("text", "")


def texts_to(fake: FakeBotApi, chat_id: int) -> list[str]:
    return [str(c.params["text"]) for c in fake.calls_to("sendMessage") if to(chat_id)(c)]


def payment(
    charge: str, expires: int, *, first: bool = False, update_id: int | None = None, date: int | None = None
) -> dict[str, Any]:
    paid_at = date if date is not None else int(time.time())
    update = p.subscription_payment(
        p.ALICE, club_payload(p.ALICE), CLUB_PRICE, charge=charge, expires=expires, first=first, date=paid_at
    )
    return update | ({"update_id": update_id} if update_id is not None else {})


def button(call: Call) -> dict[str, Any]:
    (row,) = call.params["reply_markup"]["inline_keyboard"]
    return dict(row[0])


async def subscribe(h: Harness, fake: FakeBotApi, expires: int) -> None:
    await h.deliver(payment("stxSUB1", expires, first=True))
    await fake.wait_for("createChatInviteLink")
    await fake.wait_for("sendMessage", to(p.ALICE, "You are subscribed"))


async def test_buy_sends_a_subscription_link_and_each_renewal_extends_access_once(
    fake: FakeBotApi, db_path: Path
) -> None:
    now = int(time.time())
    async with running(fake, db_path, extra=EXTRA) as h:
        await h.deliver(p.private_message(p.ALICE, "/buy club"))
        (link,) = await fake.wait_for("createInvoiceLink")
        assert link.params["subscription_period"] == 2592000
        assert link.params["currency"] == "XTR" and link.params["prices"][0]["amount"] == CLUB_PRICE
        assert fake.calls_to("sendInvoice") == []  # Telegram has subscriptions only as invoice links
        (offer,) = await fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params and to(p.ALICE)(c))
        assert button(offer)["url"].startswith("https://t.me/$")
        await h.deliver(p.pre_checkout(p.ALICE, link.params["payload"], CLUB_PRICE))
        (answer,) = await fake.wait_for("answerPreCheckoutQuery")
        assert answer.params["ok"] is True

        await subscribe(h, fake, now + 30 * DAY)
        (sale,) = await fake.wait_for("sendMessage", to(ALERTS, "Sale"))
        assert "Review club" in sale.params["text"] and "250 Stars" in sale.params["text"]
        assert f"telegram user {p.ALICE}" in sale.params["text"]

        renewal = payment("stxSUB2", now + 60 * DAY, update_id=901)
        await h.deliver(renewal)
        (renewed,) = await fake.wait_for("sendMessage", to(p.ALICE, "is renewed until"))
        await h.deliver(renewal)  # Telegram delivers it again
        await fake.wait_for("sendMessage", to(ALERTS, "Renewal"))
        await h.settle()
        assert len(fake.calls_to("createChatInviteLink")) == 1  # still in the chat: no second invite
        assert len([t for t in texts_to(fake, p.ALICE) if "renewed" in t]) == 1
        assert len([t for t in texts_to(fake, ALERTS) if "Renewal" in t]) == 1
        assert fake.calls_to("refundStarPayment") == []  # a renewal is not a second purchase
        assert h.count("select count(*) from purchases") == 2
        assert h.count("select count(*) from subscriptions") == 1
        assert h.count("select count(*) from subscription_periods") == 2
        until = datetime.fromtimestamp(now + 60 * DAY, UTC)
        assert f"{until.day} {until:%b %Y}" in renewed.params["text"]
        # The owners' alerts went to the alert chat only; Alice saw her receipts, never an alert line.
        assert not any("Sale:" in t or "Renewal:" in t for t in texts_to(fake, p.ALICE))


async def test_a_member_cancels_from_subscriptions_and_keeps_access_until_the_period_ends(
    fake: FakeBotApi, db_path: Path
) -> None:
    fake.star_subscriptions[(p.ALICE, "stxSUB1")] = "active"
    async with running(fake, db_path, extra=EXTRA) as h:
        await subscribe(h, fake, int(time.time()) + 30 * DAY)
        await h.deliver(p.private_message(p.ALICE, "/subscriptions"))
        (listing,) = await fake.wait_for("sendMessage", to(p.ALICE, "Your subscriptions"))
        assert "renews on" in listing.params["text"]
        assert button(listing)["callback_data"] == "/subscriptions cancel club"

        await h.deliver(p.callback(p.ALICE, "/subscriptions cancel club"))
        (edit,) = await fake.wait_for("editUserStarSubscription")
        assert edit.params["telegram_payment_charge_id"] == "stxSUB1" and edit.params["is_canceled"] is True
        assert fake.star_subscriptions[(p.ALICE, "stxSUB1")] == "canceled"
        (done,) = await fake.wait_for("sendMessage", to(p.ALICE, "is cancelled"))
        assert "Your access lasts until" in done.params["text"]
        await fake.wait_for("sendMessage", to(ALERTS, "Cancellation"))
        assert h.count("select count(*) from subscriptions where cancelled_at is not null") == 1
        assert fake.calls_to("banChatMember") == []  # access stays until the paid period ends

        await h.deliver(p.private_message(p.ALICE, "/subscriptions resume club"))
        await fake.wait_for("sendMessage", to(p.ALICE, "is running again"))
        assert fake.star_subscriptions[(p.ALICE, "stxSUB1")] == "active"


async def test_reminder_once_then_removal_once_and_one_message_saying_how_to_come_back(
    fake: FakeBotApi, db_path: Path
) -> None:
    expires = int(time.time()) + 30 * DAY
    async with running(fake, db_path, extra=EXTRA) as h:
        await subscribe(h, fake, expires)
        await h.settle()
        community_id = h.adapter.deps.dispatcher.community_id
        adapters = {"telegram": h.adapter}
        end = datetime.fromtimestamp(expires, UTC)
        for _ in range(2):  # two runs (or two processes) two days before the end: one reminder
            run = await run_subscriptions(
                h.engine, h.settings, community_id, adapters, now=end - timedelta(days=2), alerts=None
            )
        assert len([t for t in texts_to(fake, p.ALICE) if "renews on" in t]) == 1
        assert run.reminded == 0
        assert fake.calls_to("banChatMember") == []

        for _ in range(2):  # the period ran out without a renewal
            await run_subscriptions(
                h.engine,
                h.settings,
                community_id,
                adapters,
                now=end + timedelta(minutes=5),
                alerts=h.adapter.deps.dispatcher.alerts,
            )
        (ban,) = fake.calls_to("banChatMember")
        (unban,) = fake.calls_to("unbanChatMember")
        assert int(ban.params["chat_id"]) == p.COURSE_CHAT and int(ban.params["user_id"]) == p.ALICE
        assert unban.params["only_if_banned"] is True  # so Alice may rejoin when she subscribes again
        (comeback,) = [t for t in texts_to(fake, p.ALICE) if "has ended" in t]
        assert "/buy club" in comeback
        assert len([t for t in texts_to(fake, ALERTS) if "Access ended" in t]) == 1
        assert h.count("select count(*) from subscriptions where ended_at is not null") == 1

        # She pays again: a new invite, and access until the new end.
        await h.deliver(payment("stxSUB9", expires + 40 * DAY, first=True, update_id=950))
        await fake.wait_for("createChatInviteLink", count=2)
        assert h.count("select count(*) from subscriptions where ended_at is null") == 1


async def test_a_refunded_subscription_payment_ends_access_and_stops_the_renewals(
    fake: FakeBotApi, db_path: Path
) -> None:
    fake.star_subscriptions[(p.ALICE, "stxSUB1")] = "active"
    expires = int(time.time()) + 30 * DAY
    async with running(fake, db_path, extra=EXTRA) as h:
        await subscribe(h, fake, expires)
        refund = p.refunded_payment(p.ALICE, club_payload(p.ALICE), CLUB_PRICE, charge="stxSUB1", date=int(time.time()))
        await h.deliver(refund)
        (edit,) = await fake.wait_for("editUserStarSubscription")
        assert edit.params["is_canceled"] is True  # no charge next month for access she no longer has
        (ban,) = await fake.wait_for("banChatMember")
        assert int(ban.params["user_id"]) == p.ALICE
        await fake.wait_for("sendMessage", to(ALERTS, "Refund"))
        await h.deliver(refund | {"update_id": 990})  # reported again: nothing more
        await h.settle()
        assert len(fake.calls_to("editUserStarSubscription")) == 1 and len(fake.calls_to("banChatMember")) == 1
        assert h.count("select count(*) from subscriptions where cancelled_at is not null") == 1
        assert len([t for t in texts_to(fake, ALERTS) if "Refund" in t]) == 1

        # Had Telegram charged her anyway a month later, she would be let back in, not silently kept out.
        await h.deliver(payment("stxSUB2", expires + 30 * DAY, update_id=991, date=expires))
        await fake.wait_for("createChatInviteLink", count=2)


async def test_a_one_time_sale_whose_invite_fails_is_announced_with_the_failure_and_the_buyer_sees_no_alert(
    fake: FakeBotApi, db_path: Path
) -> None:
    one_time = {
        "courses": [{"id": "py-async", "title": "Async Python", "price_stars": 50, "telegram_chat_id": p.COURSE_CHAT}],
        "sales": {"alert_chat": ALERTS},
    }
    fake.fail("createChatInviteLink", 400, "Bad Request: not enough rights to manage chat invite links")
    paid = p.successful_payment(p.ALICE, sign_payload(SECRET, "py-async", str(p.ALICE), 50), 50, charge="stxONE")
    async with running(fake, db_path, extra=one_time) as h:
        await h.deliver(paid)
        (failed,) = await fake.wait_for("sendMessage", to(ALERTS, "Access failed"))
        assert "Async Python" in failed.params["text"] and "Invite Users via Link" in failed.params["text"]
        (sale,) = await fake.wait_for("sendMessage", to(ALERTS, "Sale"))
        assert "50 Stars" in sale.params["text"]
        await fake.wait_for("sendMessage", to(p.ALICE, "admins have been told"))
        await h.settle()
        assert not any("Access failed" in t or "Sale:" in t for t in texts_to(fake, p.ALICE))
