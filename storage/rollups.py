"""Rollup tables: incremental maintenance, recomputation from raw rows, and rebuild.

The writer accumulates a ``RollupDelta`` while it inserts a batch and applies it in the same transaction.
``compute_rollups`` derives the same numbers from the raw rows alone; it is the definition the incremental path
must match (a property test checks exactly that) and what ``cohortbot db rebuild-rollups`` writes back.

Counting rules (also in docs/metrics.md):
- bot accounts are never counted;
- a member is active on a day when they posted a message or gave a live (not removed) reaction;
- ``replies`` counts messages that reply to someone other than their author;
- ``reactions_received`` counts live reactions by others on the member's messages, on the day they were given;
- days are local days in the community's time zone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from storage.local_days import LocalDays
from storage.models import (
    Channel,
    Community,
    CommunityDailyTotals,
    Member,
    MemberActivity,
    MemberDailyActivity,
    MembershipEvent,
    Message,
    Reaction,
)
from storage.types import bind_day, bind_time

MemberDay = tuple[int, int, int, int]  # messages, replies, reactions_given, reactions_received
MemberTotals = tuple[datetime, datetime, int, int]  # first_active_at, last_active_at, messages, reactions_given
CommunityDay = tuple[int, int, int, int]  # messages, reactions, joins, leaves
Membership = tuple[datetime | None, datetime | None, datetime | None]  # first_joined, last_joined, last_left


@dataclass(slots=True)
class RollupDelta:
    """Changes to apply to the rollup tables, accumulated while a batch is written."""

    member_days: dict[tuple[int, date], list[int]] = field(default_factory=dict)  # -> [cid, m, r, rg, rr]
    member_totals: dict[int, list[Any]] = field(default_factory=dict)  # -> [cid, first, last, m, rg]
    community_days: dict[tuple[int, date], list[int]] = field(default_factory=dict)  # -> [m, r, j, l]
    refresh_members: set[int] = field(default_factory=set)

    def member_day(self, cid: int, member: int, day: date) -> list[int]:
        """The mutable ``[cid, messages, replies, reactions_given, reactions_received]`` change of a member-day."""
        row = self.member_days.get((member, day))
        if row is None:
            row = self.member_days[(member, day)] = [cid, 0, 0, 0, 0]
        return row

    def community_day(self, cid: int, day: date) -> list[int]:
        """The mutable ``[messages, reactions, joins, leaves]`` change of a community-day."""
        row = self.community_days.get((cid, day))
        if row is None:
            row = self.community_days[(cid, day)] = [0, 0, 0, 0]
        return row

    def _active(self, cid: int, member: int, at: datetime | None, messages: int, reactions: int) -> None:
        row = self.member_totals.get(member)
        if row is None:
            self.member_totals[member] = [cid, at, at, messages, reactions]
            return
        if at is not None:
            if row[1] is None or at < row[1]:
                row[1] = at
            if row[2] is None or at > row[2]:
                row[2] = at
        row[3] += messages
        row[4] += reactions

    def message(self, cid: int, author: int, day: date, at: datetime, reply_to_other: bool) -> None:
        """Count a newly stored human message."""
        row = self.member_day(cid, author, day)
        row[1] += 1
        row[2] += reply_to_other
        self._active(cid, author, at, 1, 0)
        self.community_day(cid, day)[0] += 1

    def reaction(self, cid: int, reactor: int, target: int | None, day: date, at: datetime, sign: int) -> None:
        """Count a reaction that became live (+1) or was removed (-1); ``day``/``at`` are when it was given."""
        self.member_day(cid, reactor, day)[3] += sign
        if target is not None:
            self.member_day(cid, target, day)[4] += sign
        self._active(cid, reactor, at if sign > 0 else None, 0, sign)
        self.community_day(cid, day)[1] += sign

    def membership(self, cid: int, day: date, *, joined: bool) -> None:
        """Count a newly stored human join or leave."""
        self.community_day(cid, day)[2 if joined else 3] += 1


def apply_delta(conn: Connection, delta: RollupDelta) -> None:
    """Apply accumulated changes to the rollup tables inside the caller's transaction."""
    d = conn.dialect.name
    ph = "?" if d == "sqlite" else "%s"
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    # A change that nets out (a reaction given and removed in one batch) must not leave an all-zero row.
    member_days = {k: v for k, v in delta.member_days.items() if any(v[1:])}
    community_days = {k: v for k, v in delta.community_days.items() if any(v)}
    if member_days:
        cur.executemany(
            "INSERT INTO member_daily_activity (member_id, day, community_id, messages, replies, reactions_given, "
            f"reactions_received) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (member_id, day) DO UPDATE SET "
            "messages = member_daily_activity.messages + excluded.messages, "
            "replies = member_daily_activity.replies + excluded.replies, "
            "reactions_given = member_daily_activity.reactions_given + excluded.reactions_given, "
            "reactions_received = member_daily_activity.reactions_received + excluded.reactions_received",
            [(member, bind_day(day, d), *row) for (member, day), row in member_days.items()],
        )
        shrunk = [(member, bind_day(day, d)) for (member, day), row in member_days.items() if min(row[1:]) < 0]
        if shrunk:
            cur.executemany(
                f"DELETE FROM member_daily_activity WHERE member_id = {ph} AND day = {ph} AND messages = 0 "
                "AND replies = 0 AND reactions_given = 0 AND reactions_received = 0",
                shrunk,
            )
    grew = [(m, row) for m, row in delta.member_totals.items() if row[1] is not None]
    if grew:
        cur.executemany(
            "INSERT INTO member_activity (member_id, community_id, first_active_at, last_active_at, messages, "
            f"reactions_given) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (member_id) DO UPDATE SET "
            "first_active_at = CASE WHEN excluded.first_active_at < member_activity.first_active_at "
            "THEN excluded.first_active_at ELSE member_activity.first_active_at END, "
            "last_active_at = CASE WHEN excluded.last_active_at > member_activity.last_active_at "
            "THEN excluded.last_active_at ELSE member_activity.last_active_at END, "
            "messages = member_activity.messages + excluded.messages, "
            "reactions_given = member_activity.reactions_given + excluded.reactions_given",
            [(m, row[0], bind_time(row[1], d), bind_time(row[2], d), row[3], row[4]) for m, row in grew],
        )
    only_shrank = [(row[3], row[4], m) for m, row in delta.member_totals.items() if row[1] is None]
    if only_shrank:
        cur.executemany(
            f"UPDATE member_activity SET messages = messages + {ph}, reactions_given = reactions_given + {ph} "
            f"WHERE member_id = {ph}",
            only_shrank,
        )
    if community_days:
        cur.executemany(
            "INSERT INTO community_daily_totals (community_id, day, messages, reactions, joins, leaves) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (community_id, day) DO UPDATE SET "
            "messages = community_daily_totals.messages + excluded.messages, "
            "reactions = community_daily_totals.reactions + excluded.reactions, "
            "joins = community_daily_totals.joins + excluded.joins, "
            "leaves = community_daily_totals.leaves + excluded.leaves",
            [(cid, bind_day(day, d), *row) for (cid, day), row in community_days.items()],
        )
        shrunk_days = [(cid, bind_day(day, d)) for (cid, day), row in community_days.items() if min(row) < 0]
        if shrunk_days:
            cur.executemany(
                f"DELETE FROM community_daily_totals WHERE community_id = {ph} AND day = {ph} AND messages = 0 "
                "AND reactions = 0 AND joins = 0 AND leaves = 0",
                shrunk_days,
            )
    cur.close()


