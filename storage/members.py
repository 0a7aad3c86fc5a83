"""Members: find and resolve them (by id or ``@username``), count humans, per-member stats, opt-outs.

Everything returns frozen dataclasses, never live ORM objects. Functions are synchronous (call them through
``asyncio.to_thread`` from handlers) and open their own short connection.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import writing
from storage.errors import StorageError
from storage.ledger import OwnedCourse, owned_by_member
from storage.models import Member, MemberActivity, MemberDailyActivity, Purchase

# Streaks are read back in chunks of this many days: most streaks end within the first chunk.
_STREAK_CHUNK_DAYS = 64


class MemberLookupError(StorageError):
    """An ``@username`` matched no stored member, or several (the message lists them and says what to type)."""


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member's stored account and preferences."""

    id: int
    platform: str
    user_id: str
    display_name: str | None
    is_bot: bool
    first_seen_at: datetime
    first_joined_at: datetime | None
    last_joined_at: datetime | None
    last_left_at: datetime | None
    nudges_opt_out: bool
    leaderboard_opt_out: bool
    dm_unreachable_at: datetime | None
    first_active_at: datetime | None = None

    @property
    def member_since(self) -> datetime:
        """When the member joined, as the report counts it (docs/metrics.md, Growth).

        The first recorded join, or the first activity when that is earlier or no join was recorded (history
        imports carry no joins); the first time the bot saw the account only when neither is known. Never
        ``first_seen_at`` alone when more is known: an import sets it to the batch's earliest event for everyone.
        """
        known = [at for at in (self.first_joined_at, self.first_active_at) if at is not None]
        return min(known) if known else self.first_seen_at


@dataclass(frozen=True, slots=True)
class MemberStats:
    """A member's own activity as of a local day (``today``), for ``/stats``.

    Windows are community-local days ending on ``today`` inclusive: 7 days = ``today - 6 .. today``.
    """

    member: MemberRecord
    today: date
    messages_7d: int
    active_days_7d: int
    messages_30d: int
    active_days_30d: int
    reactions_given_30d: int
    reactions_received_30d: int
    streak: int  # consecutive active days ending today (or yesterday, when today has no activity yet)
    rank: int | None  # by 30-day messages among members active in 30 days; None without messages
    ranked_members: int  # members active in the 30 days
    courses: tuple[OwnedCourse, ...]
    last_active: date | None  # the latest active day in the 30 days

    @property
    def has_activity(self) -> bool:
        """Whether anything was recorded in the 30 days."""
        return self.active_days_30d > 0 or self.reactions_received_30d > 0


@dataclass(frozen=True, slots=True)
class MessageRanking:
    """The 30-day message totals of every member active in the 30 days up to a local day, for ``/stats`` ranks.

    Read once by :func:`message_ranking` and reused for every member's ``/stats`` until new activity is committed.

    Attributes:
        today: The local day the 30 days end on.
        totals: Each active member's message total, ascending.
    """

    today: date
    totals: tuple[int, ...]

    def rank(self, messages: int) -> int:
        """1 + the number of active members with more than ``messages`` messages."""
        return len(self.totals) - bisect.bisect_right(self.totals, messages) + 1


@dataclass(frozen=True, slots=True)
class ResolvedMember:
    """A member named in an admin command, as a platform user id."""

    user_id: str
    display_name: str | None
    known: bool  # whether anything is stored about them


def _member_where(community_id: int, platform: str, user_id: str) -> Any:
    return and_(Member.community_id == community_id, Member.platform == platform, Member.platform_user_id == user_id)


def _record(row: Any) -> MemberRecord:
    return MemberRecord(
        id=int(row.id),
        platform=row.platform,
        user_id=row.platform_user_id,
        display_name=row.display_name,
        is_bot=bool(row.is_bot),
        first_seen_at=row.first_seen_at,
        first_joined_at=row.first_joined_at,
        last_joined_at=row.last_joined_at,
        last_left_at=row.last_left_at,
        nudges_opt_out=bool(row.nudges_opt_out),
        leaderboard_opt_out=bool(row.leaderboard_opt_out),
        dm_unreachable_at=row.dm_unreachable_at,
        first_active_at=row.first_active_at,
    )


