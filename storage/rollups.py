"""Rollup tables: incremental maintenance, recomputation from raw rows, and rebuild.

The writer accumulates a ``RollupDelta`` while it inserts a batch and applies it in the same transaction; on
SQLite the message rollups are instead aggregated by SQL from the rows just inserted (``apply_message_rollups``).
``compute_rollups`` derives the same numbers from the raw rows alone; it is the definition the incremental path
must match (a property test checks exactly that) and what ``cohortbot db rebuild-rollups`` writes back.

Counting rules (also in docs/metrics.md):
- bot accounts are never counted;
- a member is active on a day when they posted a message or gave a live (not removed) reaction;
- ``replies`` counts messages that reply to someone other than their author;
- ``reactions_received`` counts live reactions by others on the member's messages, on the day they were given;
- days are local days in the community's time zone;
- ``community_hourly_activity`` splits ``community_daily_totals``' messages and reactions by local hour (the wall
  clock hour, 0-23, in the community's zone): a message (and the reaction totals imported with it) counts at the
  hour it was posted, a reaction at the hour it was given, so the hours of a day sum to the day's totals;
- ``channel_member_daily`` splits ``channel_daily_activity`` by author: human messages per channel (a thread or
  forum topic is its own channel), local day and member.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, func, insert, select, update

from storage.local_days import LocalDays
from storage.models import (
    Channel,
    ChannelDailyActivity,
    ChannelMemberDaily,
    Community,
    CommunityDailyTotals,
    CommunityHourlyActivity,
    Member,
    MemberActivity,
    MemberDailyActivity,
    MembershipEvent,
    Message,
    Reaction,
)
from storage.pg_rollups import apply_delta_postgresql
from storage.rollup_merge import MEMBER_ACTIVE_SPAN, MEMBER_MESSAGE_SPAN
from storage.types import bind_day, bind_time, to_millis

MemberDay = tuple[int, int, int, int]  # messages, replies, reactions_given, reactions_received
# first_active_at, last_active_at, messages, reactions_given, first_message_at, last_message_at
MemberTotals = tuple[datetime, datetime, int, int, datetime | None, datetime | None]
CommunityDay = tuple[int, int, int, int]  # messages, reactions, joins, leaves
Membership = tuple[datetime | None, datetime | None, datetime | None]  # first_joined, last_joined, last_left


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b < a) else a


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


@dataclass(slots=True)
class RollupDelta:
    """Changes to apply to the rollup tables, accumulated while a batch is written."""

    member_days: dict[tuple[int, date], list[int]] = field(default_factory=dict)  # -> [cid, m, r, rg, rr]
    # -> [cid, first_active, last_active, messages, reactions_given, first_message, last_message]
    member_totals: dict[int, list[Any]] = field(default_factory=dict)
    community_days: dict[tuple[int, date], list[int]] = field(default_factory=dict)  # -> [m, r, j, l]
    channel_days: dict[tuple[int, date, int], int] = field(default_factory=dict)  # (cid, day, channel) -> messages
    hours: dict[tuple[int, date, int], list[int]] = field(default_factory=dict)  # (cid, day, hour) -> [m, r]
    # (cid, day, channel, member) -> messages
    channel_members: dict[tuple[int, date, int, int], int] = field(default_factory=dict)
    # member -> when the reactions they took back in this batch had been given
    refresh_members: dict[int, set[datetime]] = field(default_factory=dict)

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

    def hour(self, cid: int, day: date, hour: int) -> list[int]:
        """The mutable ``[messages, reactions]`` change of a community's local hour."""
        row = self.hours.get((cid, day, hour))
        if row is None:
            row = self.hours[(cid, day, hour)] = [0, 0]
        return row

    def message(
        self,
        cid: int,
        author: int,
        day: date,
        hour: int,
        at: datetime,
        reply_to_other: bool,
        channel: int,
        imported: int = 0,
    ) -> None:
        """Count a newly stored human message (``channel``: its thread or topic if it has one; ``hour``: local)."""
        # Called once per stored message: the helpers above are inlined here.
        member_days = self.member_days
        row = member_days.get((author, day))
        if row is None:
            row = member_days[(author, day)] = [cid, 0, 0, 0, 0]
        row[1] += 1
        row[2] += reply_to_other
        row[4] += imported  # reaction totals from an export count as received on the message's day
        totals = self.member_totals.get(author)
        if totals is None:
            self.member_totals[author] = [cid, at, at, 1, 0, at, at]
        else:
            if totals[1] is None or at < totals[1]:
                totals[1] = at
            if totals[2] is None or at > totals[2]:
                totals[2] = at
            if totals[5] is None or at < totals[5]:
                totals[5] = at
            if totals[6] is None or at > totals[6]:
                totals[6] = at
            totals[3] += 1
        community_days = self.community_days
        counts = community_days.get((cid, day))
        if counts is None:
            counts = community_days[(cid, day)] = [0, 0, 0, 0]
        counts[0] += 1
        counts[1] += imported
        key = (cid, day, channel)
        self.channel_days[key] = self.channel_days.get(key, 0) + 1
        hours = self.hours
        per_hour = hours.get((cid, day, hour))
        if per_hour is None:
            per_hour = hours[(cid, day, hour)] = [0, 0]
        per_hour[0] += 1
        per_hour[1] += imported
        member_key = (cid, day, channel, author)
        self.channel_members[member_key] = self.channel_members.get(member_key, 0) + 1

    def reaction(
        self, cid: int, reactor: int, target: int | None, day: date, hour: int, at: datetime, sign: int
    ) -> None:
        """Count a reaction that became live (+1) or was removed (-1); ``day``/``hour``/``at``: when it was given."""
        self.member_day(cid, reactor, day)[3] += sign
        if target is not None:
            self.member_day(cid, target, day)[4] += sign
        given_at = at if sign > 0 else None
        row = self.member_totals.get(reactor)
        if row is None:
            self.member_totals[reactor] = [cid, given_at, given_at, 0, sign, None, None]
        else:
            row[1] = _earlier(row[1], given_at)
            row[2] = _later(row[2], given_at)
            row[4] += sign
        if sign < 0:
            # The removed reaction may have been the member's first or last activity.
            self.refresh_members.setdefault(reactor, set()).add(at)
        self.community_day(cid, day)[1] += sign
        self.hour(cid, day, hour)[1] += sign

    def membership(self, cid: int, day: date, *, joined: bool) -> None:
        """Count a newly stored human join or leave."""
        self.community_day(cid, day)[2 if joined else 3] += 1


