"""Per-member reads and writes for the bot's commands: stats, owned courses, preferences, data export, lookups.

Everything returns frozen dataclasses or plain JSON-ready dicts, never live ORM objects. Functions are synchronous
(call them through ``asyncio.to_thread`` from handlers) and open their own short connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.deletion import member_columns, member_data_tables
from storage.engine import writing
from storage.errors import StorageError
from storage.models import Base, Course, Member, MemberActivity, MemberDailyActivity, Purchase, Refund

EXPORT_FORMAT = "cohortbot-mydata-1"
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
class OwnedCourse:
    """A live (not refunded) purchase of a course."""

    purchase_id: int
    course_key: str
    title: str
    platform: str
    charge_id: str
    source: str
    amount: int  # minor units; whole stars for XTR
    currency: str
    purchased_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One purchase with its refund, if any, for revenue figures."""

    purchase_id: int
    course_key: str
    title: str
    member_id: int | None  # None once the buyer was forgotten
    platform: str
    charge_id: str
    source: str
    amount: int  # minor units; whole stars for XTR
    currency: str
    purchased_at: datetime
    refunded_at: datetime | None
    member_user_id: str | None = None
    is_test: bool = False  # a test purchase (Discord test mode): never revenue
    access_ends_at: datetime | None = None  # access ended (or ends) then, without a refund

    def live(self, now: datetime) -> bool:
        """Whether the purchase gives access at ``now``: not refunded, and not ended."""
        return self.refunded_at is None and (self.access_ends_at is None or self.access_ends_at > now)

    @property
    def amount_major(self) -> Decimal:
        """The amount in major units (XTR has no minor unit)."""
        return Decimal(self.amount) if self.currency == "XTR" else Decimal(self.amount) / 100


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
class ResolvedMember:
    """A member named in an admin command, as a platform user id."""

    user_id: str
    display_name: str | None
    known: bool  # whether anything is stored about them


# --- lookups -----------------------------------------------------------------------------------------------------


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


def _find(conn: Connection, community_id: int, platform: str, user_id: str) -> MemberRecord | None:
    row = conn.execute(
        select(Member.__table__, MemberActivity.first_active_at)
        .outerjoin(MemberActivity, MemberActivity.member_id == Member.id)
        .where(_member_where(community_id, platform, user_id))
    ).first()
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


# --- courses and the ledger --------------------------------------------------------------------------------------


def _owned_query(community_id: int) -> Any:
    return (
        select(
            Purchase.id,
            Course.course_key,
            Course.title,
            Purchase.platform,
            Purchase.charge_id,
            Purchase.source,
            Purchase.amount,
            Purchase.currency,
            Purchase.purchased_at,
        )
        .join(Course, Course.id == Purchase.course_id)
        .outerjoin(Refund, Refund.purchase_id == Purchase.id)
        .where(Purchase.community_id == community_id, Refund.id.is_(None))
        .order_by(Purchase.purchased_at, Purchase.id)
    )


def _not_ended(now: datetime | None) -> Any:
    at = now or datetime.now(UTC)
    return or_(Purchase.access_ends_at.is_(None), Purchase.access_ends_at > at)


def _owned(row: Any) -> OwnedCourse:
    return OwnedCourse(
        purchase_id=int(row.id),
        course_key=row.course_key,
        title=row.title,
        platform=row.platform,
        charge_id=row.charge_id,
        source=row.source,
        amount=int(row.amount),
        currency=row.currency,
        purchased_at=row.purchased_at,
    )


def _owned_by(conn: Connection, community_id: int, member_id: int, now: datetime | None = None) -> list[OwnedCourse]:
    rows = conn.execute(_owned_query(community_id).where(Purchase.member_id == member_id, _not_ended(now))).all()
    # A course bought twice (a grant after a platform purchase) is owned once: keep the first live purchase.
    seen: dict[str, OwnedCourse] = {}
    for row in rows:
        seen.setdefault(row.course_key, _owned(row))
    return list(seen.values())


def owned_courses(
    engine: Engine, community_id: int, platform: str, user_id: str, *, now: datetime | None = None
) -> list[OwnedCourse]:
    """The courses a member owns at ``now`` (default: the current time), oldest first, one per course.

    Owned means a live purchase: not refunded, and its access not ended (an expired Discord entitlement).
    """
    with engine.connect() as conn:
        member = _find(conn, community_id, platform, user_id)
        return [] if member is None else _owned_by(conn, community_id, member.id, now)


