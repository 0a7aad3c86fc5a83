"""Telegram Desktop chat export (``result.json``) turned into events. Pure: no database.

Telegram Desktop → chat menu → *Export chat history* → format *Machine-readable JSON* writes
``{name, type, id, messages: [...]}``. What becomes what:

* ``type: "message"`` from ``from_id: "user<id>"`` → a message by member ``<id>``. ``text`` is a string or a
  list of strings and entity objects; ``code``/``pre`` entities set has_code, ``link``/``text_link`` set
  has_link, on top of what the plain text shows. ``reply_to_message_id`` makes a reply, and the replied-to
  author is resolved when that message is in the same export. Reaction totals (old ``{emoji, count}`` and
  new ``{type, count, emoji, recent}`` shapes alike) go to ``imported_reactions``; ``photo``/``file`` count as
  an attachment.
* ``from_id: "channel<id>"`` (channel posts, anonymous admins) is not a member: skipped and counted.
* Service messages: ``join_group_by_link`` and ``join_group_by_request`` → join of ``actor_id``;
  ``invite_members`` → joins and ``remove_members`` → leaves of ``members``. The export lists those members
  by *name* only: a name equal to the actor's is the actor (Telegram exports "X joined" and "X left" that way),
  other names are matched to ids seen in the same export when the name belongs to exactly one account; the rest
  are skipped and counted. Other service messages (pins, title changes, calls ...) are skipped and counted.
* Times come from ``date_unixtime`` (UTC). Old exports without it only have ``date``, the exporting computer's
  local time, which is taken as UTC unless the importer is told that computer's zone
  (``cohortbot import telegram-export --timezone Europe/Berlin``). A time outside 1970-01-01 .. 2099-12-31 UTC stops
  the import.
* Bot accounts cannot be told apart (the export does not flag them), so every sender is stored as a human.

Chat ids match what the Bot API reports, so imported history lines up with live logging: a supergroup (or
channel) with export ``id`` 1234567890 is chat ``-1001234567890``, a basic group is ``-<id>``. Message ids are
the real ones, so re-importing, overlapping exports and history the bot also logged live are stored once.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from bot.importers import (
    CorruptExportError,
    ParsedFile,
    check_time,
    json_item_line,
    load_json_export,
    out_of_range,
    reaction_total,
    read_export_text,
)
from bot.importers import FieldError as _FieldError
from storage.events import (
    ActivityEvent,
    ChannelRef,
    EventError,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    text_facts,
)

__all__ = [
    "SKIP_CHANNEL_POSTS",
    "SKIP_OTHER_SENDERS",
    "SKIP_SERVICE",
    "SKIP_UNKNOWN_NAMES",
    "parse_telegram_export",
    "telegram_chat_id",
]

SKIP_CHANNEL_POSTS = "channel posts and anonymous admin messages (not members)"
SKIP_OTHER_SENDERS = "messages whose sender is not a user"
SKIP_UNKNOWN_NAMES = "invited/removed members named without an id (name unknown in the export or not unique)"
SKIP_SERVICE = "other service messages (pins, title changes, calls ...)"

# Bot API chat ids: supergroups and channels are -100<id>, basic groups -<id>.
_CHAT_ID_PREFIX = {
    "private_supergroup": "-100",
    "public_supergroup": "-100",
    "private_channel": "-100",
    "public_channel": "-100",
    "private_group": "-",
}
_CODE_ENTITIES = frozenset({"code", "pre"})
_LINK_ENTITIES = frozenset({"link", "text_link"})
_JOIN_ACTIONS = frozenset({"join_group_by_link", "join_group_by_request"})


def telegram_chat_id(export_type: str, export_id: int) -> str:
    """The Bot API chat id of an exported chat (``-100<id>`` for supergroups and channels, ``-<id>`` for groups).

    Raises:
        ValueError: The export is not of a group, supergroup or channel.
    """
    prefix = _CHAT_ID_PREFIX.get(export_type)
    if prefix is None:
        raise ValueError(
            f"chat type {export_type!r} is not a group: cohortbot imports groups, supergroups and channels "
            "(export the group's history from its chat menu)"
        )
    return f"{prefix}{export_id}"


def _user_id(value: object) -> str | None:
    """``"user123"`` → ``"123"``; anything else (channels, chats, missing) → None."""
    if isinstance(value, str) and value.startswith("user") and value[4:].isdigit():
        return value[4:]
    return None


def _time(message: dict[str, Any], local_zone: tzinfo) -> datetime:
    unix = message.get("date_unixtime")
    if unix is not None:
        if isinstance(unix, str) and unix.isdigit():
            seconds = int(unix)
        elif isinstance(unix, int) and not isinstance(unix, bool):
            seconds = unix
        else:
            raise _FieldError(f"date_unixtime: expected seconds since 1970 like '1700000000', got {unix!r}")
        try:
            at = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            # Beyond what datetime (or the C library) can hold: year 0 or 10000 and more.
            raise _FieldError(out_of_range("date_unixtime", unix)) from None
        return check_time(at, "date_unixtime", unix)
    date = message.get("date")
    if date is None:
        raise _FieldError("date: missing (expected 'date_unixtime' or 'date' like '2024-03-04T09:00:00')")
    if not isinstance(date, str):
        raise _FieldError(f"date: expected a time like '2024-03-04T09:00:00', got {date!r}")
    try:
        parsed = datetime.fromisoformat(date)
    except ValueError:
        raise _FieldError(f"date: expected a time like '2024-03-04T09:00:00', got {date!r}") from None
    # Without an offset, ``date`` is the exporting computer's wall clock: in ``local_zone`` (UTC unless told).
    try:
        at = parsed.replace(tzinfo=local_zone).astimezone(UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 with a positive offset (or year 9999 with a negative one) falls off the calendar in UTC.
        raise _FieldError(out_of_range("date", date)) from None
    return check_time(at, "date", date)


def _text(value: object) -> tuple[str, bool, bool]:
    """(plain text, has a code entity, has a link entity) of a message's ``text``."""
    if value is None:
        return "", False, False
    if isinstance(value, str):
        return value, False, False
    if not isinstance(value, list):
        raise _FieldError(f"text: expected a string or a list of strings and entities, got {type(value).__name__}")
    parts: list[str] = []
    code = link = False
    for i, item in enumerate(value):
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, dict) and isinstance(item.get("text"), str):
            parts.append(item["text"])
            kind = item.get("type")
            code = code or kind in _CODE_ENTITIES
            link = link or kind in _LINK_ENTITIES
        else:
            raise _FieldError(f"text[{i}]: expected a string or an entity object with 'type' and 'text'")
    return "".join(parts), code, link


