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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage import ledger
from storage.engine import writing
from storage.errors import UnknownCommunityError
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
from storage.identities import CHUNK, CommunityIds, Identities
from storage.ledger import LedgerOutcome
from storage.local_days import LocalDays
from storage.models import Community
from storage.rollups import RollupDelta, apply_delta, apply_message_rollups, refresh_member_activity
from storage.types import bind_time, read_time, to_millis

log = logging.getLogger(__name__)


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
        self._ids = Identities(self.dialect)
        self._ph = self._ids.ph

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
        self._ids.communities[name] = CommunityIds(int(row.id), name, LocalDays(tz))
        self._ids.days_by_id[int(row.id)] = self._ids.communities[name].days
        return int(row.id)

    def is_registered(self, name: str) -> bool:
        """Whether events for this community can be written."""
        return name in self._ids.communities

    def community_id(self, name: str) -> int:
        """The id of a registered community."""
        return self._ids.community(name).id

    def invalidate_caches(self) -> None:
        """Forget cached member and channel ids (after a deletion or a failed transaction)."""
        self._ids.invalidate()

    # --- id resolution ---------------------------------------------------------------------------------------

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
        communities = self._ids.communities
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
        communities = self._ids.communities
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
        self._ids.resolve_members(cur, member_refs, now)
        self._ids.resolve_channels(cur, channel_refs)
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

    def _write_messages(self, cur: Any, events: list[MessageEvent], delta: RollupDelta) -> BatchResult:
        if self.dialect == "sqlite":
            return self._write_messages_sqlite(cur, events)
        return self._write_messages_postgres(cur, events, delta)

    def _write_messages_sqlite(self, cur: Any, events: list[MessageEvent]) -> BatchResult:
        """SQLite: insert the rows with one prepared statement, then let SQL count them into the rollups.

        No Python runs per stored message after its row is built: the new rows are those above the largest id
        before the insert (see ``_insert_returning``), and ``apply_message_rollups`` aggregates them, one
        community at a time (each has its own time zone).
        """
        store_text = self.store_text
        communities = self._ids.communities
        members = self._ids.members
        channels = self._ids.channels
        by_community: dict[int, tuple[LocalDays, list[tuple[Any, ...]]]] = {}
        for ev in events:
            info = communities[ev.community]
            cid = info.id
            found = by_community.get(cid)
            if found is None:
                found = by_community[cid] = (info.days, [])
            platform = _PLATFORM[ev.platform]
            channel = ev.channel
            thread = channel.thread_id
            reply_to_user = ev.reply_to_user_id
            # Repeats of a (channel, message id) within the batch are left to ON CONFLICT, like stored ones.
            found[1].append(
                (
                    channels[(cid, platform, channel.channel_id)],
                    ev.message_id,
                    members[(cid, platform, ev.author.user_id)],
                    to_millis(ev.occurred_at),
                    ev.length,
                    int(ev.has_code),
                    int(ev.has_link),
                    int(ev.reply_to_message_id is not None or reply_to_user is not None),  # MessageEvent.is_reply
                    channels[(cid, platform, f"{channel.channel_id}#{thread}")] if thread is not None else None,
                    members[(cid, platform, reply_to_user)] if reply_to_user else None,
                    ev.attachments,
                    ev.text if store_text else None,
                    ev.imported_reactions,
                )
            )
        stored = 0
        bots = self._ids.bots
        for cid, (days, rows) in by_community.items():
            before = self._insert_new(
                cur,
                "messages",
                "channel_id, platform_message_id, member_id, created_at, length, has_code, has_link, is_reply, "
                "thread_id, reply_to_member_id, attachments, text, imported_reactions",
                rows,
                "channel_id, platform_message_id",
            )
            cur.execute("SELECT count(*) FROM messages WHERE id > ?", (before,))
            count: int = cur.fetchone()[0]
            if count:
                authors = {row[2] for row in rows}
                apply_message_rollups(
                    cur, cid, before, days.offset_runs(row[3] for row in rows), sorted(authors & bots)
                )
            stored += count
        return BatchResult(messages=stored, duplicates=len(events) - stored)

    def _insert_new(self, cur: Any, table: str, columns: str, rows: list[tuple[Any, ...]], conflict: str) -> int:
        """SQLite: ``INSERT ... ON CONFLICT DO NOTHING`` of ``rows``; returns the largest id before.

        No other connection writes inside this IMMEDIATE transaction and rowids are assigned above the current
        maximum, so the rows inserted now are exactly those with a larger id.
        """
        cur.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
        before = cur.fetchone()[0]
        marks = ", ".join(["?"] * len(rows[0]))
        cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({conflict}) DO NOTHING", rows)
        return before  # type: ignore[no-any-return]

    def _write_messages_postgres(self, cur: Any, events: list[MessageEvent], delta: RollupDelta) -> BatchResult:
        # PostgreSQL counts the rollups in Python from the rows RETURNING gave back (SQLite aggregates them in
        # SQL, see _write_messages_sqlite). Dict lookups and bound values are hoisted into locals.
        store_text = self.store_text
        dialect = self.dialect
        communities = self._ids.communities
        members = self._ids.members
        channels = self._ids.channels
        rows: dict[tuple[int, str], tuple[Any, ...]] = {}
        meta: dict[tuple[int, str], tuple[int, int, date, int, bool, datetime, int, int]] = {}
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
            day, hour = info.days.day_hour(at)
            # A reply counts as "to others" unless it answers the author's own message.
            meta[key] = (
                cid,
                author,
                day,
                hour,
                is_reply and reply_to != author,
                at,
                thread_id if thread_id is not None else channel_id,  # a topic counts as its own channel
                ev.imported_reactions,
            )
        inserted = self._insert_returning(
            cur,
            "messages",
            "channel_id, platform_message_id, member_id, created_at, length, has_code, has_link, is_reply, "
            "thread_id, reply_to_member_id, attachments, text, imported_reactions",
            list(rows.values()),
            "channel_id, platform_message_id",
            "channel_id, platform_message_id",
        )
        bots = self._ids.bots
        count_message = delta.message
        for channel_id, message_id in inserted:
            cid, author, day, hour, reply_to_other, at, channel_key, imported = meta[(channel_id, message_id)]
            if author in bots:
                continue
            count_message(cid, author, day, hour, at, reply_to_other, channel_key, imported)
        return BatchResult(messages=len(inserted), duplicates=len(events) - len(inserted))

    def _insert_returning(
        self, cur: Any, table: str, columns: str, rows: list[tuple[Any, ...]], conflict: str, returning: str
    ) -> list[tuple[Any, ...]]:
        """``INSERT INTO table (columns) ... ON CONFLICT conflict DO NOTHING``; returns ``returning`` of new rows."""
        if not rows:
            return []
        if self.dialect == "sqlite":
            # One prepared statement for every batch (pysqlite caches it): a multi-row VALUES statement differs
            # with every batch size and was compiled anew each time (13,000 parameters cost more to prepare than
            # to run).
            before = self._insert_new(cur, table, columns, rows, conflict)
            cur.execute(f"SELECT {returning} FROM {table} WHERE id > ?", (before,))
            return cur.fetchall()  # type: ignore[no-any-return]
        # PostgreSQL: one statement of fixed text, the rows as one array per column (storage/pg_rows.py).
        return self._ids.pg.insert(cur, table, columns, rows, conflict, returning)

    def _reaction_targets(self, cur: Any, events: list[ReactionEvent]) -> dict[tuple[int, str], int]:
        """Authors of reacted messages the platform did not name, looked up among stored messages."""
        wanted: dict[int, set[str]] = defaultdict(set)
        for ev in events:
            if ev.message_author_id is None:
                cid = self._ids.communities[ev.community].id
                channel_id, _ = self._ids.channel(cid, ev.platform.value, ev.channel)
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
                        self._ids.bots.add(member_id)
        return found

    def _write_reactions(self, cur: Any, events: list[ReactionEvent], delta: RollupDelta) -> BatchResult:
        targets = self._reaction_targets(cur, events)
        # Keys touched by a removal in this batch need ordered, one-by-one handling; the rest is bulk.
        keyed: list[tuple[tuple[int, str, int, str], ReactionEvent, int, int | None]] = []
        with_removal: set[tuple[int, str, int, str]] = set()
        for ev in events:
            cid = self._ids.communities[ev.community].id
            platform = ev.platform.value
            channel_id, _ = self._ids.channel(cid, platform, ev.channel)
            reactor = self._ids.member(cid, platform, ev.member.user_id)
            if ev.message_author_id is not None:
                target: int | None = self._ids.member(cid, platform, ev.message_author_id)
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
                "reactions",
                "channel_id, platform_message_id, member_id, emoji, reacted_at, removed_at, target_member_id",
                list(bulk_rows.values()),
                "channel_id, platform_message_id, member_id, emoji",
                "channel_id, platform_message_id, member_id, emoji",
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
        if reactor in self._ids.bots:
            return
        day, hour = self._ids.community_days(cid).day_hour(at)
        counted_target = target if target is not None and target != reactor and target not in self._ids.bots else None
        delta.reaction(cid, reactor, counted_target, day, hour, at, sign)

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
            cid = self._ids.communities[ev.community].id
            platform = ev.platform.value
            member = self._ids.member(cid, platform, ev.member.user_id)
            kind = "join" if isinstance(ev, MemberJoined) else "leave"
            t = bind_time(ev.occurred_at, self.dialect)
            channel_id = self._ids.channel(cid, platform, ev.channel)[0] if ev.channel is not None else None
            key = (member, kind, t)
            if key not in rows:
                rows[key] = (member, kind, t, channel_id)
                meta[key] = (cid, ev.occurred_at)
        inserted = self._insert_returning(
            cur,
            "membership_events",
            "member_id, kind, occurred_at, channel_id",
            list(rows.values()),
            "member_id, kind, occurred_at",
            "member_id, kind, occurred_at",
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
            if member not in self._ids.bots:
                delta.membership(cid, self._ids.community_days(cid).day(at), joined=kind == "join")
        return BatchResult(joins=joins, leaves=leaves, duplicates=len(events) - joins - leaves)

    # --- ledger: committed one by one (the SQL is in storage/ledger.py) -------------------------------------

    def record_purchase(self, event: PurchaseEvent) -> LedgerOutcome:
        """Commit a purchase before returning. The same charge recorded again returns ``created=False``.

        Raises:
            UnknownCommunityError: The community is not registered.
            UnknownCourseError: The course is not in the catalog; nothing is stored.
        """
        return ledger.record_purchase(self._writes, self._ids, event)

    def record_refund(self, event: RefundEvent) -> LedgerOutcome:
        """Commit a refund of a recorded purchase. Refunding it again returns ``created=False``.

        Raises:
            UnknownPurchaseError: No purchase with that charge id; nothing is stored.
        """
        return ledger.record_refund(self._writes, self._ids, event)