def apply_delta(conn: Connection, delta: RollupDelta) -> None:
    """Apply accumulated changes to the rollup tables inside the caller's transaction."""
    d = conn.dialect.name
    if d == "postgresql":
        return apply_delta_postgresql(conn, delta)  # one array statement per table (storage/pg_rollups.py)
    ph = "?" if d == "sqlite" else "%s"
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    # Hundreds of rows per batch share a day or two, and four timestamps per member: convert each day once and
    # timestamps without bind_time's per-call dialect dispatch.
    days = {day for _, day in delta.member_days} | {day for _, day in delta.community_days}
    days.update(day for _, day, _ in delta.channel_days)
    days.update(day for _, day, _ in delta.hours)
    days.update(day for _, day, _, _ in delta.channel_members)
    day_param = {day: bind_day(day, d) for day in days}
    time_param: Callable[[datetime], object] = to_millis if d == "sqlite" else partial(bind_time, dialect_name=d)
    # A change that nets out (a reaction given and removed in one batch) must not leave an all-zero row. Sorted by
    # (community, day, member); (member, day) keys are unique, so the row lists themselves are never compared.
    member_days = sorted((row[0], day, member, row) for (member, day), row in delta.member_days.items() if any(row[1:]))
    if member_days:
        cur.executemany(
            "INSERT INTO member_daily_activity (community_id, day, member_id, messages, replies, reactions_given, "
            f"reactions_received) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}) "
            "ON CONFLICT (community_id, day, member_id) DO UPDATE SET "
            "messages = member_daily_activity.messages + excluded.messages, "
            "replies = member_daily_activity.replies + excluded.replies, "
            "reactions_given = member_daily_activity.reactions_given + excluded.reactions_given, "
            "reactions_received = member_daily_activity.reactions_received + excluded.reactions_received",
            [(cid, day_param[day], member, *row[1:]) for cid, day, member, row in member_days],
        )
        shrunk = [(cid, day_param[day], member) for cid, day, member, row in member_days if min(row[1:]) < 0]
        if shrunk:
            cur.executemany(
                f"DELETE FROM member_daily_activity WHERE community_id = {ph} AND day = {ph} AND member_id = {ph} "
                "AND messages = 0 AND replies = 0 AND reactions_given = 0 AND reactions_received = 0",
                shrunk,
            )
    grew = [(m, row) for m, row in delta.member_totals.items() if row[1] is not None]
    if grew:
        cur.executemany(
            "INSERT INTO member_activity (member_id, community_id, first_active_at, last_active_at, messages, "
            f"reactions_given, first_message_at, last_message_at) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}, {ph}, "
            f"{ph}) ON CONFLICT (member_id) DO UPDATE SET "
            f"{MEMBER_ACTIVE_SPAN}"
            "messages = member_activity.messages + excluded.messages, "
            "reactions_given = member_activity.reactions_given + excluded.reactions_given, "
            f"{MEMBER_MESSAGE_SPAN}",
            [
                (
                    m,
                    row[0],
                    time_param(row[1]),
                    time_param(row[2]),
                    row[3],
                    row[4],
                    None if row[5] is None else time_param(row[5]),
                    None if row[6] is None else time_param(row[6]),
                )
                for m, row in grew
            ],
        )
    only_shrank = [(row[3], row[4], m) for m, row in delta.member_totals.items() if row[1] is None]
    if only_shrank:
        cur.executemany(
            f"UPDATE member_activity SET messages = messages + {ph}, reactions_given = reactions_given + {ph} "
            f"WHERE member_id = {ph}",
            only_shrank,
        )
    community_days = {k: v for k, v in delta.community_days.items() if any(v)}
    if community_days:
        cur.executemany(
            "INSERT INTO community_daily_totals (community_id, day, messages, reactions, joins, leaves) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (community_id, day) DO UPDATE SET "
            "messages = community_daily_totals.messages + excluded.messages, "
            "reactions = community_daily_totals.reactions + excluded.reactions, "
            "joins = community_daily_totals.joins + excluded.joins, "
            "leaves = community_daily_totals.leaves + excluded.leaves",
            [(cid, day_param[day], *row) for (cid, day), row in community_days.items()],
        )
        shrunk_days = [(cid, day_param[day]) for (cid, day), row in community_days.items() if min(row) < 0]
        if shrunk_days:
            cur.executemany(
                f"DELETE FROM community_daily_totals WHERE community_id = {ph} AND day = {ph} AND messages = 0 "
                "AND reactions = 0 AND joins = 0 AND leaves = 0",
                shrunk_days,
            )
    channel_days = sorted((k, v) for k, v in delta.channel_days.items() if v)
    if channel_days:
        cur.executemany(
            "INSERT INTO channel_daily_activity (community_id, day, channel_id, messages) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}) ON CONFLICT (community_id, day, channel_id) DO UPDATE SET "
            "messages = channel_daily_activity.messages + excluded.messages",
            [(cid, day_param[day], channel, n) for (cid, day, channel), n in channel_days],
        )
        shrunk_channels = [(cid, day_param[day], channel) for (cid, day, channel), n in channel_days if n < 0]
        if shrunk_channels:
            cur.executemany(
                f"DELETE FROM channel_daily_activity WHERE community_id = {ph} AND day = {ph} "
                f"AND channel_id = {ph} AND messages = 0",
                shrunk_channels,
            )
    hours = sorted((k, v) for k, v in delta.hours.items() if any(v))
    if hours:
        cur.executemany(
            "INSERT INTO community_hourly_activity (community_id, day, hour, messages, reactions) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (community_id, day, hour) DO UPDATE SET "
            "messages = community_hourly_activity.messages + excluded.messages, "
            "reactions = community_hourly_activity.reactions + excluded.reactions",
            [(cid, day_param[day], hour, *row) for (cid, day, hour), row in hours],
        )
        shrunk_hours = [(cid, day_param[day], hour) for (cid, day, hour), row in hours if min(row) < 0]
        if shrunk_hours:
            cur.executemany(
                f"DELETE FROM community_hourly_activity WHERE community_id = {ph} AND day = {ph} AND hour = {ph} "
                "AND messages = 0 AND reactions = 0",
                shrunk_hours,
            )
    channel_members = sorted((k, v) for k, v in delta.channel_members.items() if v)
    if channel_members:
        cur.executemany(
            "INSERT INTO channel_member_daily (community_id, day, channel_id, member_id, messages) "
            f"VALUES ({ph}, {ph}, {ph}, {ph}, {ph}) ON CONFLICT (community_id, day, channel_id, member_id) "
            "DO UPDATE SET messages = channel_member_daily.messages + excluded.messages",
            [(cid, day_param[day], channel, member, n) for (cid, day, channel, member), n in channel_members],
        )
        shrunk_members = [
            (cid, day_param[day], channel, member) for (cid, day, channel, member), n in channel_members if n < 0
        ]
        if shrunk_members:
            cur.executemany(
                f"DELETE FROM channel_member_daily WHERE community_id = {ph} AND day = {ph} AND channel_id = {ph} "
                f"AND member_id = {ph} AND messages <= 0",
                shrunk_members,
            )
    cur.close()


