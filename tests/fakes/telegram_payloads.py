"""Bot API update payloads for tests, shaped like the recorded ones in tests/fixtures/platform-payloads/telegram/.

Each builder returns the update dict *without* ``update_id`` unless given (the fake server assigns one).
"""

from __future__ import annotations

import itertools
from typing import Any

GROUP = -1001500000001
COURSE_CHAT = -1001500000099
OWNER = 500001
ALICE = 600001
BOB = 600002
CAROL = 600003
T = 1_717_000_000  # 2024-05-29T16:26:40Z

_message_ids = itertools.count(1000)

# Fields the Bot API sends for a chat administrator (PTB requires all of them).
ADMIN_RIGHTS: dict[str, bool] = {
    "can_be_edited": False,
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
}


def user(user_id: int, first_name: str | None = None, *, username: str | None = None) -> dict[str, Any]:
    u: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
    if username:
        u["username"] = username
    return u


def group(chat_id: int = GROUP, *, forum: bool = False) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "title": "PyCraft", "type": "supergroup"}
    if forum:
        chat["is_forum"] = True
    return chat


def private(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "first_name": f"User{user_id}", "type": "private"}


def message(
    chat: dict[str, Any],
    sender: int,
    text: str | None = "hello",
    *,
    message_id: int | None = None,
    date: int = T,
    reply_to: dict[str, Any] | None = None,
    thread_id: int | None = None,
    topic: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "message_id": message_id if message_id is not None else next(_message_ids),
        "from": user(sender),
        "chat": chat,
        "date": date,
    }
    if text is not None:
        msg["text"] = text
        if text.startswith("/"):
            msg["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if reply_to is not None:
        msg["reply_to_message"] = reply_to
    if thread_id is not None:
        msg["message_thread_id"] = thread_id
    if topic:
        msg["is_topic_message"] = True
    msg.update(extra)
    return msg


def group_message(sender: int, text: str | None = "hello", **kw: Any) -> dict[str, Any]:
    return {"message": message(group(kw.pop("chat_id", GROUP)), sender, text, **kw)}


def private_message(sender: int, text: str, **kw: Any) -> dict[str, Any]:
    return {"message": message(private(sender), sender, text, **kw)}


def reaction(
    reactor: int | None,
    message_id: int,
    *,
    old: tuple[str, ...] = (),
    new: tuple[str, ...] = ("👍",),
    chat_id: int = GROUP,
    date: int = T,
    actor_chat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chat": group(chat_id),
        "message_id": message_id,
        "date": date,
        "old_reaction": [{"type": "emoji", "emoji": e} for e in old],
        "new_reaction": [{"type": "emoji", "emoji": e} for e in new],
    }
    if reactor is not None:
        body["user"] = user(reactor)
    if actor_chat is not None:
        body["actor_chat"] = actor_chat
    return {"message_reaction": body}


def chat_member(member: int, old: str, new: str, *, chat_id: int = GROUP, date: int = T) -> dict[str, Any]:
    return {
        "chat_member": {
            "chat": group(chat_id),
            "from": user(member),
            "date": date,
            "old_chat_member": {"user": user(member), "status": old, **({"until_date": 0} if old == "kicked" else {})},
            "new_chat_member": {"user": user(member), "status": new, **({"until_date": 0} if new == "kicked" else {})},
        }
    }


def service_join(member: int, *, chat_id: int = GROUP, date: int = T) -> dict[str, Any]:
    return {"message": message(group(chat_id), member, None, date=date, new_chat_members=[user(member)])}


def service_leave(member: int, *, chat_id: int = GROUP, date: int = T) -> dict[str, Any]:
    return {"message": message(group(chat_id), member, None, date=date, left_chat_member=user(member))}


def pre_checkout(buyer: int, payload: str, amount: int, *, query_id: str = "pcq-1", currency: str = "XTR") -> dict:
    return {
        "pre_checkout_query": {
            "id": query_id,
            "from": user(buyer),
            "currency": currency,
            "total_amount": amount,
            "invoice_payload": payload,
        }
    }


def successful_payment(buyer: int, payload: str, amount: int, *, charge: str = "stxCHARGE1", date: int = T) -> dict:
    return {
        "message": message(
            private(buyer),
            buyer,
            None,
            date=date,
            successful_payment={
                "currency": "XTR",
                "total_amount": amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge,
                "provider_payment_charge_id": "",
            },
        )
    }


def subscription_payment(
    buyer: int, payload: str, amount: int, *, charge: str, expires: int, first: bool = False, date: int = T
) -> dict:
    """A Stars subscription payment: the first one (``first``) or a renewal; access runs until ``expires``."""
    update = successful_payment(buyer, payload, amount, charge=charge, date=date)
    paid = update["message"]["successful_payment"]
    paid.update(subscription_expiration_date=expires, is_recurring=True)
    if first:
        paid["is_first_recurring"] = True
    return update


def refunded_payment(buyer: int, payload: str, amount: int, *, charge: str = "stxCHARGE1", date: int = T) -> dict:
    return {
        "message": message(
            private(buyer),
            buyer,
            None,
            date=date,
            refunded_payment={
                "currency": "XTR",
                "total_amount": amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge,
            },
        )
    }


def callback(presser: int, data: str, *, chat: dict[str, Any] | None = None, query_id: str = "cbq-1") -> dict:
    return {
        "callback_query": {
            "id": query_id,
            "from": user(presser),
            "chat_instance": "ci-1",
            "data": data,
            "message": message(chat or private(presser), 7000000001, "pick one", date=T),
        }
    }


def poll_answer(poll_id: str, voter: int, option_ids: list[int]) -> dict[str, Any]:
    """A vote on a non-anonymous poll the bot sent (an empty ``option_ids`` withdraws it)."""
    persistent = [f"opt{index}" for index in option_ids]  # as the fake's sendPoll numbers them
    return {
        "poll_answer": {
            "poll_id": poll_id,
            "user": user(voter),
            "option_ids": option_ids,
            "option_persistent_ids": persistent,
        }
    }
