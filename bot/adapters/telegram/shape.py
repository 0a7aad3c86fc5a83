"""A webhook body checked against the shape of a Telegram update before python-telegram-bot parses it.

PTB trusts the Bot API and checks no types: ``"from": {"id": "x"}`` becomes a user whose id is a string, which the
bot would then store, and ``"message": "str"`` fails deep inside PTB. Telegram only sends well-typed updates, so a
body that is not one is refused (400) before anything runs. Only the fields cohortbot reads, and the objects that
hold them, are checked; fields Telegram adds later pass through.
"""

from __future__ import annotations

from typing import Any, Final

MAX_DEPTH: Final = 32
"""Real updates nest about 8 deep (a reply's quoted message's chat); far deeper is an attack on the parser."""

# Keys whose value is an object, an array of objects, or a scalar of one type, wherever they appear.
_OBJECTS: Final = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "callback_query",
        "pre_checkout_query",
        "my_chat_member",
        "chat_member",
        "chat_join_request",
        "message_reaction",
        "message_reaction_count",
        "from",
        "chat",
        "sender_chat",
        "user",
        "actor_chat",
        "left_chat_member",
        "new_chat_member",
        "old_chat_member",
        "reply_to_message",
        "pinned_message",
        "external_reply",
        "forward_origin",
        "successful_payment",
        "refunded_payment",
        "poll_answer",
        "voter_chat",
    }
)
_OBJECT_ARRAYS: Final = frozenset(
    {"entities", "caption_entities", "photo", "new_chat_members", "old_reaction", "new_reaction", "reactions"}
)
_INTEGERS: Final = frozenset(
    {
        "update_id",
        "message_id",
        "message_thread_id",
        "date",
        "edit_date",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
        "total_amount",
        "offset",
        "length",
        "total_count",
    }
)
_STRINGS: Final = frozenset(
    {
        "text",
        "caption",
        "first_name",
        "last_name",
        "username",
        "title",
        "emoji",
        "currency",
        "invoice_payload",
        "telegram_payment_charge_id",
        "provider_payment_charge_id",
        "status",
        "poll_id",
    }
)
_BOOLEANS: Final = frozenset({"is_bot", "is_topic_message"})
# Objects whose "id" is a user's or chat's numeric id (a callback query's or a pre-checkout query's is a string).
_NUMERIC_ID_HOLDERS: Final = frozenset(
    {"from", "chat", "sender_chat", "user", "actor_chat", "left_chat_member", "new_chat_members", "voter_chat"}
)
_STRING_ID_HOLDERS: Final = frozenset({"callback_query", "pre_checkout_query"})
# Keys whose meaning depends on the object holding them: "type" is a string in a chat or an entity but an object in
# a reaction count; "data" is a string in a callback query but an array in passport data.
_STRINGS_IN: Final = {
    "type": frozenset(
        {"chat", "sender_chat", "actor_chat", "entities", "caption_entities", "old_reaction", "new_reaction"}
    ),
    "data": frozenset({"callback_query"}),
}


def check_update_shape(data: Any) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``data`` has the shape of a Telegram update.

    Raises:
        ValueError: Not an object with an integer ``update_id``, a field of the wrong type (named by its path),
            or nesting deeper than :data:`MAX_DEPTH`.
    """
    if not isinstance(data, dict):
        raise ValueError("an update is a JSON object")
    if "update_id" not in data:
        raise ValueError("no update_id")
    # An explicit stack rather than recursion: the depth is what is being checked.
    stack: list[tuple[str, str, Any, int]] = [("", "update", data, 1)]
    while stack:
        path, holder, value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{path or 'the update'} is nested more than {MAX_DEPTH} deep")
        if isinstance(value, list):
            for index, item in enumerate(value):
                if holder in _OBJECT_ARRAYS and not isinstance(item, dict):
                    raise ValueError(f"{path}[{index}] should be an object, not {type(item).__name__}")
                stack.append((f"{path}[{index}]", holder, item, depth + 1))
            continue
        if not isinstance(value, dict):
            continue
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if item is None:
                continue  # PTB reads null as absent, as Telegram means it
            expected = _expected(key, holder)
            if expected is not None and not _is(item, expected):
                raise ValueError(f"{where} should be {_NAMES[expected]}, not {type(item).__name__}")
            if isinstance(item, dict | list):
                stack.append((where, key, item, depth + 1))


_NAMES: Final = {dict: "an object", list: "an array", int: "an integer", str: "a string", bool: "true or false"}


def _expected(key: str, holder: str) -> type | None:
    if key == "id":
        if holder in _NUMERIC_ID_HOLDERS:
            return int
        return str if holder in _STRING_ID_HOLDERS else None
    if key in _STRINGS_IN:
        return str if holder in _STRINGS_IN[key] else None
    if key in _OBJECTS:
        return dict
    if key in _OBJECT_ARRAYS:
        return list
    if key in _INTEGERS:
        return int
    if key in _STRINGS:
        return str
    return bool if key in _BOOLEANS else None


def _is(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)
