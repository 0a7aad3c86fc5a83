"""Pure translation from python-telegram-bot objects to cohortbot events.

Nothing here does I/O: every function takes PTB objects (or an update dict, see :func:`parse_update`) and returns
frozen events, so the rules below are tested on recorded Bot API payloads without a network.

Rules worth knowing:

- Only chats listed in ``[telegram] chat_ids`` are community activity. Private chats with the bot carry commands
  and payments, never activity.
- Edited messages are ignored: an edit is not a new message, and counting it would reward editing.
- In a forum supergroup every message in a topic carries ``reply_to_message`` = the topic's creation message;
  that is the topic, not a reply, so it is not counted as one.
- Telegram may deliver one join twice (a ``chat_member`` update *and* a ``new_chat_members`` service message, with
  timestamps that can differ by a second). Storage keys joins by (member, kind, time), so
  :class:`MembershipDeduper` gives the second delivery the first one's timestamp and storage drops it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from telegram import (
    Bot,
    CallbackQuery,
    Chat,
    ChatMember,
    ChatMemberUpdated,
    Message,
    MessageReactionUpdated,
    ReactionType,
    ReactionTypeCustomEmoji,
    ReactionTypeEmoji,
    ReactionTypePaid,
    RefundedPayment,
    SuccessfulPayment,
    Update,
    User,
)

from storage.events import (
    ActivityEvent,
    ChannelRef,
    CommandInvocation,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    PurchaseEvent,
    PurchaseSource,
    ReactionEvent,
    RefundEvent,
    text_facts,
)

ALLOWED_UPDATES: tuple[str, ...] = (
    "message",
    "edited_message",
    "callback_query",
    "pre_checkout_query",
    "message_reaction",
    "chat_member",
    "my_chat_member",
    "poll_answer",
)
"""Everything the bot needs (``poll_answer``: votes on the bot's own non-anonymous polls, see ``polls.py``).
``message_reaction`` and ``chat_member`` are opt-in: Telegram only sends them when
listed here (and only to a bot that is a chat administrator)."""

TELEGRAM_SERVICE_USER_ID = 777000
"""The account Telegram uses for posts auto-forwarded from a linked channel."""

_COMMAND_RE = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")

# Message content that makes a message a message (as opposed to a service message such as a pin or a title change).
_CONTENT_ATTRS = (
    "text",
    "caption",
    "animation",
    "audio",
    "contact",
    "dice",
    "document",
    "game",
    "location",
    "paid_media",
    "photo",
    "poll",
    "sticker",
    "story",
    "venue",
    "video",
    "video_note",
    "voice",
)
# Files a member shared (a Telegram message holds at most one; an album arrives as separate messages).
_ATTACHMENT_ATTRS = ("animation", "audio", "document", "paid_media", "photo", "video", "video_note", "voice")

_MEMBER_STATUSES = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR, ChatMember.MEMBER})
# Who may see reactions, joins and leaves, and (in a configured chat) run admin commands.
ADMIN_STATUSES = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR})


@dataclass(frozen=True, slots=True)
class TranslationScope:
    """What translation needs to know about the deployment.

    Attributes:
        community: ``[community] name``: every event is filed under it.
        chat_ids: ``[telegram] chat_ids``: the only chats whose activity is logged.
        store_text: ``[storage] store_text``: keep message text (off: only length and code/link facts).
        bot_username: The bot's ``@username`` (without ``@``), to tell ``/cmd@thisbot`` from ``/cmd@otherbot``.
    """

    community: str
    chat_ids: frozenset[int]
    store_text: bool = False
    bot_username: str | None = None

    def is_community_chat(self, chat: Chat | None) -> bool:
        """Whether activity in ``chat`` is logged."""
        return chat is not None and chat.type != Chat.PRIVATE and chat.id in self.chat_ids


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A command line: ``/name@bot arg1 arg2``."""

    name: str
    args: tuple[str, ...]
    addressed: bool
    """The command named this bot explicitly (``/stats@thisbot``)."""


def parse_update(data: Mapping[str, Any], bot: Bot | None = None) -> Update:
    """Build a PTB ``Update`` from a Bot API update dict (a webhook body or a recorded payload).

    Users in payloads from before Bot API 3.0 (2017) have no ``is_bot``, which PTB requires; such a user is a
    person (bots could not talk in groups then), so it is filled in as False rather than failing the update.

    Raises:
        ValueError: The data is not an update.
    """
    if not isinstance(data, Mapping) or "update_id" not in data:
        raise ValueError("not a Telegram update: no update_id")
    try:
        return Update.de_json(_with_is_bot(data), bot)
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"not a Telegram update: {exc}") from exc


