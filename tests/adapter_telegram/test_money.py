"""Money the bot gives back, through the real python-telegram-bot client against the fake Bot API.

A second payment for a course already owned, a payment by someone other than the invoice's member, a payment the
bot cannot match, and an admin's ``/refund`` with its confirmation button: what the members and owners see, what
Telegram is asked to refund, and what the ledger holds, also when Telegram delivers the same payment again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.payments import sign_payload
from tests.adapter_telegram.conftest import PRICE, SECRET, running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import Call, FakeBotApi


def payload_for(user_id: int, amount: int = PRICE) -> str:
    return sign_payload(SECRET, "py-async", str(user_id), amount)


def to(chat_id: int, containing: str = "") -> Any:
    return lambda call: int(call.params.get("chat_id", 0)) == chat_id and containing in call.params.get("text", "")


def button_data(call: Call) -> str:
    (row,) = call.params["reply_markup"]["inline_keyboard"]
    return str(row[0]["callback_data"])


async def test_a_second_payment_for_an_owned_course_is_refunded_once(fake: FakeBotApi, db_path: Path) -> None:
    # Alice checked out two invoices before paying either; both payments arrive.
    first = p.successful_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxFIRST")
    second = p.successful_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxSECOND") | {"update_id": 70}
    async with running(fake, db_path) as h:
        await h.deliver(first)
        await fake.wait_for("createChatInviteLink")
        await h.deliver(second)
        (refund,) = await fake.wait_for("refundStarPayment")
        assert refund.params == {"user_id": p.ALICE, "telegram_payment_charge_id": "stxSECOND"}
        (notice,) = await fake.wait_for("sendMessage", to(p.ALICE, "already own"))
        assert "so this payment of 50 Stars was refunded to you automatically" in notice.params["text"]
        await h.settle()
        assert h.count("select count(*) from purchases") == 2
        assert (
            h.count(
                "select count(*) from refunds r join purchases pu on pu.id = r.purchase_id "
                "where pu.charge_id = 'stxSECOND'"
            )
            == 1
        )
    async with running(fake, db_path) as h:  # redelivered after a restart, and Telegram's refund report
        await h.deliver(second, p.refunded_payment(p.ALICE, payload_for(p.ALICE), PRICE, charge="stxSECOND"))
        await h.settle()
        assert len(fake.calls_to("refundStarPayment")) == 1
        assert len([c for c in fake.calls_to("sendMessage") if "already own" in c.params["text"]]) == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1 and fake.calls_to("banChatMember") == []
        assert h.count("select count(*) from refunds") == 1


async def test_a_payment_by_someone_else_than_the_invoices_member_is_refused_and_refunded(
    fake: FakeBotApi, db_path: Path
) -> None:
    # Bob pays an invoice that was signed for Alice (forwarded to him).
    stolen = p.successful_payment(p.BOB, payload_for(p.ALICE), PRICE, charge="stxSTOLEN")
    async with running(fake, db_path) as h:
        await h.deliver(stolen)
        (refund,) = await fake.wait_for("refundStarPayment")
        assert refund.params == {"user_id": p.BOB, "telegram_payment_charge_id": "stxSTOLEN"}
        (told,) = await fake.wait_for("sendMessage", to(p.BOB, "refunded"))
        assert "Nothing was bought" in told.params["text"]
        (owner,) = await fake.wait_for("sendMessage", to(p.OWNER, "refused and refunded"))
        assert f"Payer: user {p.BOB}" in owner.params["text"]
        await h.settle()
        assert h.count("select count(*) from purchases") == 0
        assert fake.calls_to("createChatInviteLink") == []
        # Delivered again, and Telegram reports the refund the bot made: nothing more happens, nobody is told twice.
        await h.deliver(stolen, p.refunded_payment(p.BOB, payload_for(p.ALICE), PRICE, charge="stxSTOLEN"))
        await h.settle()
        assert len(fake.calls_to("refundStarPayment")) == 1
        assert len([c for c in fake.calls_to("sendMessage") if to(p.BOB)(c)]) == 1
        assert h.count("select count(*) from unmatched_payments where refunded_at is not null") == 1
        # What is kept names the payer by account only; the invoice's member (who may be forgotten) not at all.
        assert h.count(f"select count(*) from unmatched_payments where problem like '%{p.ALICE}%'") == 0
        assert len([c for c in fake.calls_to("sendMessage") if to(p.OWNER)(c)]) == 1


async def test_an_unmatched_payment_is_refunded_by_an_admin_with_the_command_the_owners_are_given(
    fake: FakeBotApi, db_path: Path
) -> None:
    odd = p.successful_payment(p.BOB, "some-other-bot-payload", 75, charge="stxODD")
    fake.statuses[(p.GROUP, p.CAROL)] = "administrator"
    async with running(fake, db_path) as h:
        await h.deliver(odd)
        (owner,) = await fake.wait_for("sendMessage", to(p.OWNER, "could not be matched"))
        assert "To refund it: <code>/refund charge stxODD</code>" in owner.params["text"]
        await fake.wait_for("sendMessage", to(p.BOB, "an admin will sort it out"))
        await h.deliver(odd)  # a redelivery tells nobody again
        await h.settle()
        assert len([c for c in fake.calls_to("sendMessage") if to(p.OWNER)(c)]) == 1
        assert fake.calls_to("refundStarPayment") == []

        await h.deliver(p.private_message(p.OWNER, "/refund charge stxODD"))
        (question,) = await fake.wait_for("sendMessage", to(p.OWNER, "Refund this payment?"))
        data = button_data(question)
        assert fake.calls_to("refundStarPayment") == []
        # Another admin presses the owner's button: refused, nothing refunded.
        await h.deliver(p.callback(p.CAROL, data, chat=p.private(p.CAROL), query_id="cbq-carol"))
        await fake.wait_for("sendMessage", to(p.CAROL, "made for another admin"))
        assert fake.calls_to("refundStarPayment") == []
        # The owner presses it twice.
        await h.deliver(p.callback(p.OWNER, data, query_id="cbq-1"), p.callback(p.OWNER, data, query_id="cbq-2"))
        (refund,) = await fake.wait_for("refundStarPayment")
        assert refund.params == {"user_id": p.BOB, "telegram_payment_charge_id": "stxODD"}
        await fake.wait_for("sendMessage", to(p.OWNER, "already refunded"))
        await h.settle()
        assert len(fake.calls_to("refundStarPayment")) == 1


async def test_admin_commands_name_members_by_username_reply_or_mention_never_by_display_name(
    fake: FakeBotApi, db_path: Path
) -> None:
    real = p.message(p.group(), p.BOB, "hi", message_id=801)
    real["from"] = p.user(p.BOB, "Bob", username="bob")
    # Carol renamed herself "bob" (no username).
    fake_bob = p.message(p.group(), p.CAROL, "hello", message_id=802)
    fake_bob["from"] = p.user(p.CAROL, "bob")
    async with running(fake, db_path) as h:
        await h.deliver({"message": real}, {"message": fake_bob})
        await h.eventually(lambda: h.count("select count(*) from messages") == 2, "both messages stored")
        await h.deliver(p.private_message(p.OWNER, "/grant @bob py-async"))
        (invite,) = await fake.wait_for("createChatInviteLink")
        assert invite.params["name"] == f"py-async {p.BOB}"
        # A text mention (picked from Telegram's member list; the visible text is just a name) names its user.
        line = "/grant Carol Lookalike py-async"
        mention = p.message(p.private(p.OWNER), p.OWNER, line)
        mention["entities"].append(
            {"type": "text_mention", "offset": 7, "length": len("Carol Lookalike"), "user": p.user(p.CAROL, "bob")}
        )
        await h.deliver({"message": mention})
        await fake.wait_for("createChatInviteLink", count=2)
        await h.eventually(
            lambda: (
                h.count(
                    "select count(*) from purchases pu join members m on m.id = pu.member_id "
                    f"where m.platform_user_id in ('{p.BOB}', '{p.CAROL}') and pu.source = 'grant'"
                )
                == 2
            ),
            "grants to Bob and to Carol, each by identity",
        )
        await h.deliver(p.private_message(p.OWNER, "/grant @nobody py-async"))
        await fake.wait_for("sendMessage", to(p.OWNER, "No member with the username @nobody"))
        assert len(fake.calls_to("createChatInviteLink")) == 2
