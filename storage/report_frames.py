"""The report's reads: rollups in, the frames ``analytics.frames`` defines out (never live ORM objects).

Aggregation happens in SQL over the rollup tables; no query here reads the raw events tables, so a report
costs the same whether the community has ten thousand messages or twenty million.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import aliased

from analytics.frames import (
    CHANNEL_DAYS_COLUMNS,
    CHANNEL_MEMBERS_COLUMNS,
    CHANNELS_COLUMNS,
    COMMUNITY_DAYS_COLUMNS,
    HOURLY_COLUMNS,
    LAST_ACTIVE_COLUMNS,
    MEMBER_DAYS_COLUMNS,
    MEMBERS_COLUMNS,
    PURCHASES_COLUMNS,
    CommunityFrames,
)
from storage.communities import CommunityInfo
from storage.ledger import purchases_with_refunds
from storage.models import (
    Channel,
    ChannelDailyActivity,
    ChannelMemberDaily,
    CommunityDailyTotals,
    CommunityHourlyActivity,
    Course,
    Member,
    MemberActivity,
    MemberDailyActivity,
    Purchase,
    Refund,
)
from storage.subscription_figures import subscription_periods
from storage.types import bind_day, bind_time


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


def _joined_integers(column: str, dialect: str) -> str:
    """SQL aggregating an integer column of a group's rows into one comma-separated string."""
    if dialect == "sqlite":
        # Every aggregate of a query is stepped through the group's rows in the same order, so the strings of
        # several columns line up row by row.
        return f"group_concat({column}, ',')"
    return f"string_agg(CAST({column} AS TEXT), ',' ORDER BY member_id)"