# The statements of the per-member reads, built once with bind parameters: building a SQLAlchemy statement costs
# more than SQLite takes to run it (``/stats``: about 0.3 ms of Python against 0.1 ms of SQL per answer).
_FIND_MEMBER = (
    select(
        Member.__table__,
        MemberActivity.first_active_at,
        # Whether to read the member's courses at all: few members ever bought one, and the ledger's query of
        # owned courses costs more to build than everything else ``/stats`` reads (an index probe here).
        exists().where(Purchase.member_id == Member.id).label("has_purchases"),
    )
    .outerjoin(MemberActivity, MemberActivity.member_id == Member.id)
    .where(
        Member.community_id == bindparam("community_id"),
        Member.platform == bindparam("platform"),
        Member.platform_user_id == bindparam("user_id"),
    )
)
# The rollup's key is (community, day, member): naming the days makes this one primary-key lookup per day, where a
# day range would scan every member's rows of those days.
_MEMBER_DAYS = select(
    MemberDailyActivity.day,
    MemberDailyActivity.messages,
    MemberDailyActivity.reactions_given,
    MemberDailyActivity.reactions_received,
).where(
    MemberDailyActivity.community_id == bindparam("community_id"),
    MemberDailyActivity.day.in_(bindparam("days", expanding=True)),
    MemberDailyActivity.member_id == bindparam("member_id"),
)


def _find(conn: Connection, community_id: int, platform: str, user_id: str) -> MemberRecord | None:
    row = conn.execute(_FIND_MEMBER, {"community_id": community_id, "platform": platform, "user_id": user_id}).first()
    return None if row is None else _record(row)


def find_member(engine: Engine, community_id: int, platform: str, user_id: str) -> MemberRecord | None:
    """The stored member for a platform account, or None when nothing is stored about it."""
    with engine.connect() as conn:
        return _find(conn, community_id, platform, user_id)


def resolve_member(engine: Engine, community_id: int, platform: str, value: str) -> ResolvedMember:
    """Turn an admin's member argument into a platform user id, by platform identity only.

    A display name is never matched: anyone can rename themself to look like someone else. What counts is what
    the platform vouches for: the numeric user id (a reply or a mention gives it too) or, on Telegram, the
    ``@username`` the member was last seen with.

    Args:
        engine: The database.
        community_id: The community.
        platform: The platform the command came from (usernames are matched on it only).
        value: A numeric user id (taken as it is, stored or not: an admin may grant to someone who never posted),
            or ``@username``, matched case-insensitively against the usernames members were last seen with.

    Returns:
        The member.

    Raises:
        MemberLookupError: No stored member has that username, several have (it changed hands: the message lists
            them), or the platform has no usernames to go by.
    """
    value = value.strip()
    with engine.connect() as conn:
        if value.isdigit():
            found = _find(conn, community_id, platform, value)
            return ResolvedMember(value, found.display_name if found else None, found is not None)
        handle = value.removeprefix("@").strip()
        if not handle:
            raise MemberLookupError("Name a member by numeric user id or @username.")
        if platform == "console":
            # The console's user ids are the names typed at it: the name is the identity.
            found = _find(conn, community_id, platform, handle)
            return ResolvedMember(handle, found.display_name if found else handle, found is not None)
        if platform != "telegram":
            raise MemberLookupError(
                f"Members are named by their account on {platform}, not by name: pick the member in the user option."
            )
        rows = conn.execute(
            select(Member.platform_user_id, Member.display_name)
            .where(
                Member.community_id == community_id,
                Member.platform == platform,
                Member.is_bot.is_(False),
                func.lower(Member.username) == handle.lower(),
            )
            .order_by(Member.platform_user_id)
            .limit(6)
        ).all()
    if not rows:
        raise MemberLookupError(
            f"No member with the username @{handle} is known on {platform}. Use their numeric user id, or send the "
            "command as a reply to one of their messages."
        )
    if len(rows) > 1:
        listed = ", ".join(f"id {r.platform_user_id} ({r.display_name or 'no name'})" for r in rows[:5])
        raise MemberLookupError(
            f"Several members have had the username @{handle}: {listed}. Use the numeric user id of the one you mean."
        )
    return ResolvedMember(rows[0].platform_user_id, rows[0].display_name, True)


