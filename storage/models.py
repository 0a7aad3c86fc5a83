"""The database schema (SQLAlchemy 2 typed models).

Raw event tables hold what the platforms delivered, each with a uniqueness constraint that makes its platform
event idempotent. Rollup tables (``member_daily_activity``, ``member_activity``, ``community_daily_totals``)
are kept up to date by the writer in the same transaction as the raw rows, so commands and analytics read
small tables instead of scanning events. Rollups count humans only: bot accounts are stored (replies to
them must resolve) but never counted.

Member data: every table that stores something about a member says how ``storage.deletion`` removes it, in
``Table.info["member_data"]``: ``"delete"`` (rows go), ``"detach"`` (rows stay, the member reference is set
to NULL: purchases are kept for accounting) or ``"owner"`` (the ``members`` row itself). A test fails when a
table references ``members`` without saying so.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UTCDateTime

# Explicit constraint names keep Alembic migrations deterministic on both backends (SQLite batch mode needs
# named constraints to alter tables).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (compact, auto-increment); BIGINT would not be.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """A mapped class's ``Table`` (typed: ``__table__`` is declared as a ``FromClause``)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Community(Base):
    """A community: one owner's set of Discord guilds and Telegram chats, analysed together."""

    __tablename__ = "communities"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Daily rollups are bucketed in this zone; changing it means rebuilding rollups (`cohortbot db rebuild-rollups`).
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Member(Base):
    """A member's account on one platform in one community, with their preferences and membership state."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("community_id", "platform", "platform_user_id"),
        {"info": {"member_data": "owner"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(200))
    # The platform's unique handle (Telegram @username, without the @), as last seen. Admin commands find a member
    # by it, never by display name: anyone can rename themself, but a handle is the platform's identity.
    username: Mapped[str | None] = mapped_column(String(64))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Membership state, derived from membership_events (rollup): first join is the cohort; a member is
    # current when they never left or joined again after leaving.
    first_joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    nudges_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    leaderboard_opt_out: Mapped[bool] = mapped_column(Boolean, default=False)
    dm_unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Channel(Base):
    """A place messages are posted: a Telegram chat or forum topic, a Discord channel or thread."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("community_id", "platform", "platform_channel_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    # Telegram forum topics are stored as "<chat id>#<topic id>" under their chat.
    platform_channel_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))


