"""The rollup changes of a batch on PostgreSQL: one statement per table, the rows as one array per column.

``storage.rollups.apply_delta`` upserts a batch's rollup rows with ``executemany``: on SQLite a loop in C over one
prepared statement, but through psycopg each row is a separate bind and execution in the pipeline (about 2,300 a
batch of 1,000 events), which was half of the PostgreSQL writer's time once its raw inserts were sent as arrays
(docs/performance.md "PostgreSQL / Ingest"). Here each table's rows go in one ``INSERT ... SELECT * FROM
unnest(%b::<type>[], ...) ON CONFLICT ... DO UPDATE`` (and the clean-up of rows that netted to zero in one ``DELETE
... USING unnest(...)``), with the same values, order and arithmetic as ``apply_delta``. The arrays are sent in
binary (``%b``, see storage/pg_rows.py). Within one statement a key may appear once only (``DO UPDATE`` cannot
touch a row twice): every list below comes from a dict keyed by the table's unique key, as in ``apply_delta``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from storage.models import Base
from storage.rollup_merge import MEMBER_ACTIVE_SPAN, MEMBER_MESSAGE_SPAN
from storage.types import truncate_to_millis

if TYPE_CHECKING:
    from storage.rollups import RollupDelta


def _arrays(table: str, columns: str) -> str:
    """``%b::<type>[], ...`` for the named columns of a table of the models (each array cast to its column type)."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    cols = Base.metadata.tables[table].c
    return ", ".join(f"%b::{cols[name.strip()].type.compile(dialect=dialect)}[]" for name in columns.split(","))


def _upsert(table: str, key: str, values: str, update: str | None = None) -> str:
    """An array upsert into ``table``: ``key`` columns, then ``values`` columns added to the stored ones."""
    columns = f"{key}, {values}"
    if update is None:
        update = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in (v.strip() for v in values.split(",")))
    return (
        f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({_arrays(table, columns)}) "
        f"ON CONFLICT ({key}) DO UPDATE SET {update}"
    )


def _delete(table: str, key: str, zero: str) -> str:
    """Delete the rows of ``table`` with the given keys (one array per ``key`` column) where ``zero`` holds."""
    names = [k.strip() for k in key.split(",")]
    match = " AND ".join(f"t.{k} = k.{k}" for k in names)
    keys = ", ".join(names)
    return f"DELETE FROM {table} t USING unnest({_arrays(table, key)}) AS k({keys}) WHERE {match} AND {zero}"


# Built once at import from the models (constant text, so psycopg parses each once and the server prepares it).
_MEMBER_DAYS = _upsert(
    "member_daily_activity", "community_id, day, member_id", "messages, replies, reactions_given, reactions_received"
)
_MEMBER_DAYS_ZERO = _delete(
    "member_daily_activity",
    "community_id, day, member_id",
    "t.messages = 0 AND t.replies = 0 AND t.reactions_given = 0 AND t.reactions_received = 0",
)
_MEMBER_TOTALS = _upsert(
    "member_activity",
    "member_id",
    "community_id, first_active_at, last_active_at, messages, reactions_given, first_message_at, last_message_at",
    f"{MEMBER_ACTIVE_SPAN}"
    "messages = member_activity.messages + excluded.messages, "
    "reactions_given = member_activity.reactions_given + excluded.reactions_given, "
    f"{MEMBER_MESSAGE_SPAN}",
)
_MEMBER_TOTALS_SHRUNK = (
    "UPDATE member_activity t SET messages = t.messages + k.messages, "
    "reactions_given = t.reactions_given + k.reactions_given "
    f"FROM unnest({_arrays('member_activity', 'messages, reactions_given, member_id')}) "
    "AS k(messages, reactions_given, member_id) WHERE t.member_id = k.member_id"
)
_COMMUNITY_DAYS = _upsert("community_daily_totals", "community_id, day", "messages, reactions, joins, leaves")
_COMMUNITY_DAYS_ZERO = _delete(
    "community_daily_totals",
    "community_id, day",
    "t.messages = 0 AND t.reactions = 0 AND t.joins = 0 AND t.leaves = 0",
)
_CHANNEL_DAYS = _upsert("channel_daily_activity", "community_id, day, channel_id", "messages")
_CHANNEL_DAYS_ZERO = _delete("channel_daily_activity", "community_id, day, channel_id", "t.messages = 0")
_HOURS = _upsert("community_hourly_activity", "community_id, day, hour", "messages, reactions")
_HOURS_ZERO = _delete("community_hourly_activity", "community_id, day, hour", "t.messages = 0 AND t.reactions = 0")
_CHANNEL_MEMBERS = _upsert("channel_member_daily", "community_id, day, channel_id, member_id", "messages")
_CHANNEL_MEMBERS_ZERO = _delete("channel_member_daily", "community_id, day, channel_id, member_id", "t.messages <= 0")


