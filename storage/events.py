"""The platform-neutral event vocabulary.

Adapters translate platform payloads into these frozen dataclasses; nothing from ``discord`` or ``telegram``
ever passes the adapter. Every event names its platform and the community it belongs to, carries platform ids
as strings (Telegram ids are integers, Discord ids are snowflakes; strings hold both without loss) and a
UTC-aware timestamp. Events validate themselves on construction so that a payload with a missing or malformed
field fails loudly at the edge instead of writing a half-row later.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal


class Platform(enum.StrEnum):
    """Where an event came from."""

    DISCORD = "discord"
    TELEGRAM = "telegram"
    CONSOLE = "console"
    SIMULATED = "simulated"


class EventError(ValueError):
    """An event was built from incomplete or malformed data."""


def _require_utc(name: str, value: datetime) -> None:
    if not isinstance(value, datetime):
        raise EventError(f"{name}: expected a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise EventError(f"{name}: expected a time-zone-aware datetime, got naive {value.isoformat()}")


def _require_id(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise EventError(f"{name}: expected a non-empty string id, got {value!r}")


def _normalise_utc(obj: object, name: str) -> None:
    """Store timestamps in UTC so equal instants compare and hash equal whatever zone they came in."""
    value: datetime = getattr(obj, name)
    _require_utc(name, value)
    if value.tzinfo is not UTC:
        object.__setattr__(obj, name, value.astimezone(UTC))


_CODE_RE = re.compile(r"```|`[^`\n]+`")
_LINK_RE = re.compile(r"https?://\S+|www\.\S+\.\S+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TextFacts:
    """What cohortbot keeps of a message's text when text storage is off."""

    length: int
    has_code: bool
    has_link: bool


def text_facts(text: str) -> TextFacts:
    """Reduce message text to the metadata cohortbot stores by default.

    Args:
        text: The message text as the member wrote it.

    Returns:
        Its length in characters and whether it contains code (inline or fenced) or a link.
    """
    return TextFacts(length=len(text), has_code=bool(_CODE_RE.search(text)), has_link=bool(_LINK_RE.search(text)))


@dataclass(frozen=True, slots=True)
class MemberRef:
    """A platform account as seen in an event.

    Attributes:
        user_id: The platform's user id.
        display_name: The name shown in the community, if the platform sent one.
        is_bot: Bot accounts are stored (so replies to them resolve) but never counted in analytics.
        username: The platform's unique handle without ``@`` (Telegram), if it sent one: admin commands name
            members by it, never by display name.
    """

    user_id: str
    display_name: str | None = None
    is_bot: bool = False
    username: str | None = None

    def __post_init__(self) -> None:
        _require_id("user_id", self.user_id)


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """Where something happened.

    ``channel_id`` is the scope in which the platform numbers messages: a Telegram chat, or a Discord channel or
    thread. ``thread_id`` is a sub-channel inside it that shares the numbering (a Telegram forum topic).
    ``parent_id`` is the channel a Discord thread hangs off.
    """

    channel_id: str
    name: str | None = None
    thread_id: str | None = None
    parent_id: str | None = None

    def __post_init__(self) -> None:
        _require_id("channel_id", self.channel_id)
        if self.thread_id is not None:
            _require_id("thread_id", self.thread_id)
        if self.parent_id is not None:
            _require_id("parent_id", self.parent_id)


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A member posted a message. Only metadata unless the owner turned text storage on."""

    platform: Platform
    community: str
    message_id: str
    channel: ChannelRef
    author: MemberRef
    occurred_at: datetime
    length: int
    has_code: bool = False
    has_link: bool = False
    reply_to_message_id: str | None = None
    reply_to_user_id: str | None = None
    attachments: int = 0
    text: str | None = None
    imported_reactions: int = 0
    """Reaction totals from a history export, whose reactors are unknown (live reactions are ReactionEvents)."""

    def __post_init__(self) -> None:
        _require_id("message_id", self.message_id)
        _normalise_utc(self, "occurred_at")
        if self.length < 0:
            raise EventError(f"length: expected a non-negative integer, got {self.length}")
        if self.attachments < 0:
            raise EventError(f"attachments: expected a non-negative integer, got {self.attachments}")
        if self.imported_reactions < 0:
            raise EventError(f"imported_reactions: expected a non-negative integer, got {self.imported_reactions}")

    @property
    def is_reply(self) -> bool:
        """Whether the message answers another message."""
        return self.reply_to_message_id is not None or self.reply_to_user_id is not None


@dataclass(frozen=True, slots=True)
class ReactionEvent:
    """A member added (``added=True``) or removed a reaction on a message.

    ``message_author_id`` is the author of the reacted message when the platform says so (Discord does);
    otherwise storage looks the author up among stored messages.
    """

    platform: Platform
    community: str
    channel: ChannelRef
    message_id: str
    member: MemberRef
    emoji: str
    occurred_at: datetime
    added: bool = True
    message_author_id: str | None = None

    def __post_init__(self) -> None:
        _require_id("message_id", self.message_id)
        _normalise_utc(self, "occurred_at")
        if not self.emoji:
            raise EventError("emoji: expected a non-empty string")


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member joined the community (or one of its chats)."""

    platform: Platform
    community: str
    member: MemberRef
    occurred_at: datetime
    channel: ChannelRef | None = None

    def __post_init__(self) -> None:
        _normalise_utc(self, "occurred_at")