def _with_is_bot(value: Any) -> Any:
    if isinstance(value, Mapping):
        fixed = {k: _with_is_bot(v) for k, v in value.items()}
        if "id" in fixed and "first_name" in fixed and "type" not in fixed and "is_bot" not in fixed:
            fixed["is_bot"] = False
        return fixed
    if isinstance(value, list):
        return [_with_is_bot(v) for v in value]
    return value


def member_ref(user: User) -> MemberRef:
    """The member behind a Telegram user."""
    return MemberRef(
        str(user.id), display_name=user.full_name or user.username, is_bot=user.is_bot, username=user.username
    )


def chat_actor_ref(chat: Chat) -> MemberRef:
    """A chat acting as a member: an anonymous group admin (the group itself) or a channel.

    Channels are not people, so they are stored as bot-like accounts (kept for replies, never counted); an
    anonymous admin is a real person hidden behind the group's name and counts as one member.
    """
    return MemberRef(str(chat.id), display_name=chat.title or chat.username, is_bot=chat.type == Chat.CHANNEL)


def channel_ref(chat: Chat, thread_id: int | None = None) -> ChannelRef:
    """Where something happened: the chat, and the forum topic when there is one."""
    return ChannelRef(
        str(chat.id),
        name=chat.title or chat.username,
        thread_id=str(thread_id) if thread_id is not None else None,
    )


def message_author(message: Message) -> MemberRef | None:
    """Who posted a message; a chat when posted on behalf of one (anonymous admin, linked channel)."""
    if message.sender_chat is not None:
        return chat_actor_ref(message.sender_chat)
    if message.from_user is None:
        return None
    if message.is_automatic_forward or message.from_user.id == TELEGRAM_SERVICE_USER_ID:
        return MemberRef(str(message.from_user.id), display_name="Telegram", is_bot=True)
    return member_ref(message.from_user)


def has_content(message: Message) -> bool:
    """Whether a message is something a member said or shared, not a service message."""
    return any(bool(getattr(message, attr, None)) for attr in _CONTENT_ATTRS)


def parse_command(text: str | None, bot_username: str | None) -> ParsedCommand | None:
    """Parse ``/name@bot args`` the way Telegram clients and PTB's ``CommandHandler`` do.

    Returns:
        The command, or None when the text is not a command or names another bot.
    """
    if not text or not text.startswith("/"):
        return None
    match = _COMMAND_RE.match(text)
    if match is None:
        return None
    name, target = match.group(1).lower(), match.group(2)
    if target is not None and (bot_username is None or target.lower() != bot_username.lower()):
        return None
    return ParsedCommand(name=name, args=tuple(text[match.end() :].split()), addressed=target is not None)


def message_event(message: Message, scope: TranslationScope) -> MessageEvent | None:
    """A member's message in a community chat, or None (other chats, service messages, no author)."""
    if not scope.is_community_chat(message.chat) or not has_content(message):
        return None
    author = message_author(message)
    if author is None:
        return None
    body = message.text or message.caption or ""
    facts = text_facts(body)
    thread_id = message.message_thread_id if message.is_topic_message else None
    reply_to_id: str | None = None
    reply_to_user: str | None = None
    replied = message.reply_to_message
    # In a forum topic, the topic's creation message is every message's implicit "reply"; only a reply to
    # another message of the topic is a reply.
    if replied is not None and not (message.is_topic_message and replied.message_id == message.message_thread_id):
        reply_to_id = str(replied.message_id)
        replied_author = message_author(replied)
        if replied_author is not None and replied.sender_chat is None:
            reply_to_user = replied_author.user_id
    attachments = sum(1 for attr in _ATTACHMENT_ATTRS if getattr(message, attr, None))
    return MessageEvent(
        platform=Platform.TELEGRAM,
        community=scope.community,
        message_id=str(message.message_id),
        channel=channel_ref(message.chat, thread_id),
        author=author,
        occurred_at=message.date,
        length=facts.length,
        has_code=facts.has_code or _has_code_entity(message),
        has_link=facts.has_link or _has_link_entity(message),
        reply_to_message_id=reply_to_id,
        reply_to_user_id=reply_to_user,
        attachments=attachments,
        text=body if scope.store_text and body else None,
    )