class Message(Base):
    """One message's metadata. ``text`` is only filled when the owner turned text storage on."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "platform_message_id"),
        # No index by member on purpose: it would put every insert on a random page (members are spread over
        # the whole index), and dirty pages are what a write costs. Per-member figures come from rollups;
        # only the rare member deletion scans this table.
        {
            "info": {
                "member_data": "delete",
                "member_columns": {"member_id": "delete", "reply_to_member_id": "detach"},
            }
        },
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    platform_message_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    length: Mapped[int] = mapped_column(Integer)
    has_code: Mapped[bool] = mapped_column(Boolean)
    has_link: Mapped[bool] = mapped_column(Boolean)
    is_reply: Mapped[bool] = mapped_column(Boolean)
    thread_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    reply_to_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    attachments: Mapped[int] = mapped_column(SmallInteger, default=0)
    text: Mapped[str | None] = mapped_column(Text)
    # Reaction totals from a history export (whose reactors are unknown); live reactions are rows in `reactions`.
    imported_reactions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Reaction(Base):
    """A member's reaction with one emoji on one message.

    Removal keeps the row as a tombstone (``removed_at``) so that a late or replayed "added" event older than the
    removal cannot bring it back. A removal seen before its addition is stored as a tombstone with no
    ``reacted_at``. Only live rows (``removed_at IS NULL``) count.
    """

    __tablename__ = "reactions"
    __table_args__ = (
        UniqueConstraint("channel_id", "platform_message_id", "member_id", "emoji"),
        Index("ix_reactions_member_id", "member_id"),
        {
            "info": {
                "member_data": "delete",
                "member_columns": {"member_id": "delete", "target_member_id": "detach"},
            }
        },
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    platform_message_id: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    emoji: Mapped[str] = mapped_column(String(100))
    reacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The author of the reacted message, when known: reactions received count towards engagement.
    target_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))


class MembershipEvent(Base):
    """A member joined or left. The same join (member, kind, instant) delivered twice is stored once."""

    __tablename__ = "membership_events"
    __table_args__ = (
        UniqueConstraint("member_id", "kind", "occurred_at"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "join" | "leave"
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))


class Course(Base):
    """A course sold in the community, synced from ``[[courses]]`` in the config."""

    __tablename__ = "courses"
    __table_args__ = (UniqueConstraint("community_id", "course_key"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    course_key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    price_stars: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    currency: Mapped[str | None] = mapped_column(String(3))
    # A course removed from the config stays (its sales history must still add up) but is no longer sold.
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Purchase(Base):
    """A sale. Kept for accounting when the member asks to be forgotten, detached from the person."""

    __tablename__ = "purchases"
    __table_args__ = (
        UniqueConstraint("platform", "charge_id"),
        Index("ix_purchases_member_id", "member_id"),
        {
            "info": {
                "member_data": "detach",
                "member_columns": {"member_id": "detach", "granted_by_member_id": "detach"},
            }
        },
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    platform: Mapped[str] = mapped_column(String(16))
    charge_id: Mapped[str] = mapped_column(String(200))
    provider_charge_id: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units; whole stars for XTR
    currency: Mapped[str] = mapped_column(String(3))
    purchased_at: Mapped[datetime] = mapped_column(UTCDateTime())
    granted_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    # When the buyer was given access (invite link, role). Empty after a crash between recording the payment and
    # granting: the platform delivers the payment again, and the replay finishes the grant instead of skipping it.
    access_granted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A test purchase (a Discord test-mode entitlement): kept so the flow can be checked, never revenue.
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When access ends without a refund (a Discord entitlement that expired or was cancelled): from then on the
    # purchase no longer gives access, and the daily reconciliation takes the role away instead of giving it back.
    access_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Refund(Base):
    """A full refund of one purchase; a purchase is refunded at most once."""

    __tablename__ = "refunds"
    __table_args__ = ({"info": {"member_data": "detach", "member_columns": {"refunded_by_member_id": "detach"}}},)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id", ondelete="CASCADE"), unique=True)
    refunded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(500))
    refunded_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))


class UnmatchedPayment(Base):
    """Money that arrived but bought nothing.

    A payment the bot could not match to a course and buyer, or one whose payer was not the member the invoice was
    made for. Kept so an admin can refund it (``/refund charge <id>``) and so a redelivery is refunded or reported
    once, not again.
    """

    __tablename__ = "unmatched_payments"
    __table_args__ = (
        UniqueConstraint("platform", "charge_id"),
        {
            "info": {
                "member_data": "detach",
                "member_columns": {"member_id": "detach", "refunded_by_member_id": "detach"},
            }
        },
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))  # who paid
    platform: Mapped[str] = mapped_column(String(16))
    charge_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    problem: Mapped[str] = mapped_column(String(500))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refunded_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))


class Nudge(Base):
    """A decision to nudge an inactive member (``group="nudged"``) or to hold them out as the control group."""

    __tablename__ = "nudges"
    __table_args__ = (
        Index("ix_nudges_member_id", "member_id"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    group: Mapped[str] = mapped_column(String(16))  # "nudged" | "holdout"
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(String(500))
    reactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Digest(Base):
    """One weekly digest per community and ISO week, claimed by a unique row before it is sent."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("community_id", "week"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))  # ISO week, "2026-W47"
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    # The owners' version as delivered (plain text), so it can be shown again verbatim; it names members, and the
    # deletion path scrubs it like every free-text column. NULL for digests sent before 0005 or to no owner.
    owner_text: Mapped[str | None] = mapped_column(Text)


# --- rollups: maintained by storage.ingest in the same transaction as the raw rows --------------------------


class JobRun(Base):
    """One run of a scheduled job (digest, nudges, reconciliation, refresh): when, where, and how it ended."""

    __tablename__ = "job_runs"
    __table_args__ = (Index(None, "community_id", "job", "started_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    job: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "running" until it ends, then "ok", "skipped" (nothing to do, e.g. the digest was already sent) or "failed".
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(100))


class MemberDailyActivity(Base):
    """Per member and local day (community time zone): what they did. A row exists only if a count is > 0.

    Keyed by (community, day, member) and stored without a rowid on SQLite: the rows a batch touches are the
    newest days', so they sit together at the end of the table instead of on one random page per member.
    """

    __tablename__ = "member_daily_activity"
    __table_args__ = ({"info": {"member_data": "delete", "rollup": True}, "sqlite_with_rowid": False},)

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)  # replies to someone else
    reactions_given: Mapped[int] = mapped_column(Integer, default=0)
    reactions_received: Mapped[int] = mapped_column(Integer, default=0)  # from others, on their messages


