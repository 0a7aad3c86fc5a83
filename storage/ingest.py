"""Batched, idempotent ingestion: events in, raw rows and rollups out, one transaction per batch.

``IngestStore`` is the synchronous core the async ``EventWriter`` drives from a single worker thread. For each
batch it inserts raw rows with ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (SQLite 3.35+ and PostgreSQL
both support it): only rows actually inserted come back, so rollups are incremented for new events and never
for a duplicate, replay or redelivery, and the rollups commit or roll back together with the rows.

The hot path uses driver-level SQL on the transaction's DBAPI cursor: building SQLAlchemy constructs per batch
costs more than the inserts themselves.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.engine import writing
from storage.errors import UnknownCommunityError, UnknownCourseError, UnknownPurchaseError
from storage.events import (
    ActivityEvent,
    ChannelRef,
    MemberJoined,
    MemberLeft,
    MemberRef,
    MessageEvent,
    Platform,
    PurchaseEvent,
    ReactionEvent,
    RefundEvent,
)
from storage.local_days import LocalDays
from storage.models import Community, Course, Purchase, Refund
from storage.rollups import RollupDelta, apply_delta, refresh_member_activity
from storage.types import bind_time, read_time, to_millis

log = logging.getLogger(__name__)

# Rows per INSERT statement: 13 columns x 1000 rows stays under SQLite's 32,766 bound parameters.
CHUNK = 1000

# ``Platform.value`` goes through the enum descriptor machinery (about a microsecond each, several times per
# event); the hot path looks the platform's string up here instead.
_PLATFORM: dict[Platform, str] = {p: p.value for p in Platform}


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch changed. ``duplicates`` counts events that were already stored (or repeated in the batch)."""

    messages: int = 0
    reactions_added: int = 0
    reactions_removed: int = 0
    joins: int = 0
    leaves: int = 0
    duplicates: int = 0

    @property
    def stored(self) -> int:
        """Events that changed something."""
        return self.messages + self.reactions_added + self.reactions_removed + self.joins + self.leaves

    def __add__(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.messages + other.messages,
            self.reactions_added + other.reactions_added,
            self.reactions_removed + other.reactions_removed,
            self.joins + other.joins,
            self.leaves + other.leaves,
            self.duplicates + other.duplicates,
        )


@dataclass(frozen=True, slots=True)
class LedgerOutcome:
    """The result of recording a purchase or refund: the row's id and whether this call created it."""

    row_id: int
    created: bool


@dataclass(slots=True)
class _CommunityInfo:
    id: int
    name: str
    days: LocalDays


def _upsert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