def refresh_member_activity(conn: Connection, removed: Mapping[int, Iterable[datetime]]) -> None:
    """Fix first/last activity of members after reactions they had given (at the given times) were removed.

    Only a removed reaction that *was* the member's first or last activity changes anything; then the member's
    live reactions are read (through the reactions' member index) and combined with the first/last message
    times kept in ``member_activity`` (messages are never taken back), so the messages table is never read.
    """
    ma = MemberActivity
    for member_id in sorted(removed):
        stored = conn.execute(
            select(ma.first_active_at, ma.last_active_at, ma.first_message_at, ma.last_message_at).where(
                ma.member_id == member_id
            )
        ).one_or_none()
        if stored is None:
            continue  # a bot, or a member with nothing counted
        if not any(t in (stored.first_active_at, stored.last_active_at) for t in removed[member_id]):
            continue
        first_reaction, last_reaction = conn.execute(
            select(func.min(Reaction.reacted_at), func.max(Reaction.reacted_at)).where(
                Reaction.member_id == member_id, Reaction.removed_at.is_(None), Reaction.reacted_at.is_not(None)
            )
        ).one()
        first = _earlier(stored.first_message_at, first_reaction)
        last = _later(stored.last_message_at, last_reaction)
        if first is None or last is None:
            conn.execute(delete(ma).where(ma.member_id == member_id))
            continue
        conn.execute(update(ma).where(ma.member_id == member_id).values(first_active_at=first, last_active_at=last))


