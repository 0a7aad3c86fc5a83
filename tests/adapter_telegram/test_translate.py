"""Translation of Bot API payloads into events, on the real recorded payloads (no network)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.telegram.translate import (
    MembershipDeduper,
    TranslationScope,
    activity_events,
    callback_command,
    parse_command,
    parse_update,
    purchase_event,
    refund_event,
)
from storage.events import MemberJoined, MemberLeft, MessageEvent, Platform, PurchaseSource, ReactionEvent
from tests.fakes import telegram_payloads as p

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platform-payloads" / "telegram"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def as_update(obj: dict[str, Any], kind: str = "message") -> dict[str, Any]:
    """Some fixtures are bare objects (a message, a pre-checkout query); wrap them as an update."""
    return obj if "update_id" in obj else {"update_id": 1, kind: obj}


def scope(*chat_ids: int, store_text: bool = False) -> TranslationScope:
    return TranslationScope("PyCraft", frozenset(chat_ids), store_text=store_text, bot_username="cohort_test_bot")


def test_fixture_directory_is_found() -> None:
    assert FIXTURES.is_dir(), f"the recorded payloads are missing: {FIXTURES}"


def test_group_messages_in_configured_chats_only() -> None:
    batch = fixture("getUpdates_group_messages.perceval.json")["result"]
    events = [e for u in batch for e in activity_events(parse_update(u), scope(-1))]
    assert [e.message_id for e in events if isinstance(e, MessageEvent)] == ["31", "33"]  # chat -2 is not ours
    first = events[0]
    assert isinstance(first, MessageEvent)
    assert first.platform is Platform.TELEGRAM
    assert first.community == "PyCraft"
    assert first.channel.channel_id == "-1"
    assert first.channel.name == "Testing Telegram Bots"
    assert first.author.user_id == "8"
    assert first.author.display_name == "Santi"
    assert first.occurred_at == datetime.fromtimestamp(1467289325, UTC)
    assert first.length == len("Testing, testing")
    assert first.text is None  # text is not stored unless the owner opts in


def test_text_is_kept_only_when_store_text_is_on() -> None:
    update = parse_update(fixture("getUpdates_group_messages.perceval.json")["result"][2])
    (event,) = activity_events(update, scope(-1, store_text=True))
    assert isinstance(event, MessageEvent)
    assert event.text == "Hi, this is Alvaro!"


def test_private_chats_and_edits_are_never_activity() -> None:
    batch = fixture("getUpdates_next.perceval.json")["result"]
    # The private message comes from chat 8 and the edit from chat -2: even with both "configured", only the
    # group message counts, once.
    events = [e for u in batch for e in activity_events(parse_update(u), scope(8, -2))]
    assert [(e.channel.channel_id, e.message_id) for e in events if isinstance(e, MessageEvent)] == [("-2", "35")]
    for name in ("message_private_text.teloxide.json", "message_private_text.telegram-docs-webhooks.json"):
        update = parse_update(fixture(name))
        assert activity_events(update, scope(update.effective_chat.id)) == []  # type: ignore[union-attr]
    assert activity_events(parse_update(fixture("edited_message.telegram-docs-webhooks.json")), scope(1111111)) == []


def test_reply_in_supergroup_names_the_replied_member() -> None:
    update = parse_update(fixture("message_supergroup_command_reply.teloxide.json"))
    event = activity_events(update, scope(-1001293752024))[0]
    assert isinstance(event, MessageEvent)
    assert event.reply_to_message_id == "134545"
    assert event.reply_to_user_id == "6962620676"
    # message_thread_id without is_topic_message is a reply thread, not a forum topic
    assert event.channel.thread_id is None


def test_service_messages_are_not_messages() -> None:
    update = parse_update(fixture("message_supergroup_pinned.teloxide.json"))
    assert activity_events(update, scope(-1001276785818)) == []


def test_user_reaction() -> None:
    update = parse_update(fixture("message_reaction_user.teloxide.json"))
    (event,) = activity_events(update, scope(-1002184233434))
    assert isinstance(event, ReactionEvent)
    assert (event.member.user_id, event.message_id, event.emoji, event.added) == ("1459074222", "35", "🌭", True)
    assert event.occurred_at == datetime.fromtimestamp(1721306082, UTC)


def test_anonymous_reaction_removal_is_credited_to_the_actor_chat() -> None:
    update = parse_update(fixture("message_reaction_anonymous_actor_chat.teloxide.json"))
    (event,) = activity_events(update, scope(-1002199793788))
    assert isinstance(event, ReactionEvent)
    assert event.member.user_id == "-1002199793788"
    assert event.member.display_name == "тест"
    assert (event.emoji, event.added) == ("❤", False)


def test_reaction_counts_of_channels_are_not_member_activity() -> None:
    update = parse_update(fixture("message_reaction_count_channel.teloxide.json"))
    assert activity_events(update, scope(-1002236736395)) == []


def test_changing_a_reaction_is_one_removal_and_one_addition() -> None:
    update = parse_update(p.reaction(p.ALICE, 42, old=("👍", "🔥"), new=("🔥", "🎉")) | {"update_id": 5})
    events = activity_events(update, scope(p.GROUP))
    assert [(e.emoji, e.added) for e in events if isinstance(e, ReactionEvent)] == [("👍", False), ("🎉", True)]


def test_bot_added_to_group_is_not_a_member_join() -> None:
    # my_chat_member is about the bot itself: it is not community activity.
    update = parse_update(fixture("my_chat_member_supergroup_add.drui9-autogram.json") | {"update_id": 3})
    assert activity_events(update, scope(-1002162095988)) == []
    assert activity_events(parse_update(fixture("my_chat_member_private_kicked.teloxide.json")), scope(0)) == []


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("left", "member", MemberJoined),
        ("kicked", "member", MemberJoined),
        ("member", "left", MemberLeft),
        ("member", "kicked", MemberLeft),
        ("member", "administrator", None),  # a promotion is not a join
        ("left", "kicked", None),
    ],
)
def test_chat_member_status_transitions(old: str, new: str, kind: type | None) -> None:
    update_dict = p.chat_member(p.ALICE, old, new)
    if new == "administrator":
        update_dict["chat_member"]["new_chat_member"].update(p.ADMIN_RIGHTS)
    events = activity_events(parse_update(update_dict | {"update_id": 9}), scope(p.GROUP))
    if kind is None:
        assert events == []
    else:
        (event,) = events
        assert isinstance(event, kind)
        assert event.member.user_id == str(p.ALICE)


def test_service_join_and_leave() -> None:
    joined = activity_events(parse_update(p.service_join(p.BOB) | {"update_id": 1}), scope(p.GROUP))
    left = activity_events(parse_update(p.service_leave(p.BOB) | {"update_id": 2}), scope(p.GROUP))
    assert [type(e) for e in joined] == [MemberJoined]
    assert [type(e) for e in left] == [MemberLeft]


def test_both_deliveries_of_one_join_get_one_timestamp() -> None:
    dedupe = MembershipDeduper()
    via_update = activity_events(
        parse_update(p.chat_member(p.BOB, "left", "member", date=p.T) | {"update_id": 1}), scope(p.GROUP)
    )
    via_service = activity_events(parse_update(p.service_join(p.BOB, date=p.T + 1) | {"update_id": 2}), scope(p.GROUP))
    first, second = dedupe(via_update[0]), dedupe(via_service[0])  # type: ignore[arg-type]
    assert first.occurred_at == second.occurred_at
    # A real leave and re-join shortly after is still counted.
    leave = dedupe(
        MemberLeft(Platform.TELEGRAM, "PyCraft", first.member, first.occurred_at + timedelta(seconds=5), first.channel)
    )
    rejoin = dedupe(
        MemberJoined(
            Platform.TELEGRAM, "PyCraft", first.member, first.occurred_at + timedelta(seconds=9), first.channel
        )
    )
    assert leave.occurred_at == first.occurred_at + timedelta(seconds=5)
    assert rejoin.occurred_at == first.occurred_at + timedelta(seconds=9)


def test_forum_topic_is_a_thread_and_not_a_reply() -> None:
    topic_start = {
        "message_id": 77,
        "from": p.user(p.OWNER),
        "chat": p.group(forum=True),
        "date": p.T,
        "forum_topic_created": {"name": "Help", "icon_color": 7322096},
    }
    in_topic = {
        "update_id": 1,
        "message": p.message(
            p.group(forum=True), p.ALICE, "see `x = 1` at https://x.dev", reply_to=topic_start, thread_id=77, topic=True
        ),
    }
    (event,) = activity_events(parse_update(in_topic), scope(p.GROUP))
    assert isinstance(event, MessageEvent)
    assert event.channel.thread_id == "77"
    assert not event.is_reply
    assert event.has_code and event.has_link


def test_real_reply_inside_a_topic() -> None:
    earlier = p.message(p.group(forum=True), p.BOB, "question", message_id=80, thread_id=77, topic=True)
    update = {
        "update_id": 1,
        "message": p.message(p.group(forum=True), p.ALICE, "answer", reply_to=earlier, thread_id=77, topic=True),
    }
    (event,) = activity_events(parse_update(update), scope(p.GROUP))
    assert isinstance(event, MessageEvent)
    assert (event.reply_to_message_id, event.reply_to_user_id, event.channel.thread_id) == ("80", str(p.BOB), "77")


def test_photo_with_caption_counts_as_attachment() -> None:
    photo = [{"file_id": "a", "file_unique_id": "b", "width": 10, "height": 10}]
    update = {"update_id": 1, "message": p.message(p.group(), p.ALICE, None, photo=photo, caption="look")}
    (event,) = activity_events(parse_update(update), scope(p.GROUP))
    assert isinstance(event, MessageEvent)
    assert (event.attachments, event.length) == (1, 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/stats", ("stats", (), False)),
        ("/stats@cohort_test_bot", ("stats", (), True)),
        ("/STATS@Cohort_Test_Bot", ("stats", (), True)),
        ("/grant 123 py-async", ("grant", ("123", "py-async"), False)),
        ("/buy@cohort_test_bot   py-async ", ("buy", ("py-async",), True)),
        ("/stats@other_bot", None),
        ("hello /stats", None),
        ("/", None),
    ],
)
def test_parse_command(text: str, expected: tuple[str, tuple[str, ...], bool] | None) -> None:
    parsed = parse_command(text, "cohort_test_bot")
    assert (None if parsed is None else (parsed.name, parsed.args, parsed.addressed)) == expected


def test_command_fixture_parses() -> None:
    update = parse_update(fixture("message_supergroup_command_reply.teloxide.json"))
    parsed = parse_command(update.message.text, "cohort_test_bot")  # type: ignore[union-attr]
    assert parsed is not None and parsed.name == "report"


def test_successful_payment_fixture_becomes_a_purchase() -> None:
    update = parse_update(as_update(fixture("message_successful_payment.object.aiogram2.json")))
    message = update.message
    assert message is not None and message.successful_payment is not None and message.from_user is not None
    event = purchase_event(
        message.successful_payment,
        buyer=message.from_user,
        course_id="py-async",
        occurred_at=message.date,
        community="PyCraft",
    )
    assert (event.charge_id, event.amount, event.currency) == ("_", 6250, "USD")
    assert event.provider_charge_id == "12345678901234_test"
    assert event.source is PurchaseSource.TELEGRAM_STARS
    assert event.member.user_id == "12345678"
    assert activity_events(update, scope(12345678)) == []  # a payment is not chat activity


def test_refunded_payment_fixture_becomes_a_refund() -> None:
    data = p.message(
        p.private(p.ALICE), p.ALICE, None, refunded_payment=fixture("refunded_payment.object.ptb-fixture.json")
    )
    message = parse_update({"update_id": 1, "message": data}).message
    assert message is not None and message.refunded_payment is not None
    event = refund_event(message.refunded_payment, occurred_at=message.date, community="PyCraft")
    assert event.charge_id == "telegram_payment_charge_id"


def test_pre_checkout_fixture_parses() -> None:
    update = parse_update(as_update(fixture("pre_checkout_query.object.aiogram2.json"), "pre_checkout_query"))
    query = update.pre_checkout_query
    assert query is not None
    assert (query.invoice_payload, query.total_amount, query.from_user.id) == ("HAPPY FRIDAYS COUPON", 6250, 12345678)


def test_button_data_is_a_command_line() -> None:
    update = parse_update(p.callback(p.ALICE, "/buy py-async") | {"update_id": 1})
    assert update.callback_query is not None
    parsed = callback_command(update.callback_query, "cohort_test_bot")
    assert parsed is not None and (parsed.name, parsed.args) == ("buy", ("py-async",))
