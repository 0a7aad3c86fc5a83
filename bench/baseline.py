"""The raw-sqlite3 baseline: the same raw rows, inserted with nothing but ``executemany``.

What it does: for every event the writer was given (duplicates included, in the same order, 1,000 events per
transaction) it inserts the same ``messages`` / ``reactions`` / ``membership_events`` rows with
``INSERT ... ON CONFLICT DO NOTHING`` (one ``executemany`` per table and batch) and applies reaction removals
with one ``UPDATE`` ``executemany``, then commits. Same schema (created by the same migrations), same PRAGMAs
as ``storage.engine`` (it uses the driver connection of an engine from ``make_engine``: WAL,
synchronous=NORMAL, foreign_keys=ON, busy timeout), one connection kept open.

What it does not do: maintain any rollup (member_daily_activity, member_activity, community_daily_totals, the
membership columns of members), resolve ids (member, channel and reacted-message-author ids are looked up
before the clock starts), validate events, order reaction changes, or run through a queue and a thread. It is
the floor cost of getting the rows into SQLite from Python.

On PostgreSQL (``python -m bench ingest --url``), :func:`run_postgres` inserts the same rows (``datetime`` and
``bool`` where SQLite has milliseconds and 0/1) with the same statements through psycopg ``executemany``, one
transaction per 1,000 events, on one connection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from storage.engine import make_engine
from storage.events import ActivityEvent, MemberJoined, MessageEvent, ReactionEvent
from storage.migrate import upgrade
from storage.types import to_millis, truncate_to_millis

_MESSAGES = (
    "INSERT INTO messages (channel_id, platform_message_id, member_id, created_at, length, has_code, "
    "has_link, is_reply, thread_id, reply_to_member_id, attachments, text) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (channel_id, platform_message_id) DO NOTHING"
)
_REACTIONS = (
    "INSERT INTO reactions (channel_id, platform_message_id, member_id, emoji, reacted_at, removed_at, "
    "target_member_id) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (channel_id, platform_message_id, member_id, emoji) DO NOTHING"
)
_REMOVALS = (
    "UPDATE reactions SET removed_at = ? WHERE channel_id = ? AND platform_message_id = ? AND member_id = ? "
    "AND emoji = ? AND removed_at IS NULL"
)
_MEMBERSHIPS = (
    "INSERT INTO membership_events (member_id, kind, occurred_at, channel_id) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (member_id, kind, occurred_at) DO NOTHING"
)

Row = tuple[object, ...]


@dataclass(slots=True)
class Batch:
    """The rows of 1,000 consecutive events, by statement."""

    messages: list[Row]
    reactions: list[Row]
    removals: list[Row]
    memberships: list[Row]


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain ``sqlite3.Connection`` configured exactly as ``storage.engine`` configures SQLite.

    It is the driver connection of an engine made by ``make_engine``, so every PRAGMA the engine sets on connect
    (WAL, synchronous=NORMAL, busy timeout, foreign keys, and whatever is added later) applies here too. Only
    the sqlite3 module is used on it: no SQLAlchemy statement runs.
    """
    engine = make_engine(f"sqlite:///{path}")
    pooled = engine.raw_connection()
    try:
        conn = pooled.driver_connection
        assert isinstance(conn, sqlite3.Connection)
        conn.isolation_level = None  # explicit BEGIN/COMMIT below, as the engine's connect hook also sets
        yield conn
    finally:
        pooled.close()
        engine.dispose()


def create_like(path: Path, source: Path) -> None:
    """Create a fresh database with the migrated schema and the source's communities, members and channels.

    The baseline inserts only event rows; the rows they reference (with the very ids the writer assigned)
    are copied up front so that foreign keys hold.
    """
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    with connect(path) as conn:
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        conn.execute("BEGIN")
        for table in ("communities", "members", "channels"):
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE src")


def build_batches(path: Path, events: Sequence[ActivityEvent], batch_size: int = 1000) -> list[Batch]:
    """Turn events into driver-level rows with the ids stored in ``path`` (untimed preparation)."""
    conn = sqlite3.connect(path)
    try:
        member_rows = conn.execute("SELECT id, platform, platform_user_id FROM members").fetchall()
        channel_rows = conn.execute("SELECT id, platform, platform_channel_id FROM channels").fetchall()
    finally:
        conn.close()
    return batches_from_ids(member_rows, channel_rows, events, batch_size, postgres=False)