@dataclass(frozen=True, slots=True)
class RollupSnapshot:
    """All rollup values of one community, comparable between stored and recomputed."""

    member_days: dict[tuple[int, date], MemberDay]
    member_totals: dict[int, MemberTotals]
    community_days: dict[date, CommunityDay]
    memberships: dict[int, Membership]
    channel_days: dict[tuple[date, int], int]
    hours: dict[tuple[date, int], tuple[int, int]] = field(default_factory=dict)  # (day, hour) -> messages, reactions
    channel_members: dict[tuple[date, int, int], int] = field(default_factory=dict)  # (day, channel, member) -> msgs


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
    channel_days: dict[tuple[date, int], int] = defaultdict(int)
    hours: dict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0])
    channel_members: dict[tuple[date, int, int], int] = defaultdict(int)

    def active(member: int, at: datetime, messages: int, reactions: int) -> list[Any]:
        row = totals.setdefault(member, [at, at, 0, 0, None, None])
        row[0] = min(row[0], at)
        row[1] = max(row[1], at)
        row[2] += messages
        row[3] += reactions
        return row

    in_community = select(Channel.id).where(Channel.community_id == community_id)
    for author, at, is_reply, reply_to, channel, thread, imported in conn.execute(
        select(
            Message.member_id,
            Message.created_at,
            Message.is_reply,
            Message.reply_to_member_id,
            Message.channel_id,
            Message.thread_id,
            Message.imported_reactions,
        ).where(Message.channel_id.in_(in_community))
    ):
        if author not in humans:
            continue
        day, hour = days.day_hour(at)
        row = member_days[(author, day)]
        row[0] += 1
        row[1] += bool(is_reply) and reply_to != author
        row[3] += imported
        totals_row = active(author, at, 1, 0)
        totals_row[4] = _earlier(totals_row[4], at)
        totals_row[5] = _later(totals_row[5], at)
        community_days[day][0] += 1
        community_days[day][1] += imported
        place = thread if thread is not None else channel
        channel_days[(day, place)] += 1
        hours[(day, hour)][0] += 1
        hours[(day, hour)][1] += imported
        channel_members[(day, place, author)] += 1
    for reactor, target, reacted_at in conn.execute(
        select(Reaction.member_id, Reaction.target_member_id, Reaction.reacted_at).where(
            Reaction.channel_id.in_(in_community), Reaction.removed_at.is_(None), Reaction.reacted_at.is_not(None)
        )
    ):
        if reactor not in humans or reacted_at is None:
            continue
        day, hour = days.day_hour(reacted_at)
        hours[(day, hour)][1] += 1
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
        member_days={k: (v[0], v[1], v[2], v[3]) for k, v in member_days.items() if any(v)},
        member_totals={k: (v[0], v[1], v[2], v[3], v[4], v[5]) for k, v in totals.items()},
        community_days={k: (v[0], v[1], v[2], v[3]) for k, v in community_days.items() if any(v)},
        memberships={k: (v[0], v[1], v[2]) for k, v in memberships.items()},
        channel_days=dict(channel_days),
        hours={k: (v[0], v[1]) for k, v in hours.items() if any(v)},
        channel_members=dict(channel_members),
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
        r.member_id: (
            r.first_active_at,
            r.last_active_at,
            r.messages,
            r.reactions_given,
            r.first_message_at,
            r.last_message_at,
        )
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
    chd = ChannelDailyActivity
    channel_days = {
        (r.day, r.channel_id): r.messages for r in conn.execute(select(chd).where(chd.community_id == community_id))
    }
    cha = CommunityHourlyActivity
    hours = {
        (r.day, r.hour): (r.messages, r.reactions)
        for r in conn.execute(select(cha).where(cha.community_id == community_id))
    }
    cmd = ChannelMemberDaily
    channel_members = {
        (r.day, r.channel_id, r.member_id): r.messages
        for r in conn.execute(select(cmd).where(cmd.community_id == community_id))
    }
    return RollupSnapshot(member_days, member_totals, community_days, memberships, channel_days, hours, channel_members)