def _message_id(message: dict[str, Any]) -> int:
    value = message.get("id")
    if not isinstance(value, int) or isinstance(value, bool):
        raise _FieldError(
            "id: missing (expected the message's number)" if value is None else f"id: expected a number, got {value!r}"
        )
    return value


def parse_telegram_export(
    path: Path, community: str, *, store_text: bool = False, local_zone: tzinfo = UTC
) -> ParsedFile:
    """Turn a Telegram Desktop ``result.json`` into events (see the module docstring for the mapping).

    Args:
        path: The export's ``result.json``.
        community: The community the events belong to.
        store_text: Put message text on the events (only when the owner turned text storage on).
        local_zone: The zone of the exporting computer's clock, for old exports whose messages have only
            ``date`` (no ``date_unixtime``); UTC by default.

    Returns:
        The events in export order, with the skipped records counted by reason.

    Raises:
        CorruptExportError: The file is not valid JSON, not a group's chat export, or a message is malformed.
    """
    text = read_export_text(path)
    if not text.strip():
        return ParsedFile(path, empty=True)
    out = ParsedFile(path)
    doc = load_json_export(path, text)
    if isinstance(doc, dict) and "chats" in doc and "messages" not in doc:
        raise CorruptExportError(
            path, 1, "this is a whole-account export: export the group's history from its chat menu instead"
        )
    if not isinstance(doc, dict) or not isinstance(doc.get("messages"), list):
        raise CorruptExportError(path, 1, "not a Telegram chat export: expected an object with 'messages'")
    chat_type, chat_number = doc.get("type"), doc.get("id")
    if not isinstance(chat_number, int) or isinstance(chat_number, bool):
        raise CorruptExportError(path, 1, f"id: expected the chat's number, got {chat_number!r}")
    try:
        chat_id = telegram_chat_id(str(chat_type), chat_number)
    except ValueError as exc:
        raise CorruptExportError(path, 1, f"type: {exc}") from None
    name = doc.get("name")
    channel = ChannelRef(chat_id, name=name if isinstance(name, str) else None)
    messages: list[Any] = doc["messages"]

    # First pass: who wrote each message (for reply targets) and which ids go by each name (for member lists).
    authors: dict[int, str | None] = {}
    ids_by_name: dict[str, set[str]] = defaultdict(set)
    for message in messages:
        if not isinstance(message, dict):
            continue
        sender = _user_id(message.get("from_id"))
        if isinstance(message.get("id"), int):
            authors[message["id"]] = sender
        for name_key, id_key in (("from", "from_id"), ("actor", "actor_id")):
            user = _user_id(message.get(id_key))
            person = message.get(name_key)
            if user is not None and isinstance(person, str) and person:
                ids_by_name[person].add(user)

    for index, message in enumerate(messages):
        try:
            if not isinstance(message, dict):
                raise _FieldError(": expected an object")
            out.events.extend(_events(message, community, channel, authors, ids_by_name, out, store_text, local_zone))
        except (_FieldError, EventError) as exc:
            detail = str(exc)
            line = json_item_line(text, "messages", index) or 1
            sep = "" if detail.startswith(":") else "."
            raise CorruptExportError(path, line, f"messages[{index}]{sep}{detail}") from None
    out.messages = sum(1 for e in out.events if isinstance(e, MessageEvent))
    out.empty = not messages
    return out


