"""Pure translation: Discord gateway payloads (the ``d`` of a dispatch) → cohortbot events.

The adapter hands every gateway dispatch it cares about to these functions as the plain ``dict`` Discord sent,
so what is tested here on recorded payloads is exactly what runs in production. Nothing here does I/O; what a
payload does not say (a thread's parent, the current time for events without a timestamp) is passed in.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bot.config import CourseSettings
from bot.core.reported_subscriptions import ReportedStatus, ReportedSubscription
from bot.core.surveys import PollVote
from storage.events import (
    ChannelRef,
    CommandInvocation,
    EventError,
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

Payload = Mapping[str, Any]
ChannelLookup = Callable[[str], ChannelRef | None]
"""Resolves a channel id to what the client's cache knows (name, and the parent of a thread)."""

# Member-authored message types: DEFAULT and REPLY. Everything else (joins, boosts, pins, thread-starter and
# slash-command messages) is written by Discord or a bot, not typed by the member.
_MEMBER_MESSAGE_TYPES = frozenset({0, 19})
# message_reference.type: 0 = a reply, 1 = a forward (a forwarded message answers nobody).
_REFERENCE_FORWARD = 1
MANAGE_GUILD = 0x20
ADMINISTRATOR = 0x8
INTERACTION_COMMAND = 2
INTERACTION_COMPONENT = 3
COMMAND_BUTTON_PREFIX = "cmd:"
# Application-command option types: 1 sub-command, 2 sub-command group, 6 user.
_SUBCOMMAND_TYPES = frozenset({1, 2})
_USER_OPTION = 6
# Discord sells in US dollars; when the course has no configured money price the amount is unknown (0).
ENTITLEMENT_FALLBACK_CURRENCY = "USD"
# Discord's entitlement type for purchases made in test mode by the app's team (no money moves).
ENTITLEMENT_TEST_MODE = 4
_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
# Subscription statuses as Discord sends them. The guide "Implementing App Subscriptions" and the libraries agree on
# 0 ACTIVE, 1 ENDING, 2 INACTIVE (the status table on the Subscription resource page lists 1 and 2 the other way).
SUBSCRIPTION_STATUSES = {0: ReportedStatus.ACTIVE, 1: ReportedStatus.ENDING, 2: ReportedStatus.INACTIVE}
# Snowflakes carry their creation time: milliseconds since Discord's epoch (2015-01-01), above the low 22 bits.
DISCORD_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)


