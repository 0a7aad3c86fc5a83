"""The dashboard's reads of one member (daily activity, channels, purchases, nudges) and of today's totals.

Everything here reads rollups or small per-member tables (purchases, nudges), never the raw message and reaction
tables, so a page stays fast on a community with millions of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, func, select

from storage.models import (
    Channel,
    ChannelMemberDaily,
    CommunityDailyTotals,
    Course,
    Member,
    MemberActivity,
    MemberDailyActivity,
    Nudge,
    Purchase,
    Refund,
)


@dataclass(frozen=True, slots=True)
class MemberDay:
    """One local day on which the member did something."""

    day: date
    messages: int
    reactions_given: int
    reactions_received: int


@dataclass(frozen=True, slots=True)
class MemberChannel:
    """Messages of the member in one channel over the days asked for."""

    name: str
    parent: str | None
    messages: int
    days: int


@dataclass(frozen=True, slots=True)
class MemberPurchase:
    """A purchase of the member, with its refund."""

    course: str
    amount: int  # minor units; whole stars for XTR
    currency: str
    purchased_at: datetime
    refunded_at: datetime | None
    is_test: bool


@dataclass(frozen=True, slots=True)
class MemberNudge:
    """A nudge decision about the member."""

    group: str  # "nudged" | "holdout"
    decided_at: datetime
    sent_at: datetime | None
    error: str | None
    reactivated_at: datetime | None


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """Everything the member page shows."""

    member_id: int
    name: str
    platform: str
    platform_user_id: str
    username: str | None
    first_seen_at: datetime
    joined_at: datetime | None
    left_at: datetime | None
    last_active_at: datetime | None
    messages_total: int
    nudges_opt_out: bool
    days: tuple[MemberDay, ...]
    channels: tuple[MemberChannel, ...]
    purchases: tuple[MemberPurchase, ...]
    nudges: tuple[MemberNudge, ...]


def member_profile(
    engine: Engine, community_id: int, member_id: int, *, start: date, end: date
) -> MemberProfile | None:
    """The member's profile over the local days ``start`` .. ``end``; None when no such member of the community.

    Bots are not members: asking for one answers None, as for an unknown id.

    Args:
        engine: The database.
        community_id: The community.
        member_id: The member's row id.
        start: The first local day of the activity and channel figures.
        end: The last local day.

    Returns:
        The profile, or None.
    """
    with engine.connect() as conn:
        m = conn.execute(
            select(Member).where(Member.id == member_id, Member.community_id == community_id, Member.is_bot.is_(False))
        ).scalar_one_or_none()
        if m is None:
            return None
        activity = conn.execute(
            select(MemberActivity.last_active_at, MemberActivity.messages).where(MemberActivity.member_id == member_id)
        ).first()
        days = tuple(
            MemberDay(_as_date(r.day), int(r.messages), int(r.reactions_given), int(r.reactions_received))
            for r in conn.execute(
                select(MemberDailyActivity)
                .where(
                    MemberDailyActivity.community_id == community_id,
                    MemberDailyActivity.member_id == member_id,
                    MemberDailyActivity.day >= start,
                    MemberDailyActivity.day <= end,
                )
                .order_by(MemberDailyActivity.day)
            ).scalars()
        )
        parent = Channel.__table__.alias("parent")
        channel_rows = conn.execute(
            select(
                func.coalesce(Channel.name, Channel.platform_channel_id).label("name"),
                func.coalesce(parent.c.name, parent.c.platform_channel_id).label("parent"),
                func.sum(ChannelMemberDaily.messages).label("messages"),
                func.count().label("days"),
            )
            .join(Channel, Channel.id == ChannelMemberDaily.channel_id)
            .outerjoin(parent, parent.c.id == Channel.parent_id)
            .where(
                ChannelMemberDaily.community_id == community_id,
                ChannelMemberDaily.member_id == member_id,
                ChannelMemberDaily.day >= start,
                ChannelMemberDaily.day <= end,
            )
            .group_by(
                Channel.id, Channel.name, Channel.platform_channel_id, parent.c.name, parent.c.platform_channel_id
            )
            .order_by(func.sum(ChannelMemberDaily.messages).desc(), Channel.id)
        ).all()
        purchases = conn.execute(
            select(
                Course.title,
                Purchase.amount,
                Purchase.currency,
                Purchase.purchased_at,
                Refund.refunded_at,
                Purchase.is_test,
            )
            .join(Course, Course.id == Purchase.course_id)
            .outerjoin(Refund, Refund.purchase_id == Purchase.id)
            .where(Purchase.community_id == community_id, Purchase.member_id == member_id)
            .order_by(Purchase.purchased_at, Purchase.id)
        ).all()
        nudges = conn.execute(
            select(Nudge.group, Nudge.decided_at, Nudge.sent_at, Nudge.error, Nudge.reactivated_at)
            .where(Nudge.community_id == community_id, Nudge.member_id == member_id)
            .order_by(Nudge.decided_at, Nudge.id)
        ).all()
    return MemberProfile(
        member_id=int(m.id),
        name=m.display_name or m.username or m.platform_user_id,
        platform=m.platform,
        platform_user_id=m.platform_user_id,
        username=m.username,
        first_seen_at=m.first_seen_at,
        joined_at=m.last_joined_at or m.first_joined_at,
        left_at=m.last_left_at
        if m.last_left_at is not None and (m.last_joined_at is None or m.last_left_at >= m.last_joined_at)
        else None,
        last_active_at=None if activity is None else activity.last_active_at,
        messages_total=0 if activity is None else int(activity.messages),
        nudges_opt_out=bool(m.nudges_opt_out),
        days=days,
        channels=tuple(
            MemberChannel(str(r.name), None if r.parent is None else str(r.parent), int(r.messages or 0), int(r.days))
            for r in channel_rows
        ),
        purchases=tuple(
            MemberPurchase(r.title, int(r.amount), r.currency, r.purchased_at, r.refunded_at, bool(r.is_test))
            for r in purchases
        ),
        nudges=tuple(MemberNudge(r.group, r.decided_at, r.sent_at, r.error, r.reactivated_at) for r in nudges),
    )


@dataclass(frozen=True, slots=True)
class DayTotals:
    """One local day's community totals from the rollups, and the newest recorded activity."""

    day: date
    messages: int
    reactions: int
    joins: int
    leaves: int
    active_members: int
    last_event_at: datetime | None


