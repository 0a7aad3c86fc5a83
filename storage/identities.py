"""The id caches of the event writer: platform ids (community name, account, channel) to database row ids.

Resolving an account or a channel inserts its row when it is new (``ON CONFLICT DO NOTHING``, so two writers
agree) and caches the id; the caches are an optimisation only. ``IngestStore`` drops them whenever a write fails
(for example after a member was deleted by another connection) before the write is retried.

Used from one thread at a time (the writer's worker thread), on the DBAPI cursor of the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storage.errors import UnknownCommunityError
from storage.events import ChannelRef, MemberRef
from storage.local_days import LocalDays
from storage.pg_rows import PgRows

# Ids per lookup statement (``IN (?, ...)`` on SQLite): well under SQLite's 32,766 bound parameters.
CHUNK = 1000


@dataclass(slots=True)
class CommunityIds:
    """A registered community: its id, name and local days."""

    id: int
    name: str
    days: LocalDays


class Identities:
    """The id caches and the inserts that fill them."""

    def __init__(self, dialect: str) -> None:
        """Empty caches for a database of ``dialect`` (``sqlite`` or ``postgresql``)."""
        self.dialect = dialect
        self.ph = "?" if dialect == "sqlite" else "%s"
        self.communities: dict[str, CommunityIds] = {}
        self.days_by_id: dict[int, LocalDays] = {}
        self.members: dict[tuple[int, str, str], int] = {}
        self.member_names: dict[int, str | None] = {}
        self.member_usernames: dict[int, str | None] = {}
        self.bots: set[int] = set()
        self.channels: dict[tuple[int, str, str], int] = {}
        self.pg = PgRows()  # PostgreSQL: batches sent as arrays (see storage/pg_rows.py)

    def invalidate(self) -> None:
        """Forget cached member and channel ids (after a deletion or a failed transaction)."""
        self.members.clear()
        self.member_names.clear()
        self.member_usernames.clear()
        self.bots.clear()
        self.channels.clear()

    def resolve_members(self, cur: Any, refs: Iterable[tuple[int, str, MemberRef]], seen_at: Any) -> None:
        """Make sure every referenced account has a members row (first seen at ``seen_at``) and its id is cached."""
        missing: dict[tuple[int, str, str], MemberRef] = {}
        renamed: list[tuple[str | None, int]] = []
        handles: list[tuple[str, int]] = []
        members = self.members
        names = self.member_names
        usernames = self.member_usernames
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
            cur.executemany(f"UPDATE members SET display_name = {self.ph} WHERE id = {self.ph}", renamed)
        if handles:
            cur.executemany(f"UPDATE members SET username = {self.ph} WHERE id = {self.ph}", handles)
        if not missing:
            return
        items = list(missing.items())
        if self.dialect == "sqlite":
            # One prepared statement whatever the number of new accounts (a multi-row VALUES statement of a new
            # size is compiled anew, which costs more than the insert).
            no = self.flag(False)
            cur.executemany(
                "INSERT INTO members (community_id, platform, platform_user_id, display_name, username, is_bot, "
                "first_seen_at, nudges_opt_out, leaderboard_opt_out, dm_unreachable_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                "ON CONFLICT (community_id, platform, platform_user_id) DO NOTHING",
                [
                    (community_id, platform, user_id, ref.display_name, ref.username, int(ref.is_bot), seen_at, no, no)
                    for (community_id, platform, user_id), ref in items
                ],
            )
        else:
            # One statement of fixed text, the accounts as arrays (storage/pg_rows.py); dm_unreachable_at stays NULL.
            self.pg.insert(
                cur,
                "members",
                "community_id, platform, platform_user_id, display_name, username, is_bot, first_seen_at, "
                "nudges_opt_out, leaderboard_opt_out",
                [
                    (community_id, platform, user_id, ref.display_name, ref.username, ref.is_bot, seen_at, False, False)
                    for (community_id, platform, user_id), ref in items
                ],
                "community_id, platform, platform_user_id",
            )
        # Looked up per (community, platform): with all three columns of the unique index the lookups are index
        # probes, where community_id alone scans every member of the community for each chunk.
        by_scope: dict[tuple[int, str], list[str]] = defaultdict(list)
        for community_id, platform, user_id in missing:
            by_scope[(community_id, platform)].append(user_id)
        for (community_id, platform), user_ids in by_scope.items():
            for start in range(0, len(user_ids), CHUNK):
                chunk_ids = user_ids[start : start + CHUNK]
                if self.dialect == "sqlite":
                    marks = ",".join(["?"] * len(chunk_ids))
                    cur.execute(
                        "SELECT id, platform, platform_user_id, display_name, username, is_bot FROM members "
                        f"WHERE community_id = ? AND platform = ? AND platform_user_id IN ({marks})",
                        [community_id, platform, *chunk_ids],
                    )
                else:
                    # A fixed text (parsed once, prepared by the server), the ids as one array.
                    ids_type = self.pg.array_type("members", "platform_user_id")
                    cur.execute(
                        "SELECT id, platform, platform_user_id, display_name, username, is_bot FROM members "
                        f"WHERE community_id = %s AND platform = %s AND platform_user_id = ANY(%b::{ids_type})",
                        [community_id, platform, chunk_ids],
                    )
                for member_id, platform, user_id, name, username, is_bot in cur.fetchall():
                    key = (community_id, platform, user_id)
                    self.members[key] = member_id
                    self.member_names[member_id] = name
                    self.member_usernames[member_id] = username
                    if is_bot:
                        self.bots.add(member_id)
                    seen = missing.get(key)
                    if seen is not None and seen.display_name is not None and seen.display_name != name:
                        # Known account seen under a new name (cache was cold): keep the latest name.
                        cur.execute(
                            f"UPDATE members SET display_name = {self.ph} WHERE id = {self.ph}",
                            [seen.display_name, member_id],
                        )
                        self.member_names[member_id] = seen.display_name
                    if seen is not None and seen.username is not None and seen.username != username:
                        # A handle changes hands over time: the latest one an account was seen with is kept.
                        cur.execute(
                            f"UPDATE members SET username = {self.ph} WHERE id = {self.ph}",
                            [seen.username, member_id],
                        )
                        self.member_usernames[member_id] = seen.username

    def resolve_channels(self, cur: Any, refs: Iterable[tuple[int, str, ChannelRef]]) -> None:
        """Make sure every referenced channel, thread parent and forum topic has a channels row."""
        wanted: dict[tuple[int, str, str], tuple[str | None, tuple[int, str, str] | None]] = {}
        for community_id, platform, ref in refs:
            key = (community_id, platform, ref.channel_id)
            parent_key = None
            if ref.parent_id is not None:
                parent_key = (community_id, platform, ref.parent_id)
                if parent_key not in self.channels:
                    wanted.setdefault(parent_key, (None, None))
            if key not in self.channels and (key not in wanted or wanted[key][0] is None):
                wanted[key] = (ref.name, parent_key)
            if ref.thread_id is not None:
                topic_key = (community_id, platform, f"{ref.channel_id}#{ref.thread_id}")
                if topic_key not in self.channels:
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
                parent_id = self.channels.get(parent) if parent else None
                cur.execute(
                    "INSERT INTO channels (community_id, platform, platform_channel_id, name, parent_id) "
                    f"VALUES ({self.ph}, {self.ph}, {self.ph}, {self.ph}, {self.ph}) "
                    "ON CONFLICT (community_id, platform, platform_channel_id) DO NOTHING",
                    [community_id, platform, channel_id, name, parent_id],
                )
                cur.execute(
                    f"SELECT id, name FROM channels WHERE community_id = {self.ph} AND platform = {self.ph} "
                    f"AND platform_channel_id = {self.ph}",
                    [community_id, platform, channel_id],
                )
                channel_row_id, stored_name = cur.fetchone()
                if name is not None and stored_name != name:
                    cur.execute(f"UPDATE channels SET name = {self.ph} WHERE id = {self.ph}", [name, channel_row_id])
                self.channels[key] = channel_row_id

    def flag(self, value: bool) -> object:
        """A boolean as the driver stores it (an integer on SQLite)."""
        return int(value) if self.dialect == "sqlite" else value

    def member(self, cid: int, platform: str, user_id: str) -> int:
        """The row id of a resolved account."""
        return self.members[(cid, platform, user_id)]

    def channel(self, cid: int, platform: str, ref: ChannelRef) -> tuple[int, int | None]:
        """The row ids of a resolved channel and of its forum topic (None without one)."""
        channel_id = self.channels[(cid, platform, ref.channel_id)]
        thread_id = None
        if ref.thread_id is not None:
            thread_id = self.channels[(cid, platform, f"{ref.channel_id}#{ref.thread_id}")]
        return channel_id, thread_id

    def community_days(self, cid: int) -> LocalDays:
        """The local days of a registered community, by id."""
        return self.days_by_id[cid]

    def community(self, name: str) -> CommunityIds:
        """A registered community.

        Raises:
            UnknownCommunityError: It was not registered.
        """
        info = self.communities.get(name)
        if info is None:
            raise UnknownCommunityError(name)
        return info