def _integers(texts: Sequence[str], count: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The integers of comma-separated strings, parsed in C; ``count`` of them are expected."""
    values = np.fromstring(",".join(texts), dtype=np.int64, sep=",") if count else np.empty(0, dtype=np.int64)
    if len(values) != count:
        raise RuntimeError(f"expected {count} integers from the database, parsed {len(values)}")
    return values


def member_days(conn: Connection, community_id: int, start: date, end: date) -> pd.DataFrame:
    """Per member and local day in [start, end]: messages, replies, reactions given and received; ordered by day.

    This is the big read of every report (over a million rows for a busy community). Fetching it row by row
    costs a Python object per value, so the database sends one row per day instead, each column of the day's rows
    joined into one string that numpy parses; days are parsed once each.
    """
    return _member_days(conn, community_id, start, end)


def _member_days(
    conn: Connection, community_id: int, start: date, end: date, *, buyers_before: datetime | None = None
) -> pd.DataFrame:
    """:func:`member_days`; with ``buyers_before``, of the members who bought before it only (test sales aside)."""
    dialect = conn.dialect.name
    ph = "?" if dialect == "sqlite" else "%s"
    counted = MEMBER_DAYS_COLUMNS[:1] + MEMBER_DAYS_COLUMNS[2:]
    params: list[Any] = [community_id, bind_day(start, dialect), bind_day(end, dialect)]
    buyers = ""
    if buyers_before is not None:
        # The buyers of the ledger :func:`purchases` reads, as a subquery rather than thousands of parameters.
        buyers = (
            f" AND member_id IN (SELECT member_id FROM {Purchase.__tablename__} WHERE community_id = {ph} "
            f"AND purchased_at < {ph} AND is_test = {ph} AND member_id IS NOT NULL)"
        )
        params += [community_id, bind_time(buyers_before, dialect), False]
    cur = _driver_cursor(conn)
    try:
        cur.execute(
            f"SELECT day, count(*), {', '.join(_joined_integers(c, dialect) for c in counted)} "
            f"FROM {MemberDailyActivity.__tablename__} WHERE community_id = {ph} AND day >= {ph} AND day <= {ph}"
            f"{buyers} GROUP BY day ORDER BY day",
            params,
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    if not rows:
        frame = pd.DataFrame({name: pd.Series(dtype="int64") for name in MEMBER_DAYS_COLUMNS})
        frame["day"] = pd.Series(dtype="datetime64[ns]")
        return frame
    per_day = np.array([row[1] for row in rows], dtype=np.int64)
    total = int(per_day.sum())
    frame = pd.DataFrame({name: _integers([row[2 + i] for row in rows], total) for i, name in enumerate(counted)})
    days = np.empty(len(rows), dtype=object)
    days[:] = [row[0] for row in rows]
    frame.insert(1, "day", _day_column(np.repeat(days, per_day)))
    return frame


def last_active_before(conn: Connection, community_id: int, start: date, end: datetime) -> pd.DataFrame:
    """The last active local day before ``start`` of each member whose last activity is at or after ``end``.

    A back-dated report loads daily data from ``start`` only; for a member silent since before ``start`` it knows
    the last active day from ``member_activity.last_active_at``, unless the member was active again after the
    report day (``end``, the instant after it). Those members' last active day is read here (active: a message or
    a reaction given).

    Args:
        conn: A connection.
        community_id: The community.
        start: The first day of the loaded daily data.
        end: The instant after the report day.

    Returns:
        A frame of ``member_id`` and ``day`` (LAST_ACTIVE_COLUMNS).
    """
    md, activity = MemberDailyActivity, MemberActivity
    later = select(activity.member_id).where(activity.community_id == community_id, activity.last_active_at >= end)
    if conn.execute(later.limit(1)).first() is None:
        # The usual report (as of today or the latest day): nobody was active after it, and the scan below of every
        # day before the loaded history is skipped.
        return _frame([], LAST_ACTIVE_COLUMNS).astype({"member_id": "int64", "day": "datetime64[ns]"})
    rows = conn.execute(
        select(md.member_id, func.max(md.day))
        .join(activity, activity.member_id == md.member_id)
        .where(
            md.community_id == community_id,
            md.day < start,
            activity.last_active_at >= end,
            md.messages + md.reactions_given > 0,
        )
        .group_by(md.member_id)
    ).all()
    frame = _frame(rows, LAST_ACTIVE_COLUMNS)
    frame["member_id"] = frame["member_id"].astype("int64")
    frame["day"] = _days(frame["day"].tolist()) if len(frame) else pd.Series(dtype="datetime64[ns]")
    return frame


def _utc(values: Sequence[datetime | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(list(values), dtype="object"), utc=True)


def _instants(values: np.ndarray[Any, np.dtype[np.object_]], dialect: str) -> pd.Series:
    """UTC instants from raw driver values of ``UTCDateTime`` columns: epoch milliseconds on SQLite, else datetimes."""
    if dialect != "sqlite":
        return _utc(values.tolist())
    missing = pd.isna(values)
    stamps = np.where(missing, 0, values).astype(np.int64).astype("datetime64[ms]").astype("datetime64[us]")
    stamps[missing] = np.datetime64("NaT")
    return pd.Series(stamps).dt.tz_localize("UTC")


def members(conn: Connection, community_id: int, *, not_members: Collection[tuple[str, str]] = ()) -> pd.DataFrame:
    """Every human member (joined, active or bought): names, join, leave, activity span.

    The join is the first join, else the first activity, else when the bot first saw the account.

    An account the bot only stored because it ran a command or was mentioned (the console's own accounts, the
    demo's owner) never joined, did or bought anything in the community: it is not a member and is left out
    (docs/metrics.md, "Members"). Neither are the ``(platform, platform user id)`` accounts in ``not_members`` (the
    console's and the simulation's built-in owner, who posts as the community's host).

    Read like :func:`member_days` (one row per member: a hundred thousand for a big community), with the
    instants converted column by column instead of value by value.
    """
    dialect = conn.dialect.name
    ph = "?" if dialect == "sqlite" else "%s"
    cur = _driver_cursor(conn)
    try:
        cur.execute(
            "SELECT m.id, COALESCE(m.display_name, m.platform_user_id), m.platform, m.first_joined_at, "
            "m.last_joined_at, m.last_left_at, m.first_seen_at, a.first_active_at, a.last_active_at, "
            f"m.leaderboard_opt_out FROM {Member.__tablename__} m "
            f"LEFT OUTER JOIN {MemberActivity.__tablename__} a ON a.member_id = m.id "
            f"WHERE m.community_id = {ph} AND m.is_bot = {ph} "
            "AND (m.first_joined_at IS NOT NULL OR m.last_left_at IS NOT NULL OR a.first_active_at IS NOT NULL "
            f"OR EXISTS (SELECT 1 FROM {Purchase.__tablename__} p WHERE p.member_id = m.id))"
            + "".join(f" AND NOT (m.platform = {ph} AND m.platform_user_id = {ph})" for _ in not_members),
            (community_id, False, *(value for account in sorted(not_members) for value in account)),
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    table = np.array(rows, dtype=object).reshape(len(rows), 10)
    first_join, last_join, last_left, first_seen, first_active, last_active = (
        _instants(table[:, i], dialect) for i in range(3, 9)
    )
    # History imports have no join events: the first activity stands in for the join (first seen, without either).
    joined = first_join.where(first_active.isna() | (first_join <= first_active), first_active)
    joined = joined.where(joined.notna(), first_seen)
    is_gone = last_left.notna() & (last_join.isna() | (last_left > last_join))
    return pd.DataFrame(
        {
            "member_id": pd.Series(table[:, 0], dtype="int64"),
            "name": pd.Series(table[:, 1], dtype="object"),
            "platform": pd.Series(table[:, 2], dtype="object"),
            "joined_at": joined,
            "left_at": last_left.where(is_gone),
            "first_active_at": first_active,
            "last_active_at": last_active,
            "leaderboard_opt_out": pd.Series(table[:, 9].astype(bool), dtype="bool"),
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


def hourly(conn: Connection, community_id: int, start: date, end: date) -> pd.DataFrame:
    """Per local day in [start, end] and local hour: human messages and live reactions (HOURLY_COLUMNS)."""
    cha = CommunityHourlyActivity
    rows = conn.execute(
        select(cha.day, cha.hour, cha.messages, cha.reactions)
        .where(cha.community_id == community_id, cha.day >= start, cha.day <= end)
        .order_by(cha.day, cha.hour)
    ).all()
    frame = _frame(rows, HOURLY_COLUMNS)
    frame["day"] = _days(frame["day"].tolist()) if len(frame) else pd.Series(dtype="datetime64[ns]")
    for column in HOURLY_COLUMNS[1:]:
        frame[column] = frame[column].astype("int64")
    return frame


def channel_names(conn: Connection, community_id: int) -> pd.DataFrame:
    """Every channel of the community with its name and its parent's name (CHANNELS_COLUMNS).

    A channel without a name is called by its platform id; a thread or forum topic names its parent channel.
    """
    parent = aliased(Channel)
    rows = conn.execute(
        select(
            Channel.id,
            func.coalesce(Channel.name, Channel.platform_channel_id),
            func.coalesce(parent.name, parent.platform_channel_id),
        )
        .outerjoin(parent, parent.id == Channel.parent_id)
        .where(Channel.community_id == community_id)
        .order_by(Channel.id)
    ).all()
    frame = _frame(rows, CHANNELS_COLUMNS)
    frame["channel_id"] = frame["channel_id"].astype("int64")
    return frame


# A channel and a member packed into one integer key (ids are far below 2**32), so distinct pairs are counted by
# hashing one integer column.
_PAIR_SHIFT = 32


@dataclass(frozen=True)
class ChannelPairs:
    """The distinct (channel, member) pairs of messages over some days, each with the first day it appears.

    What :func:`channel_members` counts; kept by a cache so that after a commit only the days it touched are read
    again (:meth:`since` drops the rest, :meth:`merge` adds the re-read days back).

    Attributes:
        pairs: ``channel_id << 32 | member_id``, distinct, ascending.
        first_day: The first local day (days since 1970-01-01) each pair appears on.
    """

    pairs: np.ndarray[Any, np.dtype[np.int64]]
    first_day: np.ndarray[Any, np.dtype[np.int32]]

    def before(self, day: date) -> ChannelPairs:
        """The pairs as they were over the days before ``day`` only."""
        keep = self.first_day < (day - _EPOCH).days
        return ChannelPairs(self.pairs[keep], self.first_day[keep])

    def merge(self, later: ChannelPairs) -> ChannelPairs:
        """These pairs and the pairs of ``later`` days (which all come after these days).

        Both are sorted by pair, so the few pairs of a commit's days are looked up by binary search: no hash table of
        the million pairs of a big community is built again.
        """
        at = np.searchsorted(self.pairs, later.pairs)
        known = np.zeros(len(at), dtype=np.bool_)
        inside = at < len(self.pairs)
        known[inside] = self.pairs[at[inside]] == later.pairs[inside]
        new = ~known
        return ChannelPairs(
            np.insert(self.pairs, at[new], later.pairs[new]), np.insert(self.first_day, at[new], later.first_day[new])
        )

    def counts(self) -> pd.DataFrame:
        """Distinct members per channel (CHANNEL_MEMBERS_COLUMNS), ordered by channel id."""
        counts = pd.Series(self.pairs >> _PAIR_SHIFT, dtype="int64").value_counts().sort_index()
        return pd.DataFrame(
            {
                "channel_id": counts.index.to_numpy(dtype=np.int64),
                "active_members": counts.to_numpy(dtype=np.int64),
            },
            columns=list(CHANNEL_MEMBERS_COLUMNS),
        )


_EPOCH = date(1970, 1, 1)


def _pair_rows(
    conn: Connection, community_id: int, start: date, end: date, not_members: Collection[tuple[str, str]]
) -> tuple[list[Any], np.ndarray[Any, np.dtype[np.int64]]]:
    """The raw day of each (day, channel) group of ``channel_member_daily`` in [start, end], and their packed pairs.

    One row per day and channel, ordered by day, its members joined into one string (shorter than packing the
    pair in SQL: about 15% faster on 3.3 million rows); the pairs come out day by day.
    """
    dialect = conn.dialect.name
    ph = "?" if dialect == "sqlite" else "%s"
    joined = "group_concat(member_id, ',')" if dialect == "sqlite" else "string_agg(CAST(member_id AS TEXT), ',')"
    excluded = ""
    params: list[Any] = [community_id, bind_day(start, dialect), bind_day(end, dialect)]
    if not_members:
        accounts = " OR ".join([f"(platform = {ph} AND platform_user_id = {ph})"] * len(not_members))
        excluded = (
            f" AND member_id NOT IN (SELECT id FROM {Member.__tablename__} WHERE community_id = {ph} AND ({accounts}))"
        )
        params += [community_id, *(value for account in sorted(not_members) for value in account)]
    cur = _driver_cursor(conn)
    try:
        cur.execute(
            f"SELECT day, channel_id, count(*), {joined} FROM {ChannelMemberDaily.__tablename__} "
            f"WHERE community_id = {ph} AND day >= {ph} AND day <= {ph}{excluded} "
            "GROUP BY day, channel_id ORDER BY day, channel_id",
            params,
        )
        rows = cur.fetchall()
    finally:
        cur.close()
    per_group = np.array([row[2] for row in rows], dtype=np.int64)
    member_ids = _integers([row[3] for row in rows], int(per_group.sum()))
    channel_ids = np.repeat(np.array([row[1] for row in rows], dtype=np.int64), per_group)
    return [(row[0], int(row[2])) for row in rows], (channel_ids << _PAIR_SHIFT) | member_ids


def channel_pairs(
    conn: Connection,
    community_id: int,
    start: date,
    end: date,
    *,
    not_members: Collection[tuple[str, str]] = (),
) -> ChannelPairs:
    """The distinct (channel, member) pairs of human messages on the local days [start, end], with their first day.

    Read as :func:`channel_members` reads them; ``not_members`` are left out.
    """
    rows, pairs = _pair_rows(conn, community_id, start, end, not_members)
    raw_days = np.empty(len(rows), dtype=object)
    raw_days[:] = [day for day, _ in rows]
    day_numbers = (_day_column(raw_days).to_numpy() - np.datetime64("1970-01-01")) // np.timedelta64(1, "D")
    days = np.repeat(day_numbers.astype(np.int32), np.array([n for _, n in rows], dtype=np.int64))
    # Rows come by day: the first occurrence of a pair is its first day (a stable sort keeps it first).
    order = np.argsort(pairs, kind="stable")
    pairs, days = pairs[order], days[order]
    first = np.ones(len(pairs), dtype=np.bool_)
    first[1:] = pairs[1:] != pairs[:-1]
    return ChannelPairs(pairs[first], days[first])


def channel_members(
    conn: Connection,
    community_id: int,
    start: date,
    end: date,
    *,
    not_members: Collection[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Per channel: distinct members who posted in it on the local days [start, end] (CHANNEL_MEMBERS_COLUMNS).

    Read from ``channel_member_daily`` (one row per channel, day and author: millions over a 12-week range of a big
    community). ``count(DISTINCT ...)`` per channel makes the database sort them all; instead each day's
    (channel, member) pairs come as one string of packed integers, parsed by numpy and made distinct with a hash
    table, which takes about half the time. The ``not_members`` accounts (see :func:`members`) are not counted.
    """
    _, pairs = _pair_rows(conn, community_id, start, end, not_members)
    return ChannelPairs(pd.unique(pairs), np.empty(0, dtype=np.int32)).counts()


def purchases(conn: Connection, community_id: int, end: datetime) -> pd.DataFrame:
    """The purchases ledger up to ``end`` (UTC), refunds joined; amounts in major units."""
    rows = conn.execute(
        purchases_with_refunds(
            Purchase.id,
            Purchase.member_id,
            Course.course_key,
            Course.title,
            Purchase.amount,
            Purchase.currency,
            Purchase.purchased_at,
            Refund.refunded_at,
        )
        # Test purchases (Discord test mode) moved no money: never revenue, never a buyer.
        .where(Purchase.community_id == community_id, Purchase.purchased_at < end, Purchase.is_test.is_(False))
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


@dataclass(frozen=True)
class ReportFrames:
    """The frames of a report and what a cache needs to refresh them after a commit (:func:`load_report_frames`).

    Attributes:
        frames: The frames.
        history_start: The first day of ``frames.member_days``.
        channel_pairs: The pairs ``frames.channel_members`` counts; None when channels were not loaded.
    """

    frames: CommunityFrames
    history_start: date
    channel_pairs: ChannelPairs | None


def load_frames(
    engine: Engine,
    community: CommunityInfo,
    as_of: date,
    *,
    history_start: date,
    not_members: Collection[tuple[str, str]] = (),
    range_start: date | None = None,
) -> CommunityFrames:
    """Everything the analytics needs for a report or digest as of the local day ``as_of``.

    Args:
        engine: The database.
        community: The community to analyse.
        as_of: The last local day included.
        history_start: The first local day of daily data to load (the report range minus the longest
            lookback window); earlier days are summarised by ``members`` (joins, first/last activity).
        not_members: ``(platform, platform user id)`` accounts that are not members (see :func:`members`).
        range_start: The report range's first day (``analytics.report.range_start``), at or after
            ``history_start``: the channels' active members are counted over ``range_start .. as_of``, and
            messages per channel and day are loaded from as many days before ``range_start`` too (the previous
            range the channels are compared with). Without it, channels are not loaded.
    """
    return load_report_frames(
        engine,
        community,
        as_of,
        history_start=history_start,
        not_members=not_members,
        range_start=range_start,
        keep_pairs=False,
    ).frames


def load_report_frames(
    engine: Engine,
    community: CommunityInfo,
    as_of: date,
    *,
    history_start: date,
    not_members: Collection[tuple[str, str]] = (),
    range_start: date | None = None,
    previous: ReportFrames | None = None,
    changed_from: date | None = None,
    keep_pairs: bool = True,
) -> ReportFrames:
    """:func:`load_frames`, keeping what a refresh after a commit reuses; or that refresh.

    With ``previous`` (frames loaded earlier with the same arguments), the two big reads, ``member_days`` and the
    channels' (channel, member) pairs, are read again only from ``changed_from`` (the first local day whose rollups
    changed since ``previous`` was read; None: no day changed) and the days before it are taken from ``previous``;
    everything else (members, the ledger, the small daily tables) is read again in full. The frames are the ones
    a full load would give.

    Args:
        engine: The database.
        community: The community to analyse.
        as_of: The last local day included.
        history_start: See :func:`load_frames`.
        not_members: See :func:`load_frames`.
        range_start: See :func:`load_frames`.
        previous: Frames read earlier for the same community, day and range.
        changed_from: With ``previous``: the first local day whose rollups may have changed since it was read.
        keep_pairs: Keep the channels' pairs (and the first day of each) for a later refresh; without, the count
            alone is read (a little faster: a one-off report).

    Raises:
        ValueError: ``previous`` was loaded for another community, day or range.
    """
    if previous is not None and (
        previous.frames.community != community.name
        or previous.frames.as_of != as_of
        or previous.history_start != history_start
        or previous.frames.channel_members_start != range_start
    ):
        raise ValueError("the previous frames are of another community, day or range")
    tz = ZoneInfo(community.timezone)
    # The end of the as_of day in the community's zone, as a UTC instant.
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    reread_from = history_start
    # The buyers' days before the history (read by ``_buyer_days``) are reused when no commit touched them and the
    # buyers are the same.
    old_days_kept = changed_from is None or changed_from >= history_start
    if previous is not None:
        reread_from = as_of + timedelta(days=1) if changed_from is None else max(changed_from, history_start)
    with engine.connect() as conn:
        ledger = purchases(conn, community.id, end)
        people = members(conn, community.id, not_members=not_members)
        days = member_days(conn, community.id, reread_from, as_of) if reread_from <= as_of else None
        if days is not None and not_members:
            # Accounts that are not members are not active members either (their messages still count as messages).
            days = days[days["member_id"].isin(people["member_id"])].reset_index(drop=True)
        if previous is not None:
            kept = previous.frames.member_days
            # Ordered by day: the kept days are a leading slice (no mask over a million rows).
            cut = int(np.searchsorted(kept["day"].to_numpy(), np.datetime64(reread_from), side="left"))
            kept = kept.iloc[:cut]
            days = kept.reset_index(drop=True) if days is None else pd.concat([kept, days], ignore_index=True)
        assert days is not None
        channels_from = history_start
        pairs: ChannelPairs | None = None
        counted: pd.DataFrame | None = None
        if range_start is not None and not keep_pairs:
            channels_from = min(history_start, range_start - (as_of - range_start) - timedelta(days=1))
            counted = channel_members(conn, community.id, range_start, as_of, not_members=not_members)
        elif range_start is not None:
            channels_from = min(history_start, range_start - (as_of - range_start) - timedelta(days=1))
            pairs_from = max(reread_from, range_start)
            pairs = (
                channel_pairs(conn, community.id, pairs_from, as_of, not_members=not_members)
                if pairs_from <= as_of
                else None
            )
            if previous is not None and previous.channel_pairs is not None:
                kept_pairs = previous.channel_pairs.before(pairs_from)
                pairs = kept_pairs if pairs is None else kept_pairs.merge(pairs)
            if pairs is None:
                pairs = ChannelPairs(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int32))
        frames = CommunityFrames(
            community=community.name,
            timezone=tz,
            as_of=as_of,
            member_days=days,
            members=people,
            community_days=community_days(conn, community.id, history_start, as_of),
            channel_days=channel_days(conn, community.id, channels_from, as_of),
            purchases=ledger,
            buyer_days=(
                previous.frames.buyer_days
                if previous is not None
                and old_days_kept
                and _buyers(previous.frames.purchases, tz) == _buyers(ledger, tz)
                else _buyer_days(conn, community.id, ledger, tz, history_start, end)
            ),
            last_active_before=last_active_before(conn, community.id, history_start, end),
            hourly=hourly(conn, community.id, history_start, as_of),
            channels=None if range_start is None else channel_names(conn, community.id),
            channel_members=counted if pairs is None else pairs.counts(),
            channel_members_start=range_start,
            subscription_periods=subscription_periods(conn, community.id, end),
        )
    return ReportFrames(frames, history_start, pairs)


def _buyers(ledger: pd.DataFrame, tz: ZoneInfo) -> tuple[frozenset[int], date | None]:
    """The buyers of a ledger and the local day of its oldest purchase by a member: what ``_buyer_days`` reads by."""
    bought = ledger.dropna(subset=["member_id"])
    if not len(bought):
        return frozenset(), None
    return frozenset(bought["member_id"].astype("int64").tolist()), bought["purchased_at"].dt.tz_convert(
        tz
    ).min().date()


def _buyer_days(
    conn: Connection, community_id: int, ledger: pd.DataFrame, tz: ZoneInfo, history_start: date, end: datetime
) -> pd.DataFrame | None:
    """Member days of buyers between their oldest purchase and ``history_start``.

    Buyer retention follows each buyer for 30 days after buying, however long ago that was. Buyers are few, so
    this read stays small; it is read like :func:`member_days`, the buyers (those of ``ledger``, the purchases
    before ``end``) chosen by a subquery.
    """
    bought = ledger.dropna(subset=["member_id"])
    if not len(bought):
        return None
    first_day = bought["purchased_at"].dt.tz_convert(tz).min().date()
    if first_day >= history_start:
        return None
    return _member_days(
        conn, community_id, first_day + timedelta(days=1), history_start - timedelta(days=1), buyers_before=end
    )