class MemberActivity(Base):
    """Per member: first and last activity (message or live reaction given) and lifetime totals.

    First and last message times are kept apart: messages are never taken back, so when a reaction is removed
    the member's first/last activity is recomputed from these and the member's live reactions alone.
    """

    __tablename__ = "member_activity"
    __table_args__ = ({"info": {"member_data": "delete", "rollup": True}},)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    first_active_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_active_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    reactions_given: Mapped[int] = mapped_column(BigInteger, default=0)


class CommunityDailyTotals(Base):
    """Per community and local day: human messages, reactions (live ones and imported totals), joins, leaves."""

    __tablename__ = "community_daily_totals"
    __table_args__ = ({"info": {"rollup": True}},)

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    reactions: Mapped[int] = mapped_column(BigInteger, default=0)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    leaves: Mapped[int] = mapped_column(Integer, default=0)


class ChannelDailyActivity(Base):
    """Per channel (a thread or forum topic counts as its own channel) and local day: human messages."""

    __tablename__ = "channel_daily_activity"
    __table_args__ = ({"info": {"rollup": True}, "sqlite_with_rowid": False},)

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class CommunityHourlyActivity(Base):
    """Per community, local day and local hour (0-23, community time zone): human messages and reactions given.

    The hour-of-week heatmap sums these by weekday and hour over a range; a row exists only if a count is > 0.
    """

    __tablename__ = "community_hourly_activity"
    __table_args__ = ({"info": {"rollup": True}, "sqlite_with_rowid": False},)

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    reactions: Mapped[int] = mapped_column(Integer, default=0)


class ChannelMemberDaily(Base):
    """Per channel, local day and member: human messages, so a channel's active members are a count of rows."""

    __tablename__ = "channel_member_daily"
    __table_args__ = ({"info": {"member_data": "delete", "rollup": True}, "sqlite_with_rowid": False},)

    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)