def live_purchase(
    engine: Engine, community_id: int, platform: str, user_id: str, course_key: str, *, now: datetime | None = None
) -> OwnedCourse | None:
    """The member's live purchase of a course at ``now`` (default: the current time); None when they do not own it."""
    for owned in owned_courses(engine, community_id, platform, user_id, now=now):
        if owned.course_key == course_key:
            return owned
    return None


def ledger(engine: Engine, community_id: int, *, include_test: bool = False) -> list[LedgerRow]:
    """Every purchase of the community with its refund, oldest first (sales are few; this read stays small).

    Test purchases (Discord test-mode entitlements) are money nobody paid: left out unless ``include_test``, so
    revenue and conversion figures built from this never count them.
    """
    query = (
        select(
            Purchase.id,
            Course.course_key,
            Course.title,
            Purchase.member_id,
            Purchase.platform,
            Purchase.charge_id,
            Purchase.source,
            Purchase.amount,
            Purchase.currency,
            Purchase.purchased_at,
            Refund.refunded_at,
            Member.platform_user_id,
            Purchase.is_test,
            Purchase.access_ends_at,
        )
        .join(Course, Course.id == Purchase.course_id)
        .outerjoin(Refund, Refund.purchase_id == Purchase.id)
        .outerjoin(Member, Member.id == Purchase.member_id)
        .where(Purchase.community_id == community_id)
        .order_by(Purchase.purchased_at, Purchase.id)
    )
    if not include_test:
        query = query.where(Purchase.is_test.is_(False))
    with engine.connect() as conn:
        return [
            LedgerRow(
                purchase_id=int(r.id),
                course_key=r.course_key,
                title=r.title,
                member_id=None if r.member_id is None else int(r.member_id),
                platform=r.platform,
                charge_id=r.charge_id,
                source=r.source,
                amount=int(r.amount),
                currency=r.currency,
                purchased_at=r.purchased_at,
                refunded_at=r.refunded_at,
                member_user_id=r.platform_user_id,
                is_test=bool(r.is_test),
                access_ends_at=r.access_ends_at,
            )
            for r in conn.execute(query)
        ]


def purchase_by_charge(engine: Engine, community_id: int, platform: str, charge_id: str) -> LedgerRow | None:
    """The purchase recorded under a platform charge id, with its refund and buyer, if any."""
    for row in ledger(engine, community_id, include_test=True):
        if row.platform == platform and row.charge_id == charge_id:
            return row
    return None