class IngestStore:
    """Writes events into the database. Used from one thread at a time (the writer's worker thread).

    It caches community, member and channel ids; the caches are an optimisation only and are dropped whenever
    a write fails (for example after a member was deleted by another connection) before the write is retried.
    """

    def __init__(self, engine: Engine, *, store_text: bool = False) -> None:
        """Create a store.

        Args:
            engine: The database engine (schema already migrated).
            store_text: Keep message text. Off by default: only metadata is stored.
        """
        self.engine = engine
        self._writes = writing(engine)  # SQLite: take the write lock when a write transaction begins
        self.store_text = store_text
        self.dialect = engine.dialect.name
        self._ph = "?" if self.dialect == "sqlite" else "%s"
        self._communities: dict[str, _CommunityInfo] = {}
        self._days_by_id: dict[int, LocalDays] = {}
        self._members: dict[tuple[int, str, str], int] = {}
        self._member_names: dict[int, str | None] = {}
        self._member_usernames: dict[int, str | None] = {}
        self._bots: set[int] = set()
        self._channels: dict[tuple[int, str, str], int] = {}
        self._sql_cache: dict[tuple[str, int], str] = {}

    # --- communities -----------------------------------------------------------------------------------------

    def register_community(self, name: str, timezone: str) -> int:
        """Create the community if needed and set its time zone. Returns its id."""
        tz = ZoneInfo(timezone)
        with self._writes.begin() as conn:
            stmt = _upsert(conn)(Community).values(name=name, timezone=timezone, created_at=datetime.now(UTC))
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            row = conn.execute(select(Community.id, Community.timezone).where(Community.name == name)).one()
            if row.timezone != timezone:
                # Existing rollups were bucketed in the old zone; the operator is told how to rebuild them.
                log.warning(
                    "community %r time zone changed from %s to %s: run `cohortbot db rebuild-rollups` so past "
                    "days are counted in the new zone",
                    name,
                    row.timezone,
                    timezone,
                )
                conn.execute(update(Community).where(Community.id == row.id).values(timezone=timezone))
        self._communities[name] = _CommunityInfo(int(row.id), name, LocalDays(tz))
        self._days_by_id[int(row.id)] = self._communities[name].days
        return int(row.id)

    def is_registered(self, name: str) -> bool:
        """Whether events for this community can be written."""
        return name in self._communities

    def community_id(self, name: str) -> int:
        """The id of a registered community."""
        return self._community(name).id

    def _community(self, name: str) -> _CommunityInfo:
        info = self._communities.get(name)
        if info is None:
            raise UnknownCommunityError(name)
        return info

    def invalidate_caches(self) -> None:
        """Forget cached member and channel ids (after a deletion or a failed transaction)."""
        self._members.clear()
        self._member_names.clear()
        self._member_usernames.clear()
        self._bots.clear()
        self._channels.clear()

    # --- id resolution ---------------------------------------------------------------------------------------

    def _values_sql(self, head: str, ncols: int, nrows: int, tail: str) -> str:
        key = (head + tail, nrows)
        sql = self._sql_cache.get(key)
        if sql is None:
            row = "(" + ",".join([self._ph] * ncols) + ")"
            sql = f"{head} VALUES {','.join([row] * nrows)} {tail}"
            self._sql_cache[key] = sql
        return sql

    def _resolve_members(self, cur: Any, refs: Iterable[tuple[int, str, MemberRef]], seen_at: Any) -> None:
        """Make sure every referenced account has a members row (first seen at ``seen_at``) and its id is cached."""
        missing: dict[tuple[int, str, str], MemberRef] = {}
        renamed: list[tuple[str | None, int]] = []
        handles: list[tuple[str, int]] = []
        members = self._members
        names = self._member_names
        usernames = self._member_usernames
        for community_id, platform, ref in refs:
            key = (community_id, platform, ref.user_id)
            member_id = members.get(key)
            name = ref.display_name
            if member_id is None:
                known = missing.get(key)
                if known is None or (name and not known.display_name) or (ref.username and not known.username):
                    missing[key] = ref
                continue
            if name is not None and names.get(member_id) != name:
                names[member_id] = name
                renamed.append((name, member_id))
            if ref.username is not None and usernames.get(member_id) != ref.username:
                usernames[member_id] = ref.username
                handles.append((ref.username, member_id))
        if renamed:
            cur.executemany(f"UPDATE members SET display_name = {self._ph} WHERE id = {self._ph}", renamed)
        if handles:
            cur.executemany(f"UPDATE members SET username = {self._ph} WHERE id = {self._ph}", handles)
        if not missing:
            return
        items = list(missing.items())
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            params: list[Any] = []
            for (community_id, platform, user_id), ref in chunk:
                no = self._bool(False)
                params += [
                    community_id,
                    platform,
                    user_id,
                    ref.display_name,
                    ref.username,
                    self._bool(ref.is_bot),
                    seen_at,
                    no,
                    no,
                    None,
                ]
            sql = self._values_sql(
                "INSERT INTO members (community_id, platform, platform_user_id, display_name, username, is_bot, "
                "first_seen_at, nudges_opt_out, leaderboard_opt_out, dm_unreachable_at)",
                10,
                len(chunk),
                "ON CONFLICT (community_id, platform, platform_user_id) DO NOTHING",
            )
            cur.execute(sql, params)
        # Looked up per (community, platform): with all three columns of the unique index the lookups are index
        # probes, where community_id alone scans every member of the community for each chunk.
        by_scope: dict[tuple[int, str], list[str]] = defaultdict(list)
        for community_id, platform, user_id in missing:
            by_scope[(community_id, platform)].append(user_id)
        for (community_id, platform), user_ids in by_scope.items():
            for start in range(0, len(user_ids), CHUNK):
                chunk_ids = user_ids[start : start + CHUNK]
                marks = ",".join([self._ph] * len(chunk_ids))
                cur.execute(
                    "SELECT id, platform, platform_user_id, display_name, username, is_bot FROM members "
                    f"WHERE community_id = {self._ph} AND platform = {self._ph} AND platform_user_id IN ({marks})",
                    [community_id, platform, *chunk_ids],
                )
                for member_id, platform, user_id, name, username, is_bot in cur.fetchall():
                    key = (community_id, platform, user_id)
                    self._members[key] = member_id
                    self._member_names[member_id] = name
                    self._member_usernames[member_id] = username
                    if is_bot:
                        self._bots.add(member_id)
                    seen = missing.get(key)
                    if seen is not None and seen.display_name is not None and seen.display_name != name:
                        # Known account seen under a new name (cache was cold): keep the latest name.
                        cur.execute(
                            f"UPDATE members SET display_name = {self._ph} WHERE id = {self._ph}",
                            [seen.display_name, member_id],
                        )
                        self._member_names[member_id] = seen.display_name
                    if seen is not None and seen.username is not None and seen.username != username:
                        # A handle changes hands over time: the latest one an account was seen with is kept.
                        cur.execute(
                            f"UPDATE members SET username = {self._ph} WHERE id = {self._ph}",
                            [seen.username, member_id],
                        )
                        self._member_usernames[member_id] = seen.username

    def _resolve_channels(self, cur: Any, refs: Iterable[tuple[int, str, ChannelRef]]) -> None:
        """Make sure every referenced channel, thread parent and forum topic has a channels row."""
        wanted: dict[tuple[int, str, str], tuple[str | None, tuple[int, str, str] | None]] = {}
        for community_id, platform, ref in refs:
            key = (community_id, platform, ref.channel_id)
            parent_key = None
            if ref.parent_id is not None:
                parent_key = (community_id, platform, ref.parent_id)
                if parent_key not in self._channels:
                    wanted.setdefault(parent_key, (None, None))
            if key not in self._channels and (key not in wanted or wanted[key][0] is None):
                wanted[key] = (ref.name, parent_key)
            if ref.thread_id is not None:
                topic_key = (community_id, platform, f"{ref.channel_id}#{ref.thread_id}")
                if topic_key not in self._channels:
                    wanted.setdefault(topic_key, (None, key))
        if not wanted:
            return
        # Parents first, so that children can point at them.
        pending = dict(wanted)
        while pending:
            ready = [k for k, (_, parent) in pending.items() if parent is None or parent not in pending]
            for key in ready:
                name, parent = pending.pop(key)
                community_id, platform, channel_id = key
                parent_id = self._channels.get(parent) if parent else None
                cur.execute(
                    "INSERT INTO channels (community_id, platform, platform_channel_id, name, parent_id) "
                    f"VALUES ({self._ph}, {self._ph}, {self._ph}, {self._ph}, {self._ph}) "
                    "ON CONFLICT (community_id, platform, platform_channel_id) DO NOTHING",
                    [community_id, platform, channel_id, name, parent_id],
                )
                cur.execute(
                    f"SELECT id, name FROM channels WHERE community_id = {self._ph} AND platform = {self._ph} "
                    f"AND platform_channel_id = {self._ph}",
                    [community_id, platform, channel_id],
                )
                channel_row_id, stored_name = cur.fetchone()
                if name is not None and stored_name != name:
                    cur.execute(f"UPDATE channels SET name = {self._ph} WHERE id = {self._ph}", [name, channel_row_id])
                self._channels[key] = channel_row_id

    def _bool(self, value: bool) -> object:
        return int(value) if self.dialect == "sqlite" else value

    # --- batches ---------------------------------------------------------------------------------------------

    def write_batch(self, events: Sequence[ActivityEvent]) -> BatchResult:
        """Store a batch of activity events and update rollups, all in one transaction.

        Args:
            events: Messages, reactions, joins and leaves, in delivery order. Duplicates (within the batch or of
                anything stored before) are skipped.

        Returns:
            Counts of what was stored and what was a duplicate.

        Raises:
            UnknownCommunityError: An event names a community that was not registered; nothing is stored.
        """
        if not events:
            return BatchResult()
        communities = self._communities
        for event in events:
            if event.community not in communities:
                raise UnknownCommunityError(event.community)
        with self._writes.begin() as conn:
            return self._write(conn, events)

    def _write(self, conn: Connection, events: Sequence[ActivityEvent]) -> BatchResult:
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        # New accounts are "first seen" at the batch's earliest event, not at write time: for imported history
        # that is years apart, and first_seen_at stands in for the join of members with no other trace.
        now = bind_time(min(event.occurred_at for event in events), self.dialect)
        messages: list[MessageEvent] = []
        reactions: list[ReactionEvent] = []
        memberships: list[MemberJoined | MemberLeft] = []
        member_refs: list[tuple[int, str, MemberRef]] = []
        channel_refs: list[tuple[int, str, ChannelRef]] = []
        add_member = member_refs.append
        add_channel = channel_refs.append
        communities = self._communities
        for event in events:
            cid = communities[event.community].id
            platform = _PLATFORM[event.platform]
            if isinstance(event, MessageEvent):
                messages.append(event)
                add_member((cid, platform, event.author))
                if event.reply_to_user_id is not None:
                    add_member((cid, platform, MemberRef(event.reply_to_user_id)))
                add_channel((cid, platform, event.channel))
            elif isinstance(event, ReactionEvent):
                reactions.append(event)
                add_member((cid, platform, event.member))
                if event.message_author_id is not None:
                    add_member((cid, platform, MemberRef(event.message_author_id)))
                add_channel((cid, platform, event.channel))
            else:
                memberships.append(event)
                add_member((cid, platform, event.member))
                if event.channel is not None:
                    add_channel((cid, platform, event.channel))
        self._resolve_members(cur, member_refs, now)
        self._resolve_channels(cur, channel_refs)
        delta = RollupDelta()
        result = BatchResult()
        if messages:
            result += self._write_messages(cur, messages, delta)
        if reactions:
            result += self._write_reactions(cur, reactions, delta)
        if memberships:
            result += self._write_memberships(cur, memberships, delta)
        apply_delta(conn, delta)
        if delta.refresh_members:
            refresh_member_activity(conn, delta.refresh_members)
        cur.close()
        return result

    def _member(self, cid: int, platform: str, user_id: str) -> int:
        return self._members[(cid, platform, user_id)]

    def _channel(self, cid: int, platform: str, ref: ChannelRef) -> tuple[int, int | None]:
        channel_id = self._channels[(cid, platform, ref.channel_id)]
        thread_id = None
        if ref.thread_id is not None:
            thread_id = self._channels[(cid, platform, f"{ref.channel_id}#{ref.thread_id}")]
        return channel_id, thread_id

    def _write_messages(self, cur: Any, events: list[MessageEvent], delta: RollupDelta) -> BatchResult:
        # The busiest loop of ingestion: dict lookups and bound values are hoisted into locals, and each
        # timestamp is converted once (its epoch milliseconds are both the SQLite value and the day key).
        store_text = self.store_text
        dialect = self.dialect
        sqlite = dialect == "sqlite"
        communities = self._communities
        members = self._members
        channels = self._channels
        rows: dict[tuple[int, str], tuple[Any, ...]] = {}
        meta: dict[tuple[int, str], tuple[int, int, date, bool, datetime, int, int]] = {}
        for ev in events:
            info = communities[ev.community]
            cid = info.id
            platform = _PLATFORM[ev.platform]
            channel = ev.channel
            channel_id = channels[(cid, platform, channel.channel_id)]
            key = (channel_id, ev.message_id)
            if key in rows:
                continue
            thread_id = (
                channels[(cid, platform, f"{channel.channel_id}#{channel.thread_id}")]
                if channel.thread_id is not None
                else None
            )
            author = members[(cid, platform, ev.author.user_id)]
            reply_to_user = ev.reply_to_user_id
            reply_to = members[(cid, platform, reply_to_user)] if reply_to_user else None
            is_reply = ev.reply_to_message_id is not None or reply_to_user is not None  # MessageEvent.is_reply
            at = ev.occurred_at
            if sqlite:
                millis = to_millis(at)
                rows[key] = (
                    channel_id,
                    ev.message_id,
                    author,
                    millis,
                    ev.length,
                    int(ev.has_code),
                    int(ev.has_link),
                    int(is_reply),
                    thread_id,
                    reply_to,
                    ev.attachments,
                    ev.text if store_text else None,
                    ev.imported_reactions,
                )
                day = info.days.day_of_millis(millis)
            else:
                rows[key] = (
                    channel_id,
                    ev.message_id,
                    author,
                    bind_time(at, dialect),
                    ev.length,
                    ev.has_code,
                    ev.has_link,
                    is_reply,
                    thread_id,
                    reply_to,
                    ev.attachments,
                    ev.text if store_text else None,
                    ev.imported_reactions,
                )
                day = info.days.day(at)
            # A reply counts as "to others" unless it answers the author's own message.
            meta[key] = (
                cid,
                author,
                day,
                is_reply and reply_to != author,
                at,
                thread_id if thread_id is not None else channel_id,  # a topic counts as its own channel
                ev.imported_reactions,
            )
        inserted = self._insert_returning(
            cur,
            "INSERT INTO messages (channel_id, platform_message_id, member_id, created_at, length, has_code, "
            "has_link, is_reply, thread_id, reply_to_member_id, attachments, text, imported_reactions)",
            13,
            list(rows.values()),
            "ON CONFLICT (channel_id, platform_message_id) DO NOTHING RETURNING channel_id, platform_message_id",
        )
        bots = self._bots
        count_message = delta.message
        for channel_id, message_id in inserted:
            cid, author, day, reply_to_other, at, channel_key, imported = meta[(channel_id, message_id)]
            if author in bots:
                continue
            count_message(cid, author, day, at, reply_to_other, channel_key, imported)
        return BatchResult(messages=len(inserted), duplicates=len(events) - len(inserted))

    def _insert_returning(
        self, cur: Any, head: str, ncols: int, rows: list[tuple[Any, ...]], tail: str
    ) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            sql = self._values_sql(head, ncols, len(chunk), tail)
            cur.execute(sql, list(chain.from_iterable(chunk)))
            fetched = cur.fetchall()
            # Both drivers return plain tuples by default; only copy rows of another type.
            out.extend(fetched if not fetched or type(fetched[0]) is tuple else map(tuple, fetched))
        return out

    def _reaction_targets(self, cur: Any, events: list[ReactionEvent]) -> dict[tuple[int, str], int]:
        """Authors of reacted messages the platform did not name, looked up among stored messages."""
        wanted: dict[int, set[str]] = defaultdict(set)
        for ev in events:
            if ev.message_author_id is None:
                cid = self._communities[ev.community].id
                channel_id, _ = self._channel(cid, ev.platform.value, ev.channel)
                wanted[channel_id].add(ev.message_id)
        found: dict[tuple[int, str], int] = {}
        for channel_id, ids in wanted.items():
            id_list = sorted(ids)
            for start in range(0, len(id_list), CHUNK):
                chunk = id_list[start : start + CHUNK]
                marks = ",".join([self._ph] * len(chunk))
                # The author's bot flag comes along: the author is not among this batch's resolved accounts, and a
                # bot must not be credited with reactions received.
                cur.execute(
                    "SELECT m.platform_message_id, m.member_id, a.is_bot FROM messages m "
                    "JOIN members a ON a.id = m.member_id "
                    f"WHERE m.channel_id = {self._ph} AND m.platform_message_id IN ({marks})",
                    [channel_id, *chunk],
                )
                for message_id, member_id, is_bot in cur.fetchall():
                    found[(channel_id, message_id)] = member_id
                    if is_bot:
                        self._bots.add(member_id)
        return found

    def _write_reactions(self, cur: Any, events: list[ReactionEvent], delta: RollupDelta) -> BatchResult:
        targets = self._reaction_targets(cur, events)
        # Keys touched by a removal in this batch need ordered, one-by-one handling; the rest is bulk.
        keyed: list[tuple[tuple[int, str, int, str], ReactionEvent, int, int | None]] = []
        with_removal: set[tuple[int, str, int, str]] = set()
        for ev in events:
            cid = self._communities[ev.community].id
            platform = ev.platform.value
            channel_id, _ = self._channel(cid, platform, ev.channel)
            reactor = self._member(cid, platform, ev.member.user_id)
            if ev.message_author_id is not None:
                target: int | None = self._member(cid, platform, ev.message_author_id)
            else:
                target = targets.get((channel_id, ev.message_id))
            key = (channel_id, ev.message_id, reactor, ev.emoji)
            keyed.append((key, ev, cid, target))
            if not ev.added:
                with_removal.add(key)
        bulk_rows: dict[tuple[int, str, int, str], tuple[Any, ...]] = {}
        bulk_meta: dict[tuple[int, str, int, str], tuple[ReactionEvent, int, int | None]] = {}
        ordered: list[tuple[tuple[int, str, int, str], ReactionEvent, int, int | None]] = []
        for key, ev, cid, target in keyed:
            if key in with_removal:
                ordered.append((key, ev, cid, target))
            elif key not in bulk_rows:
                bulk_rows[key] = (*key, bind_time(ev.occurred_at, self.dialect), None, target)
                bulk_meta[key] = (ev, cid, target)
        added = removed = 0
        if bulk_rows:
            inserted = self._insert_returning(
                cur,
                "INSERT INTO reactions (channel_id, platform_message_id, member_id, emoji, reacted_at, removed_at, "
                "target_member_id)",
                7,
                list(bulk_rows.values()),
                "ON CONFLICT (channel_id, platform_message_id, member_id, emoji) DO NOTHING "
                "RETURNING channel_id, platform_message_id, member_id, emoji",
            )
            for row in inserted:
                key = (row[0], row[1], row[2], row[3])
                ev, cid, target = bulk_meta.pop(key)
                self._count_reaction(delta, cid, key[2], target, ev.occurred_at, +1)
            added += len(inserted)
            # Keys that already had a row: a plain duplicate, or a reaction given again after its removal.
            # Rare, so they take the ordered path, which tells the two apart.
            ordered.extend((key, ev, cid, target) for key, (ev, cid, target) in bulk_meta.items())
        # Ordered path: a small state machine per reaction key (see models.Reaction).
        ordered.sort(key=lambda item: item[1].occurred_at)
        for key, ev, cid, target in ordered:
            outcome = self._apply_reaction_change(cur, key, ev, target)
            if outcome is None:
                continue
            sign, reacted_at, stored_target = outcome
            self._count_reaction(delta, cid, key[2], stored_target, reacted_at, sign)
            if sign > 0:
                added += 1
            else:
                removed += 1
        return BatchResult(reactions_added=added, reactions_removed=removed, duplicates=len(events) - added - removed)

    def _count_reaction(
        self, delta: RollupDelta, cid: int, reactor: int, target: int | None, at: datetime, sign: int
    ) -> None:
        if reactor in self._bots:
            return
        day = self._community_days(cid).day(at)
        counted_target = target if target is not None and target != reactor and target not in self._bots else None
        delta.reaction(cid, reactor, counted_target, day, at, sign)

    def _community_days(self, cid: int) -> LocalDays:
        return self._days_by_id[cid]

    def _apply_reaction_change(
        self, cur: Any, key: tuple[int, str, int, str], ev: ReactionEvent, target: int | None
    ) -> tuple[int, datetime, int | None] | None:
        """Apply one add/remove in order. Returns (+1|-1, instant it counts at, target) or None if no change."""
        ph = self._ph
        d = self.dialect
        t = bind_time(ev.occurred_at, d)
        where = f"channel_id = {ph} AND platform_message_id = {ph} AND member_id = {ph} AND emoji = {ph}"
        cur.execute(f"SELECT id, reacted_at, removed_at, target_member_id FROM reactions WHERE {where}", list(key))
        row = cur.fetchone()
        at = read_time(t, d)
        if row is None:
            if ev.added:
                cur.execute(
                    "INSERT INTO reactions (channel_id, platform_message_id, member_id, emoji, reacted_at, "
                    f"removed_at, target_member_id) VALUES ({ph}, {ph}, {ph}, {ph}, {ph}, NULL, {ph})",
                    [*key, t, target],
                )
                return (+1, at, target)
            # Removal of a reaction we never saw added: a tombstone stops an older replayed "add".
            cur.execute(
                "INSERT INTO reactions (channel_id, platform_message_id, member_id, emoji, reacted_at, "
                f"removed_at, target_member_id) VALUES ({ph}, {ph}, {ph}, {ph}, NULL, {ph}, {ph})",
                [*key, t, target],
            )
            return None
        row_id, reacted_raw, removed_raw, stored_target = row
        reacted = read_time(reacted_raw, d) if reacted_raw is not None else None
        removed = read_time(removed_raw, d) if removed_raw is not None else None
        if ev.added:
            if removed is not None and at > removed:
                new_target = stored_target if stored_target is not None else target
                cur.execute(
                    f"UPDATE reactions SET reacted_at = {ph}, removed_at = NULL, target_member_id = {ph} "
                    f"WHERE id = {ph}",
                    [t, new_target, row_id],
                )
                return (+1, at, new_target)
            return None
        if removed is None and reacted is not None and at >= reacted:
            cur.execute(f"UPDATE reactions SET removed_at = {ph} WHERE id = {ph}", [t, row_id])
            return (-1, reacted, stored_target)
        if removed is not None and at > removed:
            cur.execute(f"UPDATE reactions SET removed_at = {ph} WHERE id = {ph}", [t, row_id])
        return None

    def _write_memberships(self, cur: Any, events: list[MemberJoined | MemberLeft], delta: RollupDelta) -> BatchResult:
        rows: dict[tuple[int, str, Any], tuple[Any, ...]] = {}
        meta: dict[tuple[int, str, Any], tuple[int, datetime]] = {}
        for ev in events:
            cid = self._communities[ev.community].id
            platform = ev.platform.value
            member = self._member(cid, platform, ev.member.user_id)
            kind = "join" if isinstance(ev, MemberJoined) else "leave"
            t = bind_time(ev.occurred_at, self.dialect)
            channel_id = self._channel(cid, platform, ev.channel)[0] if ev.channel is not None else None
            key = (member, kind, t)
            if key not in rows:
                rows[key] = (member, kind, t, channel_id)
                meta[key] = (cid, ev.occurred_at)
        inserted = self._insert_returning(
            cur,
            "INSERT INTO membership_events (member_id, kind, occurred_at, channel_id)",
            4,
            list(rows.values()),
            "ON CONFLICT (member_id, kind, occurred_at) DO NOTHING RETURNING member_id, kind, occurred_at",
        )
        joins = leaves = 0
        ph = self._ph
        for member, kind, raw_t in inserted:
            t = bind_time(read_time(raw_t, self.dialect), self.dialect)
            cid, at = meta[(member, kind, t)]
            if kind == "join":
                joins += 1
                cur.execute(
                    "UPDATE members SET "
                    f"first_joined_at = CASE WHEN first_joined_at IS NULL OR first_joined_at > {ph} THEN {ph} "
                    "ELSE first_joined_at END, "
                    f"last_joined_at = CASE WHEN last_joined_at IS NULL OR last_joined_at < {ph} THEN {ph} "
                    f"ELSE last_joined_at END WHERE id = {ph}",
                    [t, t, t, t, member],
                )
            else:
                leaves += 1
                cur.execute(
                    f"UPDATE members SET last_left_at = CASE WHEN last_left_at IS NULL OR last_left_at < {ph} "
                    f"THEN {ph} ELSE last_left_at END WHERE id = {ph}",
                    [t, t, member],
                )
            if member not in self._bots:
                delta.membership(cid, self._community_days(cid).day(at), joined=kind == "join")
        return BatchResult(joins=joins, leaves=leaves, duplicates=len(events) - joins - leaves)

    # --- ledger: committed one by one ------------------------------------------------------------------------

    def record_purchase(self, event: PurchaseEvent) -> LedgerOutcome:
        """Commit a purchase before returning. The same charge recorded again returns ``created=False``.

        Raises:
            UnknownCommunityError: The community is not registered.
            UnknownCourseError: The course is not in the catalog; nothing is stored.
        """
        info = self._community(event.community)
        platform = event.platform.value
        with self._writes.begin() as conn:
            course_id = conn.execute(
                select(Course.id).where(Course.community_id == info.id, Course.course_key == event.course_id)
            ).scalar()
            if course_id is None:
                raise UnknownCourseError(event.community, event.course_id)
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            refs = [(info.id, platform, event.member)]
            if event.granted_by is not None:
                refs.append((info.id, platform, MemberRef(event.granted_by)))
            self._resolve_members(cur, refs, bind_time(event.occurred_at, self.dialect))
            cur.close()
            member_id = self._member(info.id, platform, event.member.user_id)
            granted_by = self._member(info.id, platform, event.granted_by) if event.granted_by else None
            stmt = (
                _upsert(conn)(Purchase)
                .values(
                    community_id=info.id,
                    member_id=member_id,
                    course_id=course_id,
                    platform=platform,
                    charge_id=event.charge_id,
                    provider_charge_id=event.provider_charge_id,
                    source=event.source.value,
                    amount=event.amount,
                    currency=event.currency,
                    purchased_at=event.occurred_at,
                    granted_by_member_id=granted_by,
                    is_test=event.is_test,
                    access_ends_at=event.access_ends_at,
                )
                .on_conflict_do_nothing(index_elements=["platform", "charge_id"])
                .returning(Purchase.id)
            )
            new_id = conn.execute(stmt).scalar()
            if new_id is not None:
                return LedgerOutcome(int(new_id), created=True)
            existing = conn.execute(
                select(Purchase.id).where(Purchase.platform == platform, Purchase.charge_id == event.charge_id)
            ).scalar_one()
            return LedgerOutcome(int(existing), created=False)

    def record_refund(self, event: RefundEvent) -> LedgerOutcome:
        """Commit a refund of a recorded purchase. Refunding it again returns ``created=False``.

        Raises:
            UnknownPurchaseError: No purchase with that charge id; nothing is stored.
        """
        info = self._community(event.community)
        platform = event.platform.value
        with self._writes.begin() as conn:
            purchase_id = conn.execute(
                select(Purchase.id).where(
                    Purchase.community_id == info.id,
                    Purchase.platform == platform,
                    Purchase.charge_id == event.charge_id,
                )
            ).scalar()
            if purchase_id is None:
                raise UnknownPurchaseError(platform, event.charge_id)
            refunded_by = None
            if event.refunded_by is not None:
                cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                self._resolve_members(
                    cur,
                    [(info.id, platform, MemberRef(event.refunded_by))],
                    bind_time(event.occurred_at, self.dialect),
                )
                cur.close()
                refunded_by = self._member(info.id, platform, event.refunded_by)
            stmt = (
                _upsert(conn)(Refund)
                .values(
                    purchase_id=purchase_id,
                    refunded_at=event.occurred_at,
                    reason=event.reason,
                    refunded_by_member_id=refunded_by,
                )
                .on_conflict_do_nothing(index_elements=["purchase_id"])
                .returning(Refund.id)
            )
            new_id = conn.execute(stmt).scalar()
            if new_id is not None:
                return LedgerOutcome(int(new_id), created=True)
            existing = conn.execute(select(Refund.id).where(Refund.purchase_id == purchase_id)).scalar_one()
            return LedgerOutcome(int(existing), created=False)
