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

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

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


def member_days(conn: Connection, community_id: int, start: date, end: date) -> pd.DataFrame:
    """Per member and local day in [start, end]: messages, replies, reactions given and received."""
    md = MemberDailyActivity
    rows = conn.execute(
        select(md.member_id, md.day, md.messages, md.replies, md.reactions_given, md.reactions_received).where(
            md.community_id == community_id, md.day >= start, md.day <= end
        )
    ).all()
    frame = _frame(rows, MEMBER_DAYS_COLUMNS)
    frame["day"] = _days(frame["day"].tolist()) if len(frame) else pd.Series(dtype="datetime64[ns]")
    for column in MEMBER_DAYS_COLUMNS:
        if column != "day":
            frame[column] = frame[column].astype("int64")
    return frame


def _utc(values: Sequence[datetime | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(list(values), dtype="object"), utc=True)


def members(conn: Connection, community_id: int) -> pd.DataFrame:
    """Every human member: names, join (first join, else first activity, else first seen), leave, activity span."""
    ma = MemberActivity
    rows = conn.execute(
        select(
            Member.id,
            func.coalesce(Member.display_name, Member.platform_user_id),
            Member.platform,
            Member.first_joined_at,
            Member.last_joined_at,
            Member.last_left_at,
            Member.first_seen_at,
            ma.first_active_at,
            ma.last_active_at,
            Member.leaderboard_opt_out,
        )
        .outerjoin(ma, ma.member_id == Member.id)
        .where(Member.community_id == community_id, Member.is_bot.is_(False))
    ).all()
    ids, names, platforms, joined, left, first_active, last_active, opt_out = ([] for _ in range(8))
    for mid, name, platform, first_join, last_join, last_left, first_seen, first_act, last_act, opted in rows:
        ids.append(int(mid))
        names.append(name)
        platforms.append(platform)
        # History imports have no join events: the first activity stands in for the join.
        candidates = [t for t in (first_join, first_act) if t is not None]
        joined.append(min(candidates) if candidates else first_seen)
        is_gone = last_left is not None and (last_join is None or last_left > last_join)
        left.append(last_left if is_gone else None)
        first_active.append(first_act)
        last_active.append(last_act)
        opt_out.append(bool(opted))
    return pd.DataFrame(
        {
            "member_id": pd.Series(ids, dtype="int64"),
            "name": pd.Series(names, dtype="object"),
            "platform": pd.Series(platforms, dtype="object"),
            "joined_at": _utc(joined),
            "left_at": _utc(left),
            "first_active_at": _utc(first_active),
            "last_active_at": _utc(last_active),
            "leaderboard_opt_out": pd.Series(opt_out, dtype="bool"),
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
