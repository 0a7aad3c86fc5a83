"""Named read queries: rollups in, small frames and dataclasses out (never live ORM objects).

Aggregation happens in SQL over the rollup tables; no query here reads the raw events tables, so a report
costs the same whether the community has ten thousand messages or twenty million.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import ColumnElement, Connection, Engine, func, select, type_coerce
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import NullType

from analytics.frames import (
    CHANNEL_DAYS_COLUMNS,
    COMMUNITY_DAYS_COLUMNS,
    MEMBER_DAYS_COLUMNS,
    MEMBERS_COLUMNS,
    PURCHASES_COLUMNS,
    CommunityFrames,
)
from storage.models import (
    Channel,
    ChannelDailyActivity,
    Community,
    CommunityDailyTotals,
    Course,
    Member,
    MemberActivity,
    MemberDailyActivity,
    Purchase,
    Refund,
)
from storage.types import bind_day

FETCH_ROWS = 100_000
"""Rows the bulk reads take from the driver at a time (bounds the Python objects alive at once)."""


@dataclass(frozen=True, slots=True)
class CommunityInfo:
    """A community as stored."""

    id: int
    name: str
    timezone: str


def find_community(conn: Connection, name: str) -> CommunityInfo | None:
    """The stored community with this name, if any."""
    row = conn.execute(select(Community.id, Community.name, Community.timezone).where(Community.name == name)).first()
    return None if row is None else CommunityInfo(int(row.id), row.name, row.timezone)


def list_communities(conn: Connection) -> list[CommunityInfo]:
    """Every stored community, by name."""
    rows = conn.execute(select(Community.id, Community.name, Community.timezone).order_by(Community.name))
    return [CommunityInfo(int(r.id), r.name, r.timezone) for r in rows]


def latest_activity_day(conn: Connection, community_id: int) -> date | None:
    """The last local day with any recorded activity (a sensible default "as of" for imported history)."""
    value = conn.execute(
        select(func.max(CommunityDailyTotals.day)).where(CommunityDailyTotals.community_id == community_id)
    ).scalar()
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _days(values: Sequence[Any]) -> pd.Series:
    # SQLite hands back ISO text, PostgreSQL date objects; both become naive midnight timestamps.
    return pd.to_datetime(pd.Series(values, dtype="object").astype(str), format="%Y-%m-%d")


def _frame(rows: Sequence[Any], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(columns))


def _driver_cursor(conn: Connection) -> Any:
    """A DBAPI cursor in the connection's transaction (begun here if needed, so that reads share one snapshot)."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]


def _day_column(values: np.ndarray[Any, np.dtype[np.object_]]) -> pd.Series:
    """:func:`_days` of many raw day values, parsing each distinct day once (a report has ~120 of them)."""
    codes, uniques = pd.factorize(values)
    parsed = _days(list(uniques)).to_numpy()
    return pd.Series(parsed[codes])


def member_days(conn: Connection, community_id: int, start: date, end: date) -> pd.DataFrame:
    """Per member and local day in [start, end]: messages, replies, reactions given and received; ordered by day.

    This is the big read of every report (over a million rows for a busy community), so it skips SQLAlchemy's
    per-value processing: the driver's rows go in chunks straight into numpy arrays, and days are parsed once
    per distinct day. Rows come in primary-key order (day, member), which the analytics want anyway.
    """
    dialect = conn.dialect.name
    ph = "?" if dialect == "sqlite" else "%s"
    days: list[np.ndarray[Any, np.dtype[np.object_]]] = []
    counts: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    cur = _driver_cursor(conn)
    try:
        cur.execute(
            "SELECT day, member_id, messages, replies, reactions_given, reactions_received "
            f"FROM {MemberDailyActivity.__tablename__} WHERE community_id = {ph} AND day >= {ph} AND day <= {ph} "
            "ORDER BY day, member_id",
            (community_id, bind_day(start, dialect), bind_day(end, dialect)),
        )
        while rows := cur.fetchmany(FETCH_ROWS):
            block = np.array(rows, dtype=object)
            days.append(block[:, 0])
            counts.append(block[:, 1:].astype(np.int64))
    finally:
        cur.close()
    if not days:
        frame = pd.DataFrame({name: pd.Series(dtype="int64") for name in MEMBER_DAYS_COLUMNS})
        frame["day"] = pd.Series(dtype="datetime64[ns]")
        return frame
    values = np.concatenate(counts)
    frame = pd.DataFrame(
        {name: values[:, i] for i, name in enumerate(MEMBER_DAYS_COLUMNS[:1] + MEMBER_DAYS_COLUMNS[2:])}
    )
    frame.insert(1, "day", _day_column(np.concatenate(days)))
    return frame


def _utc(values: Sequence[datetime | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(list(values), dtype="object"), utc=True)


def _driver_value(column: InstrumentedAttribute[Any]) -> ColumnElement[Any]:
    """``column`` as the driver returns it, without its type's per-value conversion (vectorised by the caller)."""
    return type_coerce(column, NullType())


def _instants(values: Sequence[Any], dialect: str) -> pd.Series:
    """UTC instants from raw driver values of ``UTCDateTime`` columns: epoch milliseconds on SQLite, else datetimes."""
    if dialect != "sqlite":
        return _utc(values)
    missing = np.fromiter((v is None for v in values), dtype=np.bool_, count=len(values))
    millis = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=len(values))
    stamps = millis.astype("datetime64[ms]").astype("datetime64[us]")
    stamps[missing] = np.datetime64("NaT")
    return pd.Series(stamps).dt.tz_localize("UTC")