def human_member_count(engine: Engine, community_id: int) -> int:
    """Every human member ever stored in the community (former members included: they could have bought)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(func.count()).where(Member.community_id == community_id, Member.is_bot.is_(False))
        ).scalar()
    return int(value or 0)


# --- /stats ------------------------------------------------------------------------------------------------------


def _active_days(conn: Connection, community_id: int, member_id: int, first: date, last: date) -> set[date]:
    md = MemberDailyActivity
    rows = conn.execute(
        select(md.day).where(
            md.community_id == community_id,
            md.member_id == member_id,
            md.day >= first,
            md.day <= last,
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


def member_stats(engine: Engine, community_id: int, platform: str, user_id: str, *, today: date) -> MemberStats | None:
    """A member's own activity figures as of the local day ``today``.

    Active day: a day with a message or a reaction given (the analytics' definition). Rank: 1 + the number of
    members with more messages in the 30 days, among the members active in the 30 days; no rank without messages.

    Returns:
        The figures, or None when nothing at all is stored about the account.
    """
    md = MemberDailyActivity
    first_30, first_7 = today - timedelta(days=29), today - timedelta(days=6)
    with engine.connect() as conn:
        member = _find(conn, community_id, platform, user_id)
        if member is None:
            return None
        rows = conn.execute(
            select(md.day, md.messages, md.reactions_given, md.reactions_received).where(
                md.community_id == community_id,
                md.member_id == member.id,
                md.day >= first_30,
                md.day <= today,
            )
        ).all()
        active = {r.day for r in rows if r.messages > 0 or r.reactions_given > 0}
        messages_30 = sum(int(r.messages) for r in rows)
        per_member = (
            select(
                md.member_id,
                func.sum(md.messages).label("messages"),
            )
            .where(md.community_id == community_id, md.day >= first_30, md.day <= today)
            .group_by(md.member_id)
            .having(func.sum(md.messages + md.reactions_given) > 0)
            .subquery()
        )
        ranked = int(conn.execute(select(func.count()).select_from(per_member)).scalar() or 0)
        rank: int | None = None
        if messages_30 > 0:
            ahead = conn.execute(
                select(func.count()).select_from(per_member).where(per_member.c.messages > messages_30)
            ).scalar()
            rank = int(ahead or 0) + 1
        streak = _streak(conn, community_id, member.id, today, active)
        courses = tuple(_owned_by(conn, community_id, member.id))
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


# --- preferences -------------------------------------------------------------------------------------------------


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
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Member).values(
        community_id=community_id,
        platform=platform,
        platform_user_id=user_id,
        display_name=display_name,
        is_bot=False,
        first_seen_at=now,
        nudges_opt_out=opt_out,
        leaderboard_opt_out=False,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["community_id", "platform", "platform_user_id"], set_={"nudges_opt_out": opt_out}
    )
    with writing(engine).begin() as conn:
        conn.execute(stmt)
        member = _find(conn, community_id, platform, user_id)
    assert member is not None  # just upserted in this transaction
    return member


# --- /mydata -----------------------------------------------------------------------------------------------------


def _jsonable(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _rows(conn: Connection, table: Table, where: Any) -> list[dict[str, object]]:
    result = conn.execute(select(table).where(where).order_by(*table.primary_key.columns))
    return [{key: _jsonable(value) for key, value in row._mapping.items()} for row in result]


def export_member_data(
    engine: Engine, community_id: int, platform: str, user_id: str, *, now: datetime
) -> dict[str, object] | None:
    """Everything stored about one member, as a JSON-ready document (``/mydata``).

    The tables are the ones ``storage.deletion`` deletes from or detaches (``member_data_tables``), so the export
    covers exactly what ``/forget`` covers. Per table: ``rows`` are the member's own rows (their messages,
    reactions, membership events, purchases, nudges, daily rollups; refunds of their purchases); other members'
    rows that merely point at them (a reply to their message, a reaction on it, a sale they granted as admin) are
    counted in ``referenced_by_others`` without their content, which belongs to those members.

    Returns:
        The document, or None when nothing is stored about the account.
    """
    with engine.connect() as conn:
        member = _find(conn, community_id, platform, user_id)
        if member is None:
            return None
        member_row = _rows(conn, Base.metadata.tables[Member.__tablename__], Member.id == member.id)[0]
        exported_ids: dict[str, list[int]] = {}
        tables: dict[str, dict[str, object]] = {}
        for table in member_data_tables():
            refs = member_columns(table)
            section: dict[str, object] = {"policy_on_forget": table.info.get("member_data")}
            if "member_id" in refs:
                rows = _rows(conn, table, table.c["member_id"] == member.id)
            else:
                # No owner column (refunds): the rows that belong to rows already exported (a refund of their
                # purchase). member_data_tables() is ordered so that referenced tables come first.
                rows = []
                for column in table.columns:
                    for fk in column.foreign_keys:
                        parent_ids = exported_ids.get(fk.column.table.name)
                        if parent_ids and fk.column.name == "id":
                            rows += _rows(conn, table, column.in_(parent_ids))
            if "id" in table.c:
                exported_ids[table.name] = [int(r["id"]) for r in rows if isinstance(r["id"], int)]
            section["rows"] = rows
            others: dict[str, int] = {}
            for name in refs:
                if name == "member_id":
                    continue
                where = table.c[name] == member.id
                if "member_id" in table.c:
                    # Their own rows pointing at themselves (a reply to their own message) are already exported.
                    where = and_(where, table.c["member_id"].is_distinct_from(member.id))
                count = conn.execute(select(func.count()).select_from(table).where(where)).scalar()
                others[name] = int(count or 0)
            if others:
                section["referenced_by_others"] = others
            tables[table.name] = section
    return {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "platform": platform,
        "user_id": user_id,
        "member": member_row,
        "tables": tables,
    }


def table_counts(document: Mapping[str, object]) -> dict[str, int]:
    """Rows per table in an export document (for the summary shown with ``/mydata``)."""
    tables = document.get("tables")
    out: dict[str, int] = {}
    if isinstance(tables, Mapping):
        for name, section in tables.items():
            rows = section.get("rows") if isinstance(section, Mapping) else None
            out[str(name)] = len(rows) if isinstance(rows, list) else 0
    return out


def access_granted(engine: Engine, purchase_id: int) -> bool:
    """Whether the buyer of this purchase was given access (see ``Purchase.access_granted_at``)."""
    with engine.connect() as conn:
        at = conn.execute(select(Purchase.access_granted_at).where(Purchase.id == purchase_id)).scalar()
    return at is not None


def mark_access_granted(engine: Engine, purchase_id: int, *, at: datetime) -> None:
    """Record that the buyer of this purchase now has access."""
    with writing(engine).begin() as conn:
        conn.execute(update(Purchase).where(Purchase.id == purchase_id).values(access_granted_at=at))