def refresh_member_activity(conn: Connection, member_ids: Iterable[int]) -> None:
    """Recompute first/last activity of members after something of theirs was removed."""
    for member_id in sorted(set(member_ids)):
        msg = conn.execute(
            select(func.min(Message.created_at), func.max(Message.created_at), func.count()).where(
                Message.member_id == member_id
            )
        ).one()
        rx = conn.execute(
            select(func.min(Reaction.reacted_at), func.max(Reaction.reacted_at), func.count()).where(
                Reaction.member_id == member_id,
                Reaction.removed_at.is_(None),
                Reaction.reacted_at.is_not(None),
            )
        ).one()
        firsts = [t for t in (msg[0], rx[0]) if t is not None]
        lasts = [t for t in (msg[1], rx[1]) if t is not None]
        if not firsts:
            conn.execute(delete(MemberActivity).where(MemberActivity.member_id == member_id))
            continue
        conn.execute(
            update(MemberActivity)
            .where(MemberActivity.member_id == member_id)
            .values(first_active_at=min(firsts), last_active_at=max(lasts), messages=msg[2], reactions_given=rx[2])
        )


@dataclass(frozen=True, slots=True)
class RollupSnapshot:
    """All rollup values of one community, comparable between stored and recomputed."""

    member_days: dict[tuple[int, date], MemberDay]
    member_totals: dict[int, MemberTotals]
    community_days: dict[date, CommunityDay]
    memberships: dict[int, Membership]


def _tz(conn: Connection, community_id: int) -> ZoneInfo:
    return ZoneInfo(conn.execute(select(Community.timezone).where(Community.id == community_id)).scalar_one())