def members(conn: Connection, community_id: int) -> pd.DataFrame:
    """Every human member: names, join (first join, else first activity, else first seen), leave, activity span."""
    ma = MemberActivity
    rows = conn.execute(
        select(
            Member.id,
            func.coalesce(Member.display_name, Member.platform_user_id),
            Member.platform,
            _driver_value(Member.first_joined_at),
            _driver_value(Member.last_joined_at),
            _driver_value(Member.last_left_at),
            _driver_value(Member.first_seen_at),
            _driver_value(ma.first_active_at),
            _driver_value(ma.last_active_at),
            Member.leaderboard_opt_out,
        )
        .outerjoin(ma, ma.member_id == Member.id)
        .where(Member.community_id == community_id, Member.is_bot.is_(False))
    ).all()
    dialect = conn.dialect.name
    ids, names, platforms, *times, opt_out = ([row[i] for row in rows] for i in range(10))
    first_join, last_join, last_left, first_seen, first_active, last_active = (
        _instants(values, dialect) for values in times
    )
    # History imports have no join events: the first activity stands in for the join (first seen, without either).
    joined = first_join.where(first_active.isna() | (first_join <= first_active), first_active)
    joined = joined.where(joined.notna(), first_seen)
    is_gone = last_left.notna() & (last_join.isna() | (last_left > last_join))
    return pd.DataFrame(
        {
            "member_id": pd.Series(ids, dtype="int64"),
            "name": pd.Series(names, dtype="object"),
            "platform": pd.Series(platforms, dtype="object"),
            "joined_at": joined,
            "left_at": last_left.where(is_gone),
            "first_active_at": first_active,
            "last_active_at": last_active,
            "leaderboard_opt_out": pd.Series([bool(v) for v in opt_out], dtype="bool"),
        },
        columns=list(MEMBERS_COLUMNS),
    )


def community_days(conn: Connection, community_id: int, start: date, end: date) -> pd.DataFrame:
    """Per local day in [start, end]: human messages, live reactions, joins and leaves."""
    cd = CommunityDailyTotals
    rows = conn.execute(
        select(cd.day, cd.messages, cd.reactions, cd.joins, cd.leaves)
        .where(cd.community_id == community_id, cd.day >= start, cd.day <= end)
        .order_by(cd.day)
    ).all()
    frame = _frame(rows, COMMUNITY_DAYS_COLUMNS)
    frame["day"] = _days(frame["day"].tolist()) if len(frame) else pd.Series(dtype="datetime64[ns]")
    return frame


def channel_days(conn: Connection, community_id: int, start: date, end: date) -> pd.DataFrame:
    """Per channel (threads and topics separately) and local day in [start, end]: human messages."""
    cda = ChannelDailyActivity
    rows = conn.execute(
        select(cda.channel_id, func.coalesce(Channel.name, Channel.platform_channel_id), cda.day, cda.messages)
        .join(Channel, Channel.id == cda.channel_id)
        .where(cda.community_id == community_id, cda.day >= start, cda.day <= end)
    ).all()
    frame = _frame(rows, CHANNEL_DAYS_COLUMNS)
    frame["day"] = _days(frame["day"].tolist()) if len(frame) else pd.Series(dtype="datetime64[ns]")
    return frame


def purchases(conn: Connection, community_id: int, end: datetime) -> pd.DataFrame:
    """The purchases ledger up to ``end`` (UTC), refunds joined; amounts in major units."""
    rows = conn.execute(
        select(
            Purchase.id,
            Purchase.member_id,
            Course.course_key,
            Course.title,
            Purchase.amount,
            Purchase.currency,
            Purchase.purchased_at,
            Refund.refunded_at,
        )
        .join(Course, Course.id == Purchase.course_id)
        .outerjoin(Refund, Refund.purchase_id == Purchase.id)
        .where(Purchase.community_id == community_id, Purchase.purchased_at < end)
        .order_by(Purchase.purchased_at)
    ).all()
    frame = pd.DataFrame(
        {
            "purchase_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "member_id": pd.Series([r[1] for r in rows], dtype="Int64"),
            "course": pd.Series([r[2] for r in rows], dtype="object"),
            "title": pd.Series([r[3] for r in rows], dtype="object"),
            # Stars have no minor unit; every other currency is stored in cents.
            "amount": pd.Series([r[4] if r[5] == "XTR" else r[4] / 100 for r in rows], dtype="float64"),
            "currency": pd.Series([r[5] for r in rows], dtype="object"),
            "purchased_at": _utc([r[6] for r in rows]),
            "refunded_at": _utc([r[7] if r[7] is not None and r[7] < end else None for r in rows]),
        },
        columns=list(PURCHASES_COLUMNS),
    )
    return frame


def load_frames(engine: Engine, community: CommunityInfo, as_of: date, *, history_start: date) -> CommunityFrames:
    """Everything the analytics needs for a report or digest as of the local day ``as_of``.

    Args:
        engine: The database.
        community: The community to analyse.
        as_of: The last local day included.
        history_start: The first local day of daily data to load (the report range minus the longest
            lookback window); earlier days are summarised by ``members`` (joins, first/last activity).
    """
    tz = ZoneInfo(community.timezone)
    # The end of the as_of day in the community's zone, as a UTC instant.
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    with engine.connect() as conn:
        return CommunityFrames(
            community=community.name,
            timezone=tz,
            as_of=as_of,
            member_days=member_days(conn, community.id, history_start, as_of),
            members=members(conn, community.id),
            community_days=community_days(conn, community.id, history_start, as_of),
            channel_days=channel_days(conn, community.id, history_start, as_of),
            purchases=purchases(conn, community.id, end),
        )