def human_member_count(engine: Engine, community_id: int) -> int:
    """Every human member ever stored in the community (former members included: they could have bought)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(func.count()).where(Member.community_id == community_id, Member.is_bot.is_(False))
        ).scalar()
    return int(value or 0)


def _active_days(conn: Connection, community_id: int, member_id: int, first: date, last: date) -> set[date]:
    md = MemberDailyActivity
    rows = conn.execute(
        select(md.day).where(
            md.community_id == community_id,
            md.day.in_(_days(first, last)),  # primary-key lookups, as in member_stats
            md.member_id == member_id,
            (md.messages > 0) | (md.reactions_given > 0),
        )
    ).scalars()
    return set(rows)


def _streak(conn: Connection, community_id: int, member_id: int, today: date, recent: set[date]) -> int:
    """Consecutive active days ending today, or ending yesterday when today has no activity yet."""
    day = today if today in recent else today - timedelta(days=1)
    known = set(recent)
    known_from = today - timedelta(days=29)
    streak = 0
    while True:
        if day < known_from:
            known_from -= timedelta(days=_STREAK_CHUNK_DAYS)
            known |= _active_days(conn, community_id, member_id, known_from, day)
        if day not in known:
            return streak
        streak += 1
        day -= timedelta(days=1)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _per_member_30d(community_id: int, today: date) -> Any:
    md = MemberDailyActivity
    return (
        select(md.member_id, func.sum(md.messages).label("messages"))
        .where(md.community_id == community_id, md.day >= today - timedelta(days=29), md.day <= today)
        .group_by(md.member_id)
        .having(func.sum(md.messages + md.reactions_given) > 0)
    )


def message_ranking(engine: Engine, community_id: int, *, today: date) -> MessageRanking:
    """The 30-day message totals that ``/stats`` ranks a member among (one read of the 30 days' rollups)."""
    with engine.connect() as conn:
        per_member = _per_member_30d(community_id, today).subquery()
        totals = conn.execute(select(per_member.c.messages)).scalars().all()
    return MessageRanking(today, tuple(sorted(int(t or 0) for t in totals)))


def member_stats(
    engine: Engine,
    community_id: int,
    platform: str,
    user_id: str,
    *,
    today: date,
    ranking: MessageRanking | None = None,
) -> MemberStats | None:
    """A member's own activity figures as of the local day ``today``.

    Active day: a day with a message or a reaction given (the analytics' definition). Rank: 1 + the number of
    members with more messages in the 30 days, among the members active in the 30 days; no rank without messages.

    Args:
        engine: The database.
        community_id: The community.
        platform: The member's platform.
        user_id: The member's platform user id.
        today: The community-local day.
        ranking: The 30-day totals of every active member as of ``today`` (:func:`message_ranking`), when the
            caller keeps them; read here otherwise.

    Returns:
        The figures, or None when nothing at all is stored about the account.
    """
    first_30, first_7 = today - timedelta(days=29), today - timedelta(days=6)
    with engine.connect() as conn:
        found = conn.execute(
            _FIND_MEMBER, {"community_id": community_id, "platform": platform, "user_id": user_id}
        ).first()
        if found is None:
            return None
        member = _record(found)
        rows = conn.execute(
            _MEMBER_DAYS, {"community_id": community_id, "days": _days(first_30, today), "member_id": member.id}
        ).all()
        active = {r.day for r in rows if r.messages > 0 or r.reactions_given > 0}
        messages_30 = sum(int(r.messages) for r in rows)
        if ranking is None or ranking.today != today:
            per_member = _per_member_30d(community_id, today).subquery()
            ranked = int(conn.execute(select(func.count()).select_from(per_member)).scalar() or 0)
            rank: int | None = None
            if messages_30 > 0:
                ahead = conn.execute(
                    select(func.count()).select_from(per_member).where(per_member.c.messages > messages_30)
                ).scalar()
                rank = int(ahead or 0) + 1
        else:
            ranked = len(ranking.totals)
            rank = ranking.rank(messages_30) if messages_30 > 0 else None
        streak = _streak(conn, community_id, member.id, today, active)
        courses = tuple(owned_by_member(conn, community_id, member.id)) if found.has_purchases else ()
    return MemberStats(
        member=member,
        today=today,
        messages_7d=sum(int(r.messages) for r in rows if r.day >= first_7),
        active_days_7d=sum(1 for d in active if d >= first_7),
        messages_30d=messages_30,
        active_days_30d=len(active),
        reactions_given_30d=sum(int(r.reactions_given) for r in rows),
        reactions_received_30d=sum(int(r.reactions_received) for r in rows),
        streak=streak,
        rank=rank,
        ranked_members=ranked,
        courses=courses,
        last_active=max(active) if active else None,
    )


def set_nudges_opt_out(
    engine: Engine,
    community_id: int,
    platform: str,
    user_id: str,
    *,
    opt_out: bool,
    now: datetime,
    display_name: str | None = None,
) -> MemberRecord:
    """Set a member's nudge opt-out, creating their member row if nothing is stored about them yet.

    A member may opt out before ever posting; the row then only holds the account and the preference (and is
    removed by ``/forget`` like any other).

    Returns:
        The member as stored afterwards.
    """
    return _set_preference(engine, community_id, platform, user_id, "nudges_opt_out", opt_out, now, display_name)


def set_leaderboard_opt_out(
    engine: Engine,
    community_id: int,
    platform: str,
    user_id: str,
    *,
    opt_out: bool,
    now: datetime,
    display_name: str | None = None,
) -> MemberRecord:
    """Set whether a member is left off leaderboards, creating their member row if nothing is stored yet.

    Like :func:`set_nudges_opt_out`: a member may hide before ever posting, so that they never appear.

    Args:
        engine: The database.
        community_id: The community.
        platform: The member's platform.
        user_id: The member's platform user id.
        opt_out: True to leave the member off leaderboards, False to list them again.
        now: When the account is first seen, if it is new.
        display_name: The member's name, stored only for a new row.

    Returns:
        The member as stored afterwards.
    """
    return _set_preference(engine, community_id, platform, user_id, "leaderboard_opt_out", opt_out, now, display_name)


def _set_preference(
    engine: Engine,
    community_id: int,
    platform: str,
    user_id: str,
    column: str,
    value: bool,
    now: datetime,
    display_name: str | None,
) -> MemberRecord:
    """Upsert one opt-out preference (``nudges_opt_out`` or ``leaderboard_opt_out``) of a member, new or known."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    preferences = {"nudges_opt_out": False, "leaderboard_opt_out": False, column: value}
    stmt = insert(Member).values(
        community_id=community_id,
        platform=platform,
        platform_user_id=user_id,
        display_name=display_name,
        is_bot=False,
        first_seen_at=now,
        **preferences,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["community_id", "platform", "platform_user_id"], set_={column: value}
    )
    with writing(engine).begin() as conn:
        conn.execute(stmt)
        member = _find(conn, community_id, platform, user_id)
    assert member is not None  # just upserted in this transaction
    return member