class DashboardLogin(Base):
    """A one-time dashboard login link issued to an owner or admin: valid 10 minutes, usable once.

    The link carries ``id`` signed with ``COHORTBOT_SECRET``; the row makes "usable once" hold across processes
    (``cohortbot dashboard link`` issues it, ``cohortbot run`` or ``dashboard serve`` redeems it).
    """

    __tablename__ = "dashboard_logins"
    __table_args__ = ({"info": {"admin_data": "delete"}},)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))  # "telegram", "discord", or "server" for the CLI's link
    platform_user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(200))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DashboardSession(Base):
    """A dashboard session opened by a login link; the cookie holds a random token, the row only its SHA-256."""

    __tablename__ = "dashboard_sessions"
    __table_args__ = (
        Index("ix_dashboard_sessions_community_id_platform_user", "community_id", "platform", "platform_user_id"),
        {"info": {"admin_data": "delete"}},
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Subscription(Base):
    """A member's recurring access to a monthly course on one platform: paid up to ``ends_at``, renewed per payment.

    ``subscription_ref`` is the biller's name for it (the ``telegram_payment_charge_id`` of the first Telegram
    Stars payment, which ``editUserStarSubscription`` takes; a Discord subscription id; Stripe's ``sub_...`` when
    ``provider`` is ``"stripe"``). The reminder, the removal and the come-back message each happen once: their
    columns are claimed before acting.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        UniqueConstraint("platform", "subscription_ref"),
        Index("ix_subscriptions_member_id", "member_id"),
        Index("ix_subscriptions_community_id_ends_at", "community_id", "ends_at"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    platform: Mapped[str] = mapped_column(String(16))
    subscription_ref: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Access is paid up to here; every renewal moves it on (never back).
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The member (or the platform) cancelled: no renewal comes, access still lasts until ends_at.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Access ran out without a renewal and the member was removed from the course chat or role (once).
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The ends_at the renewal reminder was sent for: a renewal moves ends_at on, so the next period reminds again.
    reminded_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the member who lost access was told how to come back (once per ending).
    comeback_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who bills it: None for the chat platform itself (Telegram Stars, Discord), "stripe" for a card subscription
    # (then ``subscription_ref`` is Stripe's subscription id, and cancelling goes through Stripe).
    provider: Mapped[str | None] = mapped_column(String(16))


class SubscriptionPeriod(Base):
    """One paid period of a subscription, keyed by the platform's charge id: a renewal delivered twice counts once."""

    __tablename__ = "subscription_periods"
    __table_args__ = (
        UniqueConstraint("platform", "charge_id"),
        Index("ix_subscription_periods_subscription_id", "subscription_id"),
        Index("ix_subscription_periods_member_id", "member_id"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    charge_id: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookEvent(Base):
    """A payment webhook event (Stripe's event id, or the generic checkout's): applied once.

    Taken before its effect is applied (``handled_at`` NULL) and marked handled once the effect is committed, before
    the webhook is answered 2xx: a redelivery, a replay or a second process receiving the same event finds it here
    and changes nothing (or, while the first delivery is still at work, is told to come back later). A delivery that
    crashed half-way leaves a stale lease that the next delivery takes over.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))  # "stripe" or "checkout"
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    # When the delivery that is applying it took it (a lease: a crashed delivery's event is taken over later).
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When its effect was committed; NULL while a delivery is still applying it.
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CheckoutClaim(Base):
    """A paid checkout whose buyer has no chat account yet (bought on the website): a one-time claim code.

    Only the code's SHA-256 is stored; the buyer sees the code on the checkout's success page and sends
    ``/claim CODE`` to the bot, which records the purchase for their account and gives access. Deleted with the
    member who claimed it; a refund before the claim voids it.
    """

    __tablename__ = "checkout_claims"
    __table_args__ = (
        UniqueConstraint("provider", "session_id"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str] = mapped_column(String(200))  # Stripe's Checkout Session id, or the order id
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    charge_id: Mapped[str] = mapped_column(String(200))  # the id a refund names (Stripe's PaymentIntent)
    course_key: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class QuestionPing(Base):
    """The one ping a help question left unanswered gets, claimed by a unique row before it is sent.

    Goes with its message (a deleted member's questions take their claims with them).
    """

    __tablename__ = "question_pings"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Survey(Base):
    """A question put to the community: an NPS question with 0–10 buttons, or a native platform poll.

    ``origin`` says how it reached members: ``channel`` (posted where an admin ran ``/survey``), ``dm`` (sent
    privately to a course's buyers) or ``after_purchase`` (the automatic question ``[surveys] after_purchase_days``
    after a purchase; one such survey per course). A native poll is found again by the platform's ids when its
    answers arrive (Telegram's ``poll_id``, Discord's message id). The admin who created it is detached when forgotten.
    """

    __tablename__ = "surveys"
    __table_args__ = (
        UniqueConstraint("platform", "poll_id"),
        Index("ix_surveys_community_id_created_at", "community_id", "created_at"),
        {"info": {"member_data": "detach"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # "nps" | "poll"
    origin: Mapped[str] = mapped_column(String(16))  # "channel" | "dm" | "after_purchase"
    question: Mapped[str] = mapped_column(String(300))
    # A poll's answers as a JSON array of strings; None for NPS (the scale is 0–10).
    options: Mapped[str | None] = mapped_column(Text)
    course_id: Mapped[int | None] = mapped_column(ForeignKey("courses.id", ondelete="RESTRICT"))
    platform: Mapped[str | None] = mapped_column(String(16))
    channel_id: Mapped[str | None] = mapped_column(String(64))  # where it was posted ("<chat>#<topic>" for topics)
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    poll_id: Mapped[str | None] = mapped_column(String(128))  # Telegram's poll id; Discord: the message id
    # Members who could answer a channel post (the community's human members then); DMs count their deliveries.
    audience: Mapped[int | None] = mapped_column(Integer)
    created_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyResponse(Base):
    """One member's answer to one survey: a changed vote or score updates the row (one answer per member)."""

    __tablename__ = "survey_responses"
    __table_args__ = (
        UniqueConstraint("survey_id", "member_id"),
        Index("ix_survey_responses_member_id", "member_id"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    score: Mapped[int | None] = mapped_column(SmallInteger)  # NPS: 0..10
    option: Mapped[int | None] = mapped_column(SmallInteger)  # poll: the chosen answer's index, from 0
    # Written by the member after a score, only because they chose to (the question says so).
    comment: Mapped[str | None] = mapped_column(String(1000))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SurveyDm(Base):
    """A survey to be sent privately to one member: queued once, claimed once before sending, then sent or failed."""

    __tablename__ = "survey_dms"
    __table_args__ = (
        UniqueConstraint("survey_id", "member_id"),
        Index("ix_survey_dms_member_id", "member_id"),
        {"info": {"member_data": "delete"}},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(String(500))