def batches_from_ids(
    member_rows: Sequence[tuple[int, str, str]],
    channel_rows: Sequence[tuple[int, str, str]],
    events: Sequence[ActivityEvent],
    batch_size: int = 1000,
    *,
    postgres: bool,
) -> list[Batch]:
    """Turn events into driver-level rows, given the stored ``(id, platform, platform id)`` of members and channels.

    SQLite rows carry timestamps as epoch milliseconds and flags as 0/1, PostgreSQL rows as ``datetime`` (to the
    millisecond, as ``storage.types.bind_time`` binds them) and ``bool``: what each schema stores.
    """
    members = {(platform, user_id): row_id for row_id, platform, user_id in member_rows}
    channels = {(platform, channel_id): row_id for row_id, platform, channel_id in channel_rows}
    when: Callable[[datetime], object] = truncate_to_millis if postgres else to_millis
    flag: Callable[[bool], object] = bool if postgres else int
    # Authors of messages by (channel row, message id): reactions that do not name the author (Telegram) get
    # their target from here, where the writer runs a SELECT against stored messages.
    authors: dict[tuple[int, str], int] = {}
    batches: list[Batch] = []
    for start in range(0, len(events), batch_size):
        batch = Batch([], [], [], [])
        for ev in events[start : start + batch_size]:
            platform = ev.platform.value
            if isinstance(ev, MessageEvent):
                channel = channels[(platform, ev.channel.channel_id)]
                thread = (
                    channels[(platform, f"{ev.channel.channel_id}#{ev.channel.thread_id}")]
                    if ev.channel.thread_id is not None
                    else None
                )
                author = members[(platform, ev.author.user_id)]
                reply_to = members[(platform, ev.reply_to_user_id)] if ev.reply_to_user_id else None
                authors.setdefault((channel, ev.message_id), author)
                batch.messages.append(
                    (
                        channel,
                        ev.message_id,
                        author,
                        when(ev.occurred_at),
                        ev.length,
                        flag(ev.has_code),
                        flag(ev.has_link),
                        flag(ev.is_reply),
                        thread,
                        reply_to,
                        ev.attachments,
                        None,
                    )
                )
            elif isinstance(ev, ReactionEvent):
                channel = channels[(platform, ev.channel.channel_id)]
                reactor = members[(platform, ev.member.user_id)]
                if ev.added:
                    if ev.message_author_id is not None:
                        target: int | None = members[(platform, ev.message_author_id)]
                    else:
                        target = authors.get((channel, ev.message_id))
                    batch.reactions.append(
                        (channel, ev.message_id, reactor, ev.emoji, when(ev.occurred_at), None, target)
                    )
                else:
                    batch.removals.append((when(ev.occurred_at), channel, ev.message_id, reactor, ev.emoji))
            else:
                kind = "join" if isinstance(ev, MemberJoined) else "leave"
                channel_row = channels[(platform, ev.channel.channel_id)] if ev.channel is not None else None
                batch.memberships.append(
                    (members[(platform, ev.member.user_id)], kind, when(ev.occurred_at), channel_row)
                )
        batches.append(batch)
    return batches


def run(path: Path, batches: Sequence[Batch]) -> float:
    """Insert every batch, one transaction each. Returns the seconds taken."""
    with connect(path) as conn:
        cur = conn.cursor()
        started = time.perf_counter()
        for batch in batches:
            # BEGIN IMMEDIATE, like storage.engine: the write lock is taken up front.
            cur.execute("BEGIN IMMEDIATE")
            if batch.messages:
                cur.executemany(_MESSAGES, batch.messages)
            if batch.reactions:
                cur.executemany(_REACTIONS, batch.reactions)
            if batch.removals:
                cur.executemany(_REMOVALS, batch.removals)
            if batch.memberships:
                cur.executemany(_MEMBERSHIPS, batch.memberships)
            cur.execute("COMMIT")
        return time.perf_counter() - started


# --- PostgreSQL: the same rows with psycopg ------------------------------------------------------------------------


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


def run_postgres(conninfo: str, batches: Sequence[Batch]) -> float:
    """Insert every batch with psycopg ``executemany``, one transaction each. Returns the seconds taken.

    psycopg 3 sends an ``executemany`` in pipeline mode (all rows of a statement in one network round trip, no
    wait for each row's answer), which is the fastest way to run a parameterised statement row by row; the
    statements are the SQLite baseline's (``ON CONFLICT DO NOTHING``: the workload re-delivers duplicates).
    """
    import psycopg

    messages, reactions, removals, memberships = (_pg(s) for s in (_MESSAGES, _REACTIONS, _REMOVALS, _MEMBERSHIPS))
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for batch in batches:
            if batch.messages:
                cur.executemany(messages, batch.messages)
            if batch.reactions:
                cur.executemany(reactions, batch.reactions)
            if batch.removals:
                cur.executemany(removals, batch.removals)
            if batch.memberships:
                cur.executemany(memberships, batch.memberships)
            conn.commit()
        return time.perf_counter() - started