@dataclass(frozen=True, slots=True)
class MemberLeft:
    """A member left, or was removed from, the community."""

    platform: Platform
    community: str
    member: MemberRef
    occurred_at: datetime
    channel: ChannelRef | None = None

    def __post_init__(self) -> None:
        _normalise_utc(self, "occurred_at")


class PurchaseSource(enum.StrEnum):
    """How a purchase reached cohortbot."""

    TELEGRAM_STARS = "telegram_stars"
    DISCORD_ENTITLEMENT = "discord_entitlement"
    GRANT = "grant"
    IMPORT = "import"
    SIMULATED = "simulated"
    STRIPE = "stripe"  # a card payment through Stripe Checkout
    CHECKOUT = "checkout"  # another checkout, through the generic signed webhook


@dataclass(frozen=True, slots=True)
class PurchaseEvent:
    """A member bought a course.

    ``charge_id`` is the platform's idempotency key (Telegram ``telegram_payment_charge_id``, Discord entitlement
    id, or a generated id for admin grants): the same charge is stored once however often it is delivered.
    ``amount`` is in the currency's minor units (cents; Telegram Stars are whole stars, currency ``XTR``).
    ``is_test`` marks a test purchase (a Discord test-mode entitlement: no money, never revenue);
    ``access_ends_at`` is when access ends without a refund (an entitlement that expires), if known.
    """

    platform: Platform
    community: str
    charge_id: str
    member: MemberRef
    course_id: str
    amount: int
    currency: str
    occurred_at: datetime
    source: PurchaseSource
    provider_charge_id: str | None = None
    granted_by: str | None = None
    is_test: bool = False
    access_ends_at: datetime | None = None
    # The subscription this payment pays a period of, when the payment names it (a Stripe invoice); not stored on
    # the purchase: the subscription's period row links them.
    subscription_ref: str | None = None

    def __post_init__(self) -> None:
        _require_id("charge_id", self.charge_id)
        _require_id("course_id", self.course_id)
        _normalise_utc(self, "occurred_at")
        if self.access_ends_at is not None:
            _normalise_utc(self, "access_ends_at")
        if self.amount < 0:
            raise EventError(f"amount: expected a non-negative integer, got {self.amount}")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise EventError(f"currency: expected a 3-letter code such as EUR or XTR, got {self.currency!r}")

    def amount_decimal(self) -> Decimal:
        """The amount in major units (XTR has no minor unit)."""
        return Decimal(self.amount) if self.currency == "XTR" else Decimal(self.amount) / 100


@dataclass(frozen=True, slots=True)
class RefundEvent:
    """A purchase was refunded, in full. Identified by the purchase's ``charge_id``."""

    platform: Platform
    community: str
    charge_id: str
    occurred_at: datetime
    reason: str | None = None
    refunded_by: str | None = None

    def __post_init__(self) -> None:
        _require_id("charge_id", self.charge_id)
        _normalise_utc(self, "occurred_at")


@dataclass(frozen=True, slots=True)
class CommandInvocation:
    """A member ran a command (``/stats``, ``/report`` ...). Dispatched to handlers, not stored as activity."""

    platform: Platform
    community: str
    name: str
    invoker: MemberRef
    occurred_at: datetime
    args: tuple[str, ...] = ()
    channel: ChannelRef | None = None
    is_private: bool = False
    options: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _normalise_utc(self, "occurred_at")
        if not re.fullmatch(r"[a-z0-9_]{1,32}", self.name):
            raise EventError(f"name: expected a command name like 'stats', got {self.name!r}")


ActivityEvent = MessageEvent | ReactionEvent | MemberJoined | MemberLeft
"""Events that go through the batched writer."""

LedgerEvent = PurchaseEvent | RefundEvent
"""Events that are committed one by one before the caller is told they are stored."""

Event = ActivityEvent | LedgerEvent | CommandInvocation