def _has_code_entity(message: Message) -> bool:
    entities = message.entities or message.caption_entities or ()
    return any(e.type in ("code", "pre") for e in entities)


def _has_link_entity(message: Message) -> bool:
    entities = message.entities or message.caption_entities or ()
    return any(e.type in ("url", "text_link") for e in entities)


def membership_events(message: Message, scope: TranslationScope) -> list[MemberJoined | MemberLeft]:
    """Joins and leaves announced by service messages (``new_chat_members``, ``left_chat_member``)."""
    if not scope.is_community_chat(message.chat):
        return []
    channel = channel_ref(message.chat)
    events: list[MemberJoined | MemberLeft] = [
        MemberJoined(Platform.TELEGRAM, scope.community, member_ref(user), message.date, channel)
        for user in message.new_chat_members or ()
    ]
    if message.left_chat_member is not None:
        events.append(
            MemberLeft(Platform.TELEGRAM, scope.community, member_ref(message.left_chat_member), message.date, channel)
        )
    return events


def is_member(member: ChatMember) -> bool:
    """Whether a chat member's status means they are in the chat (a restricted member may or may not be)."""
    if member.status in _MEMBER_STATUSES:
        return True
    if member.status == ChatMember.RESTRICTED:
        return bool(getattr(member, "is_member", False))
    return False


def chat_member_event(update: ChatMemberUpdated, scope: TranslationScope) -> MemberJoined | MemberLeft | None:
    """A join or leave from a ``chat_member`` update, judged by the status transition (promotions are neither)."""
    if not scope.is_community_chat(update.chat):
        return None
    was, now = is_member(update.old_chat_member), is_member(update.new_chat_member)
    if was == now:
        return None
    user = member_ref(update.new_chat_member.user)
    channel = channel_ref(update.chat)
    if now:
        return MemberJoined(Platform.TELEGRAM, scope.community, user, update.date, channel)
    return MemberLeft(Platform.TELEGRAM, scope.community, user, update.date, channel)


def reaction_key(reaction: ReactionType) -> str:
    """A stable name for a reaction: the emoji itself, ``custom:<id>`` for custom emoji, ``paid`` for stars."""
    if isinstance(reaction, ReactionTypeEmoji):
        return reaction.emoji
    if isinstance(reaction, ReactionTypeCustomEmoji):
        return f"custom:{reaction.custom_emoji_id}"
    if isinstance(reaction, ReactionTypePaid):
        return "paid"
    return str(reaction.type)


def reaction_events(update: MessageReactionUpdated, scope: TranslationScope) -> list[ReactionEvent]:
    """One event per emoji added or removed: Telegram sends the member's old and new reaction sets."""
    if not scope.is_community_chat(update.chat):
        return []
    if update.user is not None:
        member = member_ref(update.user)
    elif update.actor_chat is not None:
        member = chat_actor_ref(update.actor_chat)
    else:
        return []
    old = [reaction_key(r) for r in update.old_reaction]
    new = [reaction_key(r) for r in update.new_reaction]
    channel = channel_ref(update.chat)

    def event(emoji: str, added: bool) -> ReactionEvent:
        return ReactionEvent(
            platform=Platform.TELEGRAM,
            community=scope.community,
            channel=channel,
            message_id=str(update.message_id),
            member=member,
            emoji=emoji,
            occurred_at=update.date,
            added=added,
        )

    removed = [event(e, False) for e in old if e not in new]
    added = [event(e, True) for e in new if e not in old]
    return removed + added


def activity_events(update: Update, scope: TranslationScope) -> list[ActivityEvent]:
    """Every activity event an update carries (empty for commands' chats, edits, payments, other chats).

    Command messages are not activity: they are talking to the bot, not to the community. The caller decides
    what is a command (it knows which commands exist) and does not call this for them.
    """
    events: list[ActivityEvent] = []
    if update.message is not None:
        message = update.message
        found = message_event(message, scope)
        if found is not None:
            events.append(found)
        events.extend(membership_events(message, scope))
    elif update.message_reaction is not None:
        events.extend(reaction_events(update.message_reaction, scope))
    elif update.chat_member is not None:
        membership = chat_member_event(update.chat_member, scope)
        if membership is not None:
            events.append(membership)
    return events