def parse_time(value: str) -> datetime:
    """Parse a Discord ISO-8601 timestamp (always with an offset) into an aware datetime.

    Raises:
        EventError: The value is not a time-zone-aware ISO timestamp.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise EventError(f"timestamp: expected an ISO-8601 time, got {value!r}") from exc
    if parsed.tzinfo is None:
        raise EventError(f"timestamp: expected a time zone offset, got {value!r}")
    return parsed


def member_ref(user: Payload, member: Payload | None = None) -> MemberRef:
    """A Discord user (and their guild membership, for the nickname) as a :class:`MemberRef`."""
    name = (member or {}).get("nick") or user.get("global_name") or user.get("username")
    return MemberRef(str(user["id"]), display_name=name or None, is_bot=bool(user.get("bot") or user.get("system")))


def _snowflake(value: object) -> str | None:
    # "0" is what Discord sends for "no such id" in a few places (e.g. message_author_id on some reactions).
    if value is None or str(value) in ("", "0"):
        return None
    return str(value)


def _channel(channel_id: str, lookup: ChannelLookup | None) -> ChannelRef:
    found = lookup(channel_id) if lookup is not None else None
    return found if found is not None else ChannelRef(channel_id)


def in_guilds(payload: Payload, guild_ids: Iterable[int]) -> bool:
    """Whether a dispatch belongs to one of the configured guilds (DMs and other servers do not)."""
    guild_id = payload.get("guild_id")
    return guild_id is not None and int(guild_id) in set(guild_ids)


def message_event(
    payload: Payload,
    *,
    community: str,
    store_text: bool,
    channels: ChannelLookup | None = None,
) -> MessageEvent | None:
    """``MESSAGE_CREATE`` → :class:`MessageEvent`; None for bots, webhooks and system messages.

    Args:
        payload: The message object.
        community: The community name.
        store_text: Keep the text itself (``[storage] store_text``); otherwise only its facts are kept.
        channels: Resolves the channel (a thread → its parent) from the client's cache.

    Returns:
        The event, or None when the message is not a member's own message.
    """
    author = payload["author"]
    if author.get("bot") or author.get("system") or payload.get("webhook_id"):
        return None
    if payload.get("type", 0) not in _MEMBER_MESSAGE_TYPES:
        return None
    # Without the Message Content intent Discord sends content as "": then only the length facts are unknown.
    content = payload.get("content") or ""
    facts = text_facts(content)
    reply_to_message_id = reply_to_user_id = None
    reference = payload.get("message_reference")
    if reference and reference.get("type", 0) != _REFERENCE_FORWARD:
        reply_to_message_id = _snowflake(reference.get("message_id"))
        referenced = payload.get("referenced_message")
        if referenced:
            reply_to_user_id = _snowflake(referenced.get("author", {}).get("id"))
    return MessageEvent(
        platform=Platform.DISCORD,
        community=community,
        message_id=str(payload["id"]),
        channel=_channel(str(payload["channel_id"]), channels),
        author=member_ref(author, payload.get("member")),
        occurred_at=parse_time(payload["timestamp"]),
        length=facts.length,
        has_code=facts.has_code,
        has_link=facts.has_link,
        reply_to_message_id=reply_to_message_id,
        reply_to_user_id=reply_to_user_id,
        attachments=len(payload.get("attachments") or ()),
        text=content if store_text and content else None,
    )


def emoji_key(emoji: Payload) -> str:
    """A stable name for a reaction emoji: the character itself, or ``name:id`` for a custom emoji."""
    name, emoji_id = emoji.get("name"), emoji.get("id")
    if emoji_id:
        return f"{name}:{emoji_id}" if name else str(emoji_id)
    return str(name or "?")


def reaction_event(
    payload: Payload,
    *,
    community: str,
    added: bool,
    now: datetime,
    self_id: str | None = None,
    channels: ChannelLookup | None = None,
) -> ReactionEvent | None:
    """``MESSAGE_REACTION_ADD``/``REMOVE`` → :class:`ReactionEvent` (also for messages the client never cached).

    Args:
        payload: The reaction dispatch.
        community: The community name.
        added: True for ADD, False for REMOVE.
        now: When it was received (reaction dispatches carry no timestamp).
        self_id: The bot's own user id: its reactions are not member activity.
        channels: Resolves the channel from the client's cache.

    Returns:
        The event, or None for the bot's own or another bot's reaction.
    """
    user_id = str(payload["user_id"])
    member = payload.get("member")
    user = (member or {}).get("user")
    if user_id == self_id or (user and user.get("bot")):
        return None
    ref = member_ref(user, member) if user else MemberRef(user_id)
    return ReactionEvent(
        platform=Platform.DISCORD,
        community=community,
        channel=_channel(str(payload["channel_id"]), channels),
        message_id=str(payload["message_id"]),
        member=ref,
        emoji=emoji_key(payload.get("emoji") or {}),
        occurred_at=now,
        added=added,
        message_author_id=_snowflake(payload.get("message_author_id")),
    )


def member_joined(payload: Payload, *, community: str, now: datetime) -> MemberJoined | None:
    """``GUILD_MEMBER_ADD`` → :class:`MemberJoined`; None for bots."""
    user = payload["user"]
    if user.get("bot"):
        return None
    joined = payload.get("joined_at")
    return MemberJoined(
        platform=Platform.DISCORD,
        community=community,
        member=member_ref(user, payload),
        occurred_at=parse_time(joined) if joined else now,
    )


def member_left(payload: Payload, *, community: str, now: datetime) -> MemberLeft | None:
    """``GUILD_MEMBER_REMOVE`` → :class:`MemberLeft` (the dispatch has no timestamp: ``now``); None for bots."""
    user = payload["user"]
    if user.get("bot"):
        return None
    return MemberLeft(platform=Platform.DISCORD, community=community, member=member_ref(user), occurred_at=now)


# ------------------------------------------------------------------------------------------------------------
# Entitlements (Discord SKU purchases)


def course_for_sku(sku_id: object, courses: Sequence[CourseSettings]) -> CourseSettings | None:
    """The configured course sold as this SKU, if any."""
    for course in courses:
        if course.discord_sku_id is not None and str(course.discord_sku_id) == str(sku_id):
            return course
    return None


def course_price(course: CourseSettings) -> tuple[int, str]:
    """What an entitlement of ``course`` is recorded as: (amount in minor units, currency).

    Entitlement payloads carry no price (it is set per SKU in the Developer Portal), so the configured ``price``
    and ``currency`` are used; a course without them is recorded at 0 USD (Discord's selling currency), which
    counts the sale without inventing revenue.
    """
    if course.price is not None and course.currency:
        minor = (Decimal(course.price) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return int(minor), course.currency
    return 0, ENTITLEMENT_FALLBACK_CURRENCY


def entitlement_purchase(
    payload: Payload, *, community: str, courses: Sequence[CourseSettings], now: datetime
) -> PurchaseEvent | None:
    """``ENTITLEMENT_CREATE``/``UPDATE`` → :class:`PurchaseEvent` (charge id = entitlement id: redelivery is harmless).

    A test-mode entitlement (type 4) is a test purchase (``is_test``, amount 0); ``ends_at`` becomes the purchase's
    ``access_ends_at``.

    Returns:
        The purchase, or None when the SKU is not a configured course, the entitlement has no user (a guild
        subscription) or it is already deleted.
    """
    course = course_for_sku(payload.get("sku_id"), courses)
    user_id = _snowflake(payload.get("user_id"))
    if course is None or user_id is None or payload.get("deleted"):
        return None
    amount, currency = course_price(course)
    starts = payload.get("starts_at")
    ends = payload.get("ends_at")
    is_test = payload.get("type") == ENTITLEMENT_TEST_MODE
    return PurchaseEvent(
        platform=Platform.DISCORD,
        community=community,
        charge_id=str(payload["id"]),
        member=MemberRef(user_id),
        course_id=course.id,
        currency=currency,
        occurred_at=parse_time(starts) if starts else now,
        source=PurchaseSource.DISCORD_ENTITLEMENT,
        # A test-mode purchase moved no money: recorded, never revenue, and at no price.
        amount=0 if is_test else amount,
        is_test=is_test,
        access_ends_at=parse_time(ends) if isinstance(ends, str) else None,
    )


def entitlement_refund(payload: Payload, *, community: str, now: datetime, reason: str) -> RefundEvent:
    """``ENTITLEMENT_DELETE`` (or an update marking it deleted) → :class:`RefundEvent` for the same charge id."""
    return RefundEvent(
        platform=Platform.DISCORD,
        community=community,
        charge_id=str(payload["id"]),
        occurred_at=now,
        reason=reason,
    )


def entitlement_ended(payload: Payload, now: datetime) -> bool:
    """Whether a (subscription) entitlement's ``ends_at`` has passed: access ends, but nothing was refunded."""
    ends = payload.get("ends_at")
    return isinstance(ends, str) and parse_time(ends) <= now


def entitlement_subscription_id(payload: Payload) -> str | None:
    """The subscription an entitlement belongs to, when Discord names it (``subscription_id``; not always sent)."""
    return _snowflake(payload.get("subscription_id"))


def snowflake_time(value: str) -> datetime | None:
    """When a Discord id was made (a subscription's id is its start); None for an id that is not a snowflake."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return DISCORD_EPOCH + timedelta(milliseconds=number >> 22) if number > 0 else None


def subscription_update(
    event: str, payload: Payload, *, community: str, courses: Sequence[CourseSettings], now: datetime
) -> ReportedSubscription | None:
    """``SUBSCRIPTION_CREATE``/``UPDATE``/``DELETE`` → :class:`ReportedSubscription`.

    The course is the first of ``sku_ids`` that is a course's ``discord_sku_id``; one period costs the course's
    configured price (subscription payloads carry none). A deleted subscription counts as inactive.

    Returns:
        The subscription, or None when no SKU is a configured course, it has no user (a guild subscription) or its
        status is one this version does not know.

    Raises:
        EventError: A period timestamp is missing or not an ISO time.
    """
    course = next((c for sku in payload.get("sku_ids") or () if (c := course_for_sku(sku, courses))), None)
    user_id = _snowflake(payload.get("user_id"))
    deleted = event == "SUBSCRIPTION_DELETE"
    raw_status = payload.get("status")
    known = SUBSCRIPTION_STATUSES.get(raw_status) if isinstance(raw_status, int) else None
    status = ReportedStatus.INACTIVE if deleted else known
    if course is None or user_id is None or status is None:
        return None
    amount, currency = course_price(course)
    subscription_id = str(payload["id"])
    cancelled = payload.get("canceled_at")
    return ReportedSubscription(
        platform=Platform.DISCORD,
        community=community,
        subscription_ref=subscription_id,
        member=MemberRef(user_id),
        course_id=course.id,
        status=status,
        period_start=parse_time(str(payload.get("current_period_start") or "")),
        period_end=parse_time(str(payload.get("current_period_end") or "")),
        created_at=snowflake_time(subscription_id),
        cancelled_at=parse_time(cancelled) if isinstance(cancelled, str) else None,
        amount=amount,
        currency=currency,
        source=PurchaseSource.DISCORD_ENTITLEMENT,
        received_at=now,
    )


# ------------------------------------------------------------------------------------------------------------
# Interactions (slash commands and buttons)


@dataclass(frozen=True, slots=True)
class InteractionCaller:
    """Who pressed or typed: their identity and what the server says they may do."""

    member: MemberRef
    permissions: int
    role_ids: frozenset[str]


def interaction_caller(payload: Payload) -> InteractionCaller:
    """The invoker of an ``INTERACTION_CREATE`` (``member`` in a guild, ``user`` in a DM)."""
    member = payload.get("member")
    if member is not None:
        return InteractionCaller(
            member=member_ref(member["user"], member),
            permissions=int(member.get("permissions") or 0),
            role_ids=frozenset(str(r) for r in member.get("roles") or ()),
        )
    return InteractionCaller(member=member_ref(payload["user"]), permissions=0, role_ids=frozenset())


def is_admin(caller: InteractionCaller, admin_role_ids: Iterable[int]) -> bool:
    """Admin = Manage Server or Administrator in the server, or one of ``[discord] admin_role_ids``.

    Computed from the interaction's own ``member.permissions`` (what Discord resolved for this member in this
    channel), never from the command's default permissions, which a server owner can override.
    """
    if caller.permissions & (MANAGE_GUILD | ADMINISTRATOR):
        return True
    return bool(caller.role_ids & {str(r) for r in admin_role_ids})


def _option_pairs(options: Iterable[Payload]) -> Iterable[tuple[str, str]]:
    for option in options:
        if option.get("type") in _SUBCOMMAND_TYPES:
            yield from _option_pairs(option.get("options") or ())
            continue
        value = option.get("value")
        if value is None:
            continue
        if isinstance(value, bool):
            yield str(option["name"]), "true" if value else "false"
        else:
            # USER options carry the user id; that is what member options expect.
            yield str(option["name"]), str(value)


def command_invocation(payload: Payload, *, community: str, now: datetime) -> CommandInvocation:
    """A slash-command ``INTERACTION_CREATE`` (type 2) → :class:`CommandInvocation` with options by name.

    Sub-command groups are flattened: only leaf option values are kept (cohortbot's commands have none, but a
    payload with them still translates instead of failing).
    """
    data = payload["data"]
    caller = interaction_caller(payload)
    channel_id = payload.get("channel_id")
    return CommandInvocation(
        platform=Platform.DISCORD,
        community=community,
        name=str(data["name"]),
        invoker=caller.member,
        occurred_at=now,
        channel=ChannelRef(str(channel_id)) if channel_id else None,
        is_private=payload.get("guild_id") is None,
        options=tuple(_option_pairs(data.get("options") or ())),
    )


def button_custom_id(command_line: str) -> str:
    """The ``custom_id`` of a command button: ``cmd:`` and the command line it runs."""
    return COMMAND_BUTTON_PREFIX + command_line


def button_invocation(payload: Payload, *, community: str, now: datetime) -> CommandInvocation | None:
    """A button press (``INTERACTION_CREATE`` type 3 with ``custom_id`` ``cmd:/buy py-async``) → the command it runs.

    Returns:
        The invocation as the member who pressed it, or None when the button is not a command button.
    """
    custom_id = str(payload.get("data", {}).get("custom_id", ""))
    if not custom_id.startswith(COMMAND_BUTTON_PREFIX):
        return None
    try:
        words = shlex.split(custom_id.removeprefix(COMMAND_BUTTON_PREFIX))
    except ValueError:
        return None
    if not words:
        return None
    name = words[0].removeprefix("/").lower()
    if not _COMMAND_NAME_RE.fullmatch(name):
        return None
    caller = interaction_caller(payload)
    channel_id = payload.get("channel_id")
    return CommandInvocation(
        platform=Platform.DISCORD,
        community=community,
        name=name,
        invoker=caller.member,
        occurred_at=now,
        args=tuple(words[1:]),
        channel=ChannelRef(str(channel_id)) if channel_id else None,
        is_private=payload.get("guild_id") is None,
    )


def poll_vote(payload: Payload, *, removed: bool) -> PollVote | None:
    """A ``MESSAGE_POLL_VOTE_ADD``/``_REMOVE`` → a vote on the poll in that message (answer ids count from 1).

    Returns:
        The vote (the poll is named by its message id), or None when the payload lacks a voter, message or answer.
    """
    user_id, message_id, answer_id = payload.get("user_id"), payload.get("message_id"), payload.get("answer_id")
    if not user_id or not message_id or not isinstance(answer_id, int) or answer_id < 1:
        return None
    return PollVote(Platform.DISCORD.value, str(message_id), str(user_id), answer_id - 1, removed=removed)