def rebuild_rollups(conn: Connection, community_id: int) -> RollupSnapshot:
    """Replace a community's rollups with values recomputed from raw rows (after a time zone change).

    Returns:
        The snapshot that was written.
    """
    snapshot = compute_rollups(conn, community_id)
    for table in (
        MemberDailyActivity,
        MemberActivity,
        CommunityDailyTotals,
        ChannelDailyActivity,
        CommunityHourlyActivity,
        ChannelMemberDaily,
    ):
        conn.execute(delete(table).where(table.community_id == community_id))
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
                    "first_message_at": v[4],
                    "last_message_at": v[5],
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
    if snapshot.channel_days:
        conn.execute(
            insert(ChannelDailyActivity),
            [
                {"community_id": community_id, "day": day, "channel_id": channel, "messages": n}
                for (day, channel), n in snapshot.channel_days.items()
            ],
        )
    if snapshot.hours:
        conn.execute(
            insert(CommunityHourlyActivity),
            [
                {"community_id": community_id, "day": day, "hour": hour, "messages": v[0], "reactions": v[1]}
                for (day, hour), v in snapshot.hours.items()
            ],
        )
    if snapshot.channel_members:
        conn.execute(
            insert(ChannelMemberDaily),
            [
                {"community_id": community_id, "day": day, "channel_id": channel, "member_id": member, "messages": n}
                for (day, channel, member), n in snapshot.channel_members.items()
            ],
        )
    for member_id, (first, last, left) in snapshot.memberships.items():
        conn.execute(
            update(Member)
            .where(Member.id == member_id)
            .values(first_joined_at=first, last_joined_at=last, last_left_at=left)
        )
    return snapshot


