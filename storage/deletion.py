"""The one deletion path for a member's data (``/forget``, ``cohortbot forget``).

Which tables hold member data, and how each is cleaned, is declared on the tables themselves
(``Table.info["member_data"]`` and, per column, ``Table.info["member_columns"]``; see ``storage.models``).
This module walks those declarations, so a new table is covered as soon as it declares a policy — and a test
fails for any table that references ``members`` without declaring one.

Before rows go, the member's contribution is subtracted from rollups that other rows share (community daily
totals, and reactions received by other members), so every rollup still equals its recomputation from raw rows.

After them, the member's platform id and display name are replaced by ``[forgotten]`` wherever they remain in free
text: job details, nudge errors, refund reasons, other members' stored message text, chat titles. Every text
column of every table is free text unless :data:`NOT_FREE_TEXT` names it as a key or a fixed vocabulary, so a new
table is scrubbed without being declared.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Connection, String, Table, delete, or_, select, update

from storage.local_days import LocalDays
from storage.models import Base, Community, Member, MemberDailyActivity, MembershipEvent, Message, Reaction
from storage.rollups import RollupDelta, apply_delta


@dataclass(frozen=True, slots=True)
class DeletionReport:
    """What was removed (``deleted``) or kept but detached from the person (``detached``), per table.

    ``member_id`` is 0 when the person had no member row, only dashboard logins or sessions.
    """

    member_id: int
    deleted: dict[str, int]
    detached: dict[str, int]
    scrubbed: dict[str, int] = field(default_factory=dict)
    """Rows per table whose free text named the member (their id or display name), now ``[forgotten]``."""


FORGOTTEN = "[forgotten]"
# Keys, fixed vocabularies and values copied from the owner's config: never text about a member. A member called
# "discord", "join" or "👍" must not rewrite other rows' platform, kind or emoji; ``members.display_name`` is
# another person's own name (who may be called the same).
NOT_FREE_TEXT = frozenset(
    {
        "communities.name",
        "communities.timezone",
        "members.platform",
        "members.platform_user_id",
        "members.display_name",
        "channels.platform",
        "channels.platform_channel_id",
        "messages.platform_message_id",
        "reactions.platform_message_id",
        "reactions.emoji",
        "membership_events.kind",
        "courses.course_key",
        "courses.title",
        "courses.currency",
        "purchases.platform",
        "purchases.charge_id",
        "purchases.provider_charge_id",
        "purchases.source",
        "purchases.currency",
        "subscriptions.platform",
        "subscriptions.subscription_ref",
        "subscription_periods.platform",
        "subscription_periods.charge_id",
        "nudges.group",
        "digests.week",
        "job_runs.job",
        "job_runs.outcome",
        # Outside checkouts: provider ids, hashes and config values, never text about a member.
        "webhook_events.provider",
        "webhook_events.event_id",
        "webhook_events.event_type",
        "checkout_claims.provider",
        "checkout_claims.session_id",
        "checkout_claims.code_hash",
        "checkout_claims.charge_id",
        "checkout_claims.course_key",
        "checkout_claims.currency",
        # Surveys: vocabularies and platform ids (a poll id could look like a member id), never text about a member.
        "surveys.kind",
        "surveys.origin",
        "surveys.platform",
        "surveys.channel_id",
        "surveys.platform_message_id",
        "surveys.poll_id",
        # Dashboard logins and sessions of other admins: their own identity, deleted by identity instead.
        "dashboard_logins.platform",
        "dashboard_logins.platform_user_id",
        "dashboard_logins.display_name",
        "dashboard_sessions.platform",
        "dashboard_sessions.platform_user_id",
        "dashboard_sessions.display_name",
    }
)
# Shorter ids or names ("Al", "42") cannot be told from ordinary words and numbers in free text; real Telegram and
# Discord ids are 5 to 20 digits.
MIN_SCRUBBED_LENGTH = 3


def member_columns(table: Table) -> dict[str, str]:
    """The columns of ``table`` that point at a member, with the policy for each (``delete``/``detach``).

    Raises:
        ValueError: The table references ``members`` but declares no policy.
    """
    refs = [
        col for col in table.columns if any(fk.column.table.name == Member.__tablename__ for fk in col.foreign_keys)
    ]
    if not refs:
        return {}
    policy = table.info.get("member_data")
    if policy not in ("delete", "detach"):
        raise ValueError(
            f"table {table.name!r} references members but declares no member_data policy "
            "(set __table_args__ info={'member_data': 'delete' | 'detach'})"
        )
    per_column: dict[str, str] = table.info.get("member_columns", {})
    return {col.name: per_column.get(col.name, str(policy)) for col in refs}


def member_data_tables() -> list[Table]:
    """Every table that stores data about members, in an order that is safe to delete from."""
    return [t for t in Base.metadata.sorted_tables if t.info.get("member_data") in ("delete", "detach")]


def _subtract_shared_rollups(conn: Connection, member_id: int, community_id: int, is_bot: bool) -> None:
    if is_bot:
        return  # bots were never counted
    tz = conn.execute(select(Community.timezone).where(Community.id == community_id)).scalar_one()
    days = LocalDays(ZoneInfo(tz))
    delta = RollupDelta()
    md = MemberDailyActivity
    for day, reactions in conn.execute(
        select(md.day, md.reactions_given).where(md.community_id == community_id, md.member_id == member_id)
    ):
        delta.community_day(community_id, day)[1] -= reactions
    # The member's messages: community and channel totals, and the reaction totals imported with them. (The
    # messages table has no index by member on purpose; a deletion is rare and may scan it.)
    for at, channel, thread, imported in conn.execute(
        select(Message.created_at, Message.channel_id, Message.thread_id, Message.imported_reactions).where(
            Message.member_id == member_id
        )
    ):
        day, hour = days.day_hour(at)
        counts = delta.community_day(community_id, day)
        counts[0] -= 1
        counts[1] -= imported
        per_hour = delta.hour(community_id, day, hour)
        per_hour[0] -= 1
        per_hour[1] -= imported
        key = (community_id, day, thread if thread is not None else channel)
        delta.channel_days[key] = delta.channel_days.get(key, 0) - 1
    # The hours of the live reactions the member gave (their days' totals came from member_daily_activity above).
    for (reacted_at,) in conn.execute(
        select(Reaction.reacted_at).where(
            Reaction.member_id == member_id, Reaction.removed_at.is_(None), Reaction.reacted_at.is_not(None)
        )
    ):
        if reacted_at is not None:  # guaranteed by the query; narrows the type
            day, hour = days.day_hour(reacted_at)
            delta.hour(community_id, day, hour)[1] -= 1
    for kind, at in conn.execute(
        select(MembershipEvent.kind, MembershipEvent.occurred_at).where(MembershipEvent.member_id == member_id)
    ):
        delta.community_day(community_id, days.day(at))[2 if kind == "join" else 3] -= 1
    # Reactions this member gave others are counted in the others' reactions_received.
    received: dict[tuple[int, date], int] = defaultdict(int)
    for target, reacted_at in conn.execute(
        select(Reaction.target_member_id, Reaction.reacted_at)
        .join(Member, Member.id == Reaction.target_member_id)
        .where(
            Reaction.member_id == member_id,
            Reaction.removed_at.is_(None),
            Reaction.reacted_at.is_not(None),
            Reaction.target_member_id != member_id,
            Member.is_bot.is_(False),
        )
    ):
        if target is not None and reacted_at is not None:  # guaranteed by the query; narrows the types
            received[(target, days.day(reacted_at))] += 1
    for (target, day), count in received.items():
        delta.member_day(community_id, target, day)[4] -= count
    apply_delta(conn, delta)


def admin_data_tables() -> list[Table]:
    """Tables that name an admin by platform identity (dashboard logins and sessions), deleted by that identity."""
    return [t for t in Base.metadata.sorted_tables if t.info.get("admin_data") == "delete"]


def delete_admin_data(conn: Connection, community_id: int, platform: str, platform_user_id: str) -> dict[str, int]:
    """Delete the rows of :func:`admin_data_tables` that belong to one platform identity in one community.

    Args:
        conn: A connection inside a transaction.
        community_id: The community.
        platform: The platform's name (``"telegram"``, ``"discord"``, ...).
        platform_user_id: The person's id on it.

    Returns:
        Rows deleted per table (tables with none left out).
    """
    deleted: dict[str, int] = {}
    for table in admin_data_tables():
        count = conn.execute(
            delete(table).where(
                table.c.community_id == community_id,
                table.c.platform == platform,
                table.c.platform_user_id == platform_user_id,
            )
        ).rowcount
        if count:
            deleted[table.name] = count
    return deleted


def delete_member_data(conn: Connection, member_id: int) -> DeletionReport:
    """Delete everything stored about one member, inside the caller's transaction.

    Messages, reactions, membership history, nudges, rollups, the member row and their dashboard logins and
    sessions are deleted; purchases and refunds are kept for accounting with the person detached; references from
    other members' rows (replies to them, reactions on their messages) are set to NULL.

    Args:
        conn: A connection inside a transaction.
        member_id: The ``members.id`` to forget.

    Returns:
        Row counts per table.
    """
    member = conn.execute(
        select(Member.community_id, Member.is_bot, Member.platform, Member.platform_user_id, Member.display_name).where(
            Member.id == member_id
        )
    ).one_or_none()
    if member is None:
        return DeletionReport(member_id, {}, {})
    _subtract_shared_rollups(conn, member_id, member.community_id, member.is_bot)
    deleted: dict[str, int] = {}
    detached: dict[str, int] = {}
    tables = member_data_tables()
    # Detach first: a detach column may sit in a table whose rows are deleted by another column later.
    for table in tables:
        for name, policy in member_columns(table).items():
            if policy == "detach":
                column: Column[int] = table.c[name]
                count = conn.execute(update(table).where(column == member_id).values({name: None})).rowcount
                if count:
                    detached[table.name] = detached.get(table.name, 0) + count
    for table in reversed(tables):
        for name, policy in member_columns(table).items():
            if policy == "delete":
                count = conn.execute(delete(table).where(table.c[name] == member_id)).rowcount
                if count:
                    deleted[table.name] = deleted.get(table.name, 0) + count
    conn.execute(delete(Member).where(Member.id == member_id))
    deleted[Member.__tablename__] = 1
    # An admin who is forgotten loses their dashboard logins and sessions too (they name them by identity).
    deleted.update(delete_admin_data(conn, member.community_id, member.platform, member.platform_user_id))
    scrubbed = scrub_free_text(conn, [member.platform_user_id, member.display_name or ""])
    return DeletionReport(member_id, deleted, detached, scrubbed)


def free_text_columns(table: Table) -> list[Column[str]]:
    """The text columns of ``table`` that may quote a member: all but keys and :data:`NOT_FREE_TEXT`."""
    return [
        column
        for column in table.columns
        if isinstance(column.type, String)
        and not column.primary_key
        and f"{table.name}.{column.name}" not in NOT_FREE_TEXT
    ]


def scrub_free_text(conn: Connection, needles: Iterable[str]) -> dict[str, int]:
    """Replace each needle (a whole word, any case) by ``[forgotten]`` in every free-text column of every table.

    Args:
        conn: A connection inside a transaction.
        needles: The member's platform id and names; ones shorter than :data:`MIN_SCRUBBED_LENGTH` are skipped.

    Returns:
        Values changed per table.
    """
    words = sorted({n.strip() for n in needles if len(n.strip()) >= MIN_SCRUBBED_LENGTH}, key=len, reverse=True)
    if not words:
        return {}
    # Whole words only: the id 4512 must not eat into 845129 or a date; the name "Ann" not into "Annual".
    pattern = re.compile("|".join(rf"(?<!\w){re.escape(w)}(?!\w)" for w in words), re.IGNORECASE)
    changed: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        for column in free_text_columns(table) if keys else []:
            # The database narrows the rows down (case-insensitively, as far as it folds case); Python decides.
            found = conn.execute(
                select(*keys, column).where(or_(*(column.icontains(w, autoescape=True) for w in words)))
            ).all()
            for row in found:
                value: str = row[-1]
                cleaned = pattern.sub(FORGOTTEN, value)
                limit = getattr(column.type, "length", None)
                if limit is not None:
                    cleaned = cleaned[:limit]
                if cleaned == value:
                    continue
                where = [key == row[index] for index, key in enumerate(keys)]
                conn.execute(update(table).where(*where).values({column.name: cleaned}))
                changed[table.name] = changed.get(table.name, 0) + 1
    return changed


def find_member_id(conn: Connection, community_id: int, platform: str, user_id: str) -> int | None:
    """The ``members.id`` of a platform account, or None if nothing is stored about it."""
    return conn.execute(
        select(Member.id).where(
            Member.community_id == community_id,
            Member.platform == platform,
            Member.platform_user_id == user_id,
        )
    ).scalar()