def command_invocation(
    command: ParsedCommand,
    *,
    user: User,
    chat: Chat | None,
    occurred_at: datetime,
    scope: TranslationScope,
    thread_id: int | None = None,
    options: tuple[tuple[str, str], ...] = (),
) -> CommandInvocation:
    """The neutral invocation for a command sent by ``user`` in ``chat`` (None: a private chat we cannot see)."""
    private = chat is None or chat.type == Chat.PRIVATE
    return CommandInvocation(
        platform=Platform.TELEGRAM,
        community=scope.community,
        name=command.name,
        invoker=member_ref(user),
        occurred_at=occurred_at,
        args=command.args,
        channel=None if chat is None else channel_ref(chat, thread_id),
        is_private=private,
        options=options,
    )


def callback_command(query: CallbackQuery, bot_username: str | None) -> ParsedCommand | None:
    """The command line a ``command`` button carries in its callback data."""
    return parse_command(query.data, bot_username)


def purchase_event(
    payment: SuccessfulPayment, *, buyer: User, course_id: str, occurred_at: datetime, community: str
) -> PurchaseEvent:
    """A Stars payment, keyed by ``telegram_payment_charge_id`` so a redelivery is stored once.

    ``course_id`` comes from the verified invoice payload (the caller checks the signature). A subscription
    payment (the first one and every renewal) carries ``subscription_expiration_date``: access ends then unless
    the next payment comes.
    """
    ends = payment.subscription_expiration_date
    return PurchaseEvent(
        platform=Platform.TELEGRAM,
        community=community,
        charge_id=payment.telegram_payment_charge_id,
        member=member_ref(buyer),
        course_id=course_id,
        amount=payment.total_amount,
        currency=payment.currency,
        occurred_at=occurred_at,
        source=PurchaseSource.TELEGRAM_STARS,
        provider_charge_id=payment.provider_payment_charge_id or None,
        access_ends_at=ends.astimezone(UTC) if ends is not None else None,
    )


def refund_event(payment: RefundedPayment, *, occurred_at: datetime, community: str) -> RefundEvent:
    """A refund Telegram reports (ours through ``refundStarPayment``, or one Telegram made)."""
    return RefundEvent(
        platform=Platform.TELEGRAM,
        community=community,
        charge_id=payment.telegram_payment_charge_id,
        occurred_at=occurred_at,
        reason="refunded in Telegram",
    )


class MembershipDeduper:
    """Gives both deliveries of one join (or leave) the same timestamp, so storage stores it once.

    It remembers, per chat and member, the last membership change it passed on. A change of the same kind within
    ``window`` is the second delivery of it and gets the remembered timestamp; a change of the other kind (a
    leave after a join) starts over, so a quick leave and re-join still count. Memory is pruned as it goes.
    """

    def __init__(self, window: timedelta = timedelta(minutes=2)) -> None:
        """Create a deduper; ``window`` is how far apart the two deliveries of one change may be."""
        self.window = window
        self._last: dict[tuple[str, str], tuple[bool, datetime]] = {}

    def __call__(self, event: MemberJoined | MemberLeft) -> MemberJoined | MemberLeft:
        """Return the event, with the first delivery's timestamp if it repeats one."""
        joined = isinstance(event, MemberJoined)
        key = (event.channel.channel_id if event.channel else "", event.member.user_id)
        self._prune(event.occurred_at)
        previous = self._last.get(key)
        if previous is not None and previous[0] == joined and abs(event.occurred_at - previous[1]) <= self.window:
            if event.occurred_at == previous[1]:
                return event
            cls = MemberJoined if joined else MemberLeft
            return cls(event.platform, event.community, event.member, previous[1], event.channel)
        self._last[key] = (joined, event.occurred_at)
        return event

    def _prune(self, now: datetime) -> None:
        if len(self._last) < 1024:
            return
        horizon = now - self.window * 2
        for key in [k for k, (_, at) in self._last.items() if at < horizon]:
            del self._last[key]