_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000

# The message rollups of one SQLite batch, aggregated by SQL from the rows it just inserted. The new rows are first
# grouped once by (local day number, local hour, place, author) into a temporary table, and every rollup is summed
# from that (one scan of the messages instead of one per rollup). Each keeps the additive ``ON CONFLICT`` of
# ``apply_delta``, so the order of the two does not matter. ``WHERE true``: SQLite needs it to tell an upsert's
# ``ON CONFLICT`` from a join's ``ON``.
_NEW = "temp.ingest_new_messages"
_MESSAGE_ROLLUPS_SQLITE = (
    "INSERT INTO member_daily_activity (community_id, day, member_id, messages, replies, reactions_given, "
    f"reactions_received) SELECT ?, date(dn * 86400, 'unixepoch'), member_id, sum(n), sum(replies), 0, "
    f"sum(imported) FROM {_NEW} WHERE true "
    "GROUP BY dn, member_id ON CONFLICT (community_id, day, member_id) DO UPDATE SET "
    "messages = member_daily_activity.messages + excluded.messages, "
    "replies = member_daily_activity.replies + excluded.replies, "
    "reactions_received = member_daily_activity.reactions_received + excluded.reactions_received",
    "INSERT INTO member_activity (member_id, community_id, first_active_at, last_active_at, messages, "
    "reactions_given, first_message_at, last_message_at) SELECT member_id, ?, min(first_at), "
    f"max(last_at), sum(n), 0, min(first_at), max(last_at) FROM {_NEW} WHERE true "
    "GROUP BY member_id ON CONFLICT (member_id) DO UPDATE SET "
    f"{MEMBER_ACTIVE_SPAN}"
    "messages = member_activity.messages + excluded.messages, "
    f"{MEMBER_MESSAGE_SPAN}",
    "INSERT INTO community_daily_totals (community_id, day, messages, reactions, joins, leaves) "
    f"SELECT ?, date(dn * 86400, 'unixepoch'), sum(n), sum(imported), 0, 0 FROM {_NEW} "
    "WHERE true GROUP BY dn ON CONFLICT (community_id, day) DO UPDATE SET "
    "messages = community_daily_totals.messages + excluded.messages, "
    "reactions = community_daily_totals.reactions + excluded.reactions",
    "INSERT INTO channel_daily_activity (community_id, day, channel_id, messages) "
    f"SELECT ?, date(dn * 86400, 'unixepoch'), place, sum(n) FROM {_NEW} WHERE true "
    "GROUP BY dn, place ON CONFLICT (community_id, day, channel_id) DO UPDATE SET "
    "messages = channel_daily_activity.messages + excluded.messages",
    "INSERT INTO community_hourly_activity (community_id, day, hour, messages, reactions) "
    f"SELECT ?, date(dn * 86400, 'unixepoch'), hr, sum(n), sum(imported) FROM {_NEW} "
    "WHERE true GROUP BY dn, hr ON CONFLICT (community_id, day, hour) DO UPDATE SET "
    "messages = community_hourly_activity.messages + excluded.messages, "
    "reactions = community_hourly_activity.reactions + excluded.reactions",
    "INSERT INTO channel_member_daily (community_id, day, channel_id, member_id, messages) "
    f"SELECT ?, date(dn * 86400, 'unixepoch'), place, member_id, sum(n) FROM {_NEW} WHERE true "
    "GROUP BY dn, place, member_id ON CONFLICT (community_id, day, channel_id, member_id) "
    "DO UPDATE SET messages = channel_member_daily.messages + excluded.messages",
)