def _send(cur: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
    """Run ``sql`` with one list per column of ``rows`` (psycopg adapts lists, not tuples, to arrays)."""
    if rows:
        cur.execute(sql, [list(column) for column in zip(*rows, strict=True)])


def _time(value: datetime | None) -> datetime | None:
    return None if value is None else truncate_to_millis(value)


def apply_delta_postgresql(conn: Connection, delta: RollupDelta) -> None:
    """``apply_delta`` on PostgreSQL: the same changes, one array statement per table and clean-up.

    Args:
        conn: A connection to PostgreSQL inside the caller's transaction.
        delta: The batch's accumulated changes.
    """
    cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    # A change that nets out (a reaction given and removed in one batch) must not leave an all-zero row. Sorted by
    # (community, day, member) as in apply_delta, so concurrent writers lock rows in one order.
    member_days: list[tuple[int, date, int, list[int]]] = sorted(
        (row[0], day, member, row) for (member, day), row in delta.member_days.items() if any(row[1:])
    )
    _send(cur, _MEMBER_DAYS, [(cid, day, member, *row[1:]) for cid, day, member, row in member_days])
    _send(cur, _MEMBER_DAYS_ZERO, [(cid, day, member) for cid, day, member, row in member_days if min(row[1:]) < 0])
    _send(
        cur,
        _MEMBER_TOTALS,
        [
            (m, row[0], _time(row[1]), _time(row[2]), row[3], row[4], _time(row[5]), _time(row[6]))
            for m, row in delta.member_totals.items()
            if row[1] is not None
        ],
    )
    _send(
        cur,
        _MEMBER_TOTALS_SHRUNK,
        [(row[3], row[4], m) for m, row in delta.member_totals.items() if row[1] is None],
    )
    community_days = [(key, row) for key, row in delta.community_days.items() if any(row)]
    _send(cur, _COMMUNITY_DAYS, [(*key, *row) for key, row in community_days])
    _send(cur, _COMMUNITY_DAYS_ZERO, [key for key, row in community_days if min(row) < 0])
    channel_days = sorted((k, v) for k, v in delta.channel_days.items() if v)
    _send(cur, _CHANNEL_DAYS, [(*key, n) for key, n in channel_days])
    _send(cur, _CHANNEL_DAYS_ZERO, [key for key, n in channel_days if n < 0])
    hours = sorted((k, v) for k, v in delta.hours.items() if any(v))
    _send(cur, _HOURS, [(*key, *row) for key, row in hours])
    _send(cur, _HOURS_ZERO, [key for key, row in hours if min(row) < 0])
    channel_members = sorted((k, v) for k, v in delta.channel_members.items() if v)
    _send(cur, _CHANNEL_MEMBERS, [(*key, n) for key, n in channel_members])
    _send(cur, _CHANNEL_MEMBERS_ZERO, [key for key, n in channel_members if n < 0])
    cur.close()