def day_totals(engine: Engine, community_id: int, day: date) -> DayTotals:
    """The community's totals of the local ``day`` (zeros when nothing happened) and its newest activity instant."""
    with engine.connect() as conn:
        totals = conn.execute(
            select(
                CommunityDailyTotals.messages,
                CommunityDailyTotals.reactions,
                CommunityDailyTotals.joins,
                CommunityDailyTotals.leaves,
            ).where(CommunityDailyTotals.community_id == community_id, CommunityDailyTotals.day == day)
        ).first()
        active = conn.execute(
            select(func.count())
            .select_from(MemberDailyActivity)
            .join(Member, Member.id == MemberDailyActivity.member_id)
            .where(
                MemberDailyActivity.community_id == community_id,
                MemberDailyActivity.day == day,
                Member.is_bot.is_(False),
            )
        ).scalar_one()
        last = conn.execute(
            select(func.max(MemberActivity.last_active_at)).where(MemberActivity.community_id == community_id)
        ).scalar()
    return DayTotals(
        day=day,
        messages=0 if totals is None else int(totals.messages),
        reactions=0 if totals is None else int(totals.reactions),
        joins=0 if totals is None else int(totals.joins),
        leaves=0 if totals is None else int(totals.leaves),
        active_members=int(active),
        last_event_at=last,
    )


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