def apply_message_rollups(
    cur: Any, community_id: int, after_id: int, offsets: Sequence[tuple[int, int]], bots: Collection[int]
) -> None:
    """SQLite: count the messages stored with ``id > after_id`` (one community's) into every message rollup.

    The same numbers ``RollupDelta.message`` accumulates in Python, aggregated by SQL instead, so no Python runs
    per message: bots are skipped by id (no join with ``members`` per row), a topic counts as its own channel,
    and the local day and hour come from the instant plus the community's UTC offset, given per run of time by
    ``LocalDays.offset_runs`` over the batch's instants.

    Args:
        cur: A DBAPI cursor inside the writer's transaction.
        community_id: The community of every message with ``id > after_id``.
        after_id: The largest message id before the batch's insert.
        offsets: ``LocalDays.offset_runs`` of the new messages' ``created_at`` values (at least one run).
        bots: Bot accounts among the new messages' authors (more are harmless): their messages are not counted.
    """
    params: list[int] = []
    if len(offsets) == 1:
        local = "m.created_at + ?"
        params.append(offsets[0][1])
    else:
        # Runs are sorted by start, and each covers the instants up to the next start.
        whens = " ".join("WHEN m.created_at < ? THEN ?" for _ in offsets[1:])
        local = f"m.created_at + CASE {whens} ELSE ? END"
        for (_, offset), (next_start, _) in pairwise(offsets):
            params += [next_start, offset]
        params.append(offsets[-1][1])
    # Day number and hour by floor division (local times before 1970 are negative), grouped as integers; only one
    # date() per group turns a day number into the ISO text SQLite's Date columns hold.
    cur.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {_NEW.split('.')[1]} (dn INTEGER, hr INTEGER, place INTEGER, "
        "member_id INTEGER, n INTEGER, replies INTEGER, imported INTEGER, first_at INTEGER, last_at INTEGER)"
    )
    cur.execute(f"DELETE FROM {_NEW}")
    not_bots = f" AND member_id NOT IN ({', '.join('?' * len(bots))})" if bots else ""
    cur.execute(
        f"INSERT INTO {_NEW} SELECT dn, hr, place, member_id, count(*), "
        "sum(is_reply AND reply_to_member_id IS NOT member_id), sum(imported_reactions), min(created_at), "
        "max(created_at) FROM (SELECT member_id, created_at, is_reply, reply_to_member_id, imported_reactions, "
        "coalesce(thread_id, channel_id) AS place, "
        f"(lt - ((lt % {_DAY_MS}) + {_DAY_MS}) % {_DAY_MS}) / {_DAY_MS} AS dn, "
        f"(((lt % {_DAY_MS}) + {_DAY_MS}) % {_DAY_MS}) / {_HOUR_MS} AS hr "
        f"FROM (SELECT *, {local} AS lt FROM messages m WHERE id > ?{not_bots})) GROUP BY dn, hr, place, member_id",
        [*params, after_id, *bots],
    )
    for sql in _MESSAGE_ROLLUPS_SQLITE:
        cur.execute(sql, (community_id,))