def _events(
    message: dict[str, Any],
    community: str,
    channel: ChannelRef,
    authors: dict[int, str | None],
    ids_by_name: dict[str, set[str]],
    out: ParsedFile,
    store_text: bool,
    local_zone: tzinfo,
) -> list[ActivityEvent]:
    message_id = _message_id(message)
    kind = message.get("type")
    if kind == "message":
        return _message(message, message_id, community, channel, authors, out, store_text, local_zone)
    if kind != "service":
        raise _FieldError(f"type: expected 'message' or 'service', got {kind!r}")
    at = _time(message, local_zone)
    action = message.get("action")
    actor_id = _user_id(message.get("actor_id"))
    actor = message.get("actor") if isinstance(message.get("actor"), str) else None
    if action in _JOIN_ACTIONS and actor_id is not None:
        out.members.add(actor_id)
        return [MemberJoined(Platform.TELEGRAM, community, MemberRef(actor_id, display_name=actor), at, channel)]
    if action not in ("invite_members", "remove_members"):
        out.skipped[SKIP_SERVICE] += 1
        return []
    names = message.get("members")
    if not isinstance(names, list):
        raise _FieldError(f"members: expected a list of names for {action!r}, got {names!r}")
    events: list[ActivityEvent] = []
    for member_name in names:
        user: str | None = None
        if isinstance(member_name, str) and member_name:
            if member_name == actor and actor_id is not None:
                user = actor_id
            elif len(ids_by_name.get(member_name, ())) == 1:
                (user,) = ids_by_name[member_name]
        if user is None:
            out.skipped[SKIP_UNKNOWN_NAMES] += 1
            continue
        out.members.add(user)
        ref = MemberRef(user, display_name=member_name if isinstance(member_name, str) else None)
        if action == "invite_members":
            events.append(MemberJoined(Platform.TELEGRAM, community, ref, at, channel))
        else:
            events.append(MemberLeft(Platform.TELEGRAM, community, ref, at, channel))
    return events


def _message(
    message: dict[str, Any],
    message_id: int,
    community: str,
    channel: ChannelRef,
    authors: dict[int, str | None],
    out: ParsedFile,
    store_text: bool,
    local_zone: tzinfo,
) -> list[ActivityEvent]:
    sender = message.get("from_id")
    if sender is None:
        raise _FieldError("from_id: missing (expected 'user<id>')")
    if not isinstance(sender, str):
        raise _FieldError(f"from_id: expected 'user<id>', got {sender!r}")
    user = _user_id(sender)
    if user is None:
        out.skipped[SKIP_CHANNEL_POSTS if sender.startswith("channel") else SKIP_OTHER_SENDERS] += 1
        return []
    at = _time(message, local_zone)
    plain, code_entity, link_entity = _text(message.get("text"))
    facts = text_facts(plain)
    reply_raw = message.get("reply_to_message_id")
    reply_to: str | None = None
    reply_user: str | None = None
    if reply_raw is not None:
        if not isinstance(reply_raw, int) or isinstance(reply_raw, bool):
            raise _FieldError(f"reply_to_message_id: expected a message number, got {reply_raw!r}")
        reply_to = str(reply_raw)
        reply_user = authors.get(reply_raw)
    name = message.get("from")
    out.members.add(user)
    return [
        MessageEvent(
            platform=Platform.TELEGRAM,
            community=community,
            message_id=str(message_id),
            channel=channel,
            author=MemberRef(user, display_name=name if isinstance(name, str) and name else None),
            occurred_at=at,
            length=facts.length,
            has_code=facts.has_code or code_entity,
            has_link=facts.has_link or link_entity,
            reply_to_message_id=reply_to,
            reply_to_user_id=reply_user,
            attachments=int("photo" in message or "file" in message),
            text=plain if store_text else None,
            imported_reactions=reaction_total(message.get("reactions")),
        )
    ]