def compute_rollups(conn: Connection, community_id: int) -> RollupSnapshot:
    """Derive every rollup of a community from its raw rows (the reference definition)."""
    days = LocalDays(_tz(conn, community_id))
    members = dict(conn.execute(select(Member.id, Member.is_bot).where(Member.community_id == community_id)).all())
    humans = {m for m, is_bot in members.items() if not is_bot}
    member_days: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    totals: dict[int, list[Any]] = {}
    community_days: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def active(member: int, at: datetime, messages: int, reactions: int) -> None:
        row = totals.setdefault(member, [at, at, 0, 0])
        row[0] = min(row[0], at)
        row[1] = max(row[1], at)
        row[2] += messages
        row[3] += reactions

    in_community = select(Channel.id).where(Channel.community_id == community_id)
    for author, at, is_reply, reply_to in conn.execute(
        select(Message.member_id, Message.created_at, Message.is_reply, Message.reply_to_member_id).where(
            Message.channel_id.in_(in_community)
        )
    ):
        if author not in humans:
            continue
        day = days.day(at)
        row = member_days[(author, day)]
        row[0] += 1
        row[1] += bool(is_reply) and reply_to != author
        active(author, at, 1, 0)
        community_days[day][0] += 1
    for reactor, target, reacted_at in conn.execute(
        select(Reaction.member_id, Reaction.target_member_id, Reaction.reacted_at).where(
            Reaction.channel_id.in_(in_community),
            Reaction.removed_at.is_(None),
            Reaction.reacted_at.is_not(None),
        )
    ):
        if reactor not in humans or reacted_at is None:
            continue
        day = days.day(reacted_at)
        member_days[(reactor, day)][2] += 1
        if target is not None and target != reactor and target in humans:
            member_days[(target, day)][3] += 1
        active(reactor, reacted_at, 0, 1)
        community_days[day][1] += 1
    memberships: dict[int, list[datetime | None]] = {m: [None, None, None] for m in members}
    for member, kind, at in conn.execute(
        select(MembershipEvent.member_id, MembershipEvent.kind, MembershipEvent.occurred_at)
        .join(Member, Member.id == MembershipEvent.member_id)
        .where(Member.community_id == community_id)
    ):
        state = memberships[member]
        if kind == "join":
            state[0] = at if state[0] is None else min(state[0], at)
            state[1] = at if state[1] is None else max(state[1], at)
        else:
            state[2] = at if state[2] is None else max(state[2], at)
        if member in humans:
            community_days[days.day(at)][2 if kind == "join" else 3] += 1
    return RollupSnapshot(
        member_days={k: (v[0], v[1], v[2], v[3]) for k, v in member_days.items()},
        member_totals={k: (v[0], v[1], v[2], v[3]) for k, v in totals.items()},
        community_days={k: (v[0], v[1], v[2], v[3]) for k, v in community_days.items()},
        memberships={k: (v[0], v[1], v[2]) for k, v in memberships.items()},
    )


def read_rollups(conn: Connection, community_id: int) -> RollupSnapshot:
    """Read the stored rollups of a community."""
    md = MemberDailyActivity
    member_days = {
        (r.member_id, r.day): (r.messages, r.replies, r.reactions_given, r.reactions_received)
        for r in conn.execute(select(md).where(md.community_id == community_id))
    }
    ma = MemberActivity
    member_totals = {
        r.member_id: (r.first_active_at, r.last_active_at, r.messages, r.reactions_given)
        for r in conn.execute(select(ma).where(ma.community_id == community_id))
    }
    cd = CommunityDailyTotals
    community_days = {
        r.day: (r.messages, r.reactions, r.joins, r.leaves)
        for r in conn.execute(select(cd).where(cd.community_id == community_id))
    }
    memberships = {
        r.id: (r.first_joined_at, r.last_joined_at, r.last_left_at)
        for r in conn.execute(
            select(Member.id, Member.first_joined_at, Member.last_joined_at, Member.last_left_at).where(
                Member.community_id == community_id
            )
        )
    }
    return RollupSnapshot(member_days, member_totals, community_days, memberships)


def rebuild_rollups(conn: Connection, community_id: int) -> RollupSnapshot:
    """Replace a community's rollups with values recomputed from raw rows (after a time zone change).

    Returns:
        The snapshot that was written.
    """
    snapshot = compute_rollups(conn, community_id)
    conn.execute(delete(MemberDailyActivity).where(MemberDailyActivity.community_id == community_id))
    conn.execute(delete(MemberActivity).where(MemberActivity.community_id == community_id))
    conn.execute(delete(CommunityDailyTotals).where(CommunityDailyTotals.community_id == community_id))
    if snapshot.member_days:
        conn.execute(
            insert(MemberDailyActivity),
            [
                {
                    "member_id": m,
                    "day": day,
                    "community_id": community_id,
                    "messages": v[0],
                    "replies": v[1],
                    "reactions_given": v[2],
                    "reactions_received": v[3],
                }
                for (m, day), v in snapshot.member_days.items()
            ],
        )
    if snapshot.member_totals:
        conn.execute(
            insert(MemberActivity),
            [
                {
                    "member_id": m,
                    "community_id": community_id,
                    "first_active_at": v[0],
                    "last_active_at": v[1],
                    "messages": v[2],
                    "reactions_given": v[3],
                }
                for m, v in snapshot.member_totals.items()
            ],
        )
    if snapshot.community_days:
        conn.execute(
            insert(CommunityDailyTotals),
            [
                {
                    "community_id": community_id,
                    "day": day,
                    "messages": v[0],
                    "reactions": v[1],
                    "joins": v[2],
                    "leaves": v[3],
                }
                for day, v in snapshot.community_days.items()
            ],
        )
    for member_id, (first, last, left) in snapshot.memberships.items():
        conn.execute(
            update(Member)
            .where(and_(Member.id == member_id))
            .values(first_joined_at=first, last_joined_at=last, last_left_at=left)
        )
    return snapshot
