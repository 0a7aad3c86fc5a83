"""``python -m bench analytics``: a full analytics refresh of a big community, cross-checked against DuckDB.

The run:

1. Make sure the synthetic community exists (``bench.synthetic``: ``--members`` members, ``--events`` events over
   ``--history-weeks`` weeks, seed ``--seed``): its SQLite database (rollup tables filled, migrated with storage's
   migrations) and its raw event arrays are cached in the work folder under a key of every parameter that shapes
   them; generating them is not timed.
2. In a fresh process, time what ``cohortbot report`` (and the weekly digest) computes: ``build_community_report``
   as of the last generated day over 12 weeks, end to end (SQL reads of the rollups, then pandas/numpy). One
   warm-up, then the best of ``--repeats`` runs. The peak memory reported is that of the report computation alone:
   the process's resident high-water mark (``VmHWM``) is reset just before it and read just after. (``ru_maxrss``
   would not do: Linux carries it over from the parent through the spawn's fork and exec, so a run that had just
   built the cached data set reported that instead.)
3. In another fresh process, load the same raw events into an in-memory DuckDB (load time reported, not
   compared) and time the same metrics computed there with SQL over the raw events: DAU/WAU/MAU per day, weekly
   stats, cohort retention and activation, current members, inactive and at-risk members, segments, top members
   by engagement score, and commerce (per course, revenue weeks, conversion, buyer retention). One warm-up, then
   the best of ``--repeats`` runs.
4. Correctness first: every metric must agree (counts and ids exactly, floats to 1e-9 relative; member lists in
   order, members whose scores tie to 1e-9 in either order). The metrics compared are listed; any disagreement is
   printed with both values and the run exits with status 1.

Both sides get the same data: the rollups are the aggregation of exactly the events DuckDB scans (local days
included, as the bot's ingestion buckets them). The engagement score reads the same history on both sides: the
report's ``LOOKBACK_DAYS`` (analytics.report), whose older days weigh under 0.3 %.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from bench.measure import MB, peak_rss_bytes
from bench.synthetic import (
    COMMUNITY,
    COURSES,
    FIRST_DAY,
    NONE,
    Community,
    Params,
    ensure,
    first_day_number,
)

DEFAULT_WORKDIR = Path(__file__).resolve().parent / ".cache"
REPORT_WEEKS = 12  # what `cohortbot report` shows by default, and what the digest computes
INACTIVE_AFTER_DAYS = 14
TOP_N = 10

TARGET_SECONDS = 5.0
TARGET_RATIO = 3.0
TARGET_PEAK_MB = 1024

REL_TOL = 1e-9
RANKED = ("at_risk", "top_members")  # member lists ordered by score: near-ties may come in either order

T = TypeVar("T")


# The per-course figures both sides compute (fields of analytics.results.CourseSales), compared one by one.
COURSE_FIELDS = (
    "course",
    "currency",
    "title",
    "sales",
    "buyers",
    "refunds",
    "gross",
    "refunded",
    "net",
    "refund_rate",
    "price",
    "sales_per_sale_week",
    "sale_weeks",
    "price_points",
    "arc_elasticity",
)


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m bench analytics``."""
    parser.add_argument("--members", type=_positive, default=100_000, help="human members (default 100,000)")
    parser.add_argument(
        "--events", type=_positive, default=20_000_000, help="messages and reactions (default 20,000,000)"
    )
    parser.add_argument(
        "--history-weeks", type=_positive, default=52, help="weeks of history the events span (default 52)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the community (default 1)")
    parser.add_argument("--repeats", type=_positive, default=3, help="timed runs per side, best kept (default 3)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the generated community is cached (default bench/.cache)",
    )


# --- the report range ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """Day numbers (days since 1970-01-01, local) of everything the metrics need, derived from ``as_of``."""

    as_of: date
    end: int  # as_of
    first_monday: int  # the report range's first Monday
    weeks: int
    observed_weeks: int  # weeks of the range that are complete by as_of
    activation_first: int  # the report's activation pools the joiners of these days
    activation_last: int
    score_from: int  # the first day of history the report loads (its engagement score sums from there)

    @classmethod
    def of(cls, as_of: date, weeks: int, lookback_days: int) -> Plan:
        epoch = date(1970, 1, 1)
        monday = as_of - timedelta(days=as_of.weekday())
        first_monday = monday - timedelta(weeks=weeks - 1)
        last_complete = monday if as_of.weekday() == 6 else monday - timedelta(weeks=1)
        activation_first = last_complete - timedelta(weeks=3)
        activation_last = min(last_complete + timedelta(days=6), as_of)
        # As analytics.report.history_start: the MAU of the range's first days needs the 27 days before it.
        history_start = min(first_monday - timedelta(days=27), as_of - timedelta(days=lookback_days))
        return cls(
            as_of=as_of,
            end=(as_of - epoch).days,
            first_monday=(first_monday - epoch).days,
            weeks=weeks,
            observed_weeks=(last_complete - first_monday).days // 7 + 1,
            activation_first=(activation_first - epoch).days,
            activation_last=(activation_last - epoch).days,
            score_from=(history_start - epoch).days,
        )

    def week_label(self, index: int) -> str:
        year, week, _ = (date(1970, 1, 1) + timedelta(days=self.first_monday + 7 * index)).isocalendar()
        return f"{year}-W{week:02d}"


# --- our side: the report, as `cohortbot report` builds it --------------------------------------------------------


def report_metrics(report: Any) -> dict[str, Any]:
    """The compared metrics of an ``analytics.results.Report``, as plain values."""
    from analytics.results import ActivitySummary

    m: dict[str, Any] = {"members": report.members}
    m["daily.day"] = [d.day.isoformat() for d in report.daily]
    for name in ("dau", "wau", "mau"):
        m[f"daily.{name}"] = [getattr(d, name) for d in report.daily]
    for name in ("week", "active", "new", "left", "messages", "reactions", "communicators", "active_channels"):
        m[f"weekly.{name}"] = [getattr(w, name) for w in report.weekly]
    for f in fields(ActivitySummary):
        m[f"summary.{f.name}"] = getattr(report.summary, f.name)
    for name in ("cohort", "size", "retention", "activation_rate", "activation_eligible", "second_week_retention"):
        m[f"cohorts.{name}"] = [
            list(getattr(c, name)) if name == "retention" else getattr(c, name) for c in report.cohorts
        ]
    m["activation_rate"] = report.activation_rate
    m["activation_eligible"] = report.activation_eligible
    m["inactive"] = [[s.member_id, s.days_since_active] for s in report.inactive]
    m["at_risk"] = [[s.member_id, s.score] for s in report.at_risk]
    m["segments"] = dict(report.segments)
    m["top_members"] = [[s.member_id, s.score] for s in report.top_members]
    m["top_members.details"] = [
        [s.member_id, s.messages_28d, s.segment, s.days_since_active] for s in report.top_members
    ]
    commerce = report.commerce
    for name in COURSE_FIELDS:
        values = [getattr(c, name) for c in commerce.courses]
        if name == "price_points":
            values = [[[p.price, p.sales] for p in points] for points in values]
        m[f"commerce.courses.{name}"] = values
    m["commerce.revenue_weeks"] = [[w.week, w.currency, w.gross, w.refunded, w.net] for w in commerce.revenue_weeks]
    for name in (
        "buyers",
        "members",
        "conversion",
        "median_days_to_first_purchase",
        "buyer_retention_30d",
        "buyer_retention_eligible",
        "refund_rate",
    ):
        m[f"commerce.{name}"] = getattr(commerce, name)
    m["commerce.cohort_conversion"] = [[c.cohort, c.size, c.buyers, c.conversion] for c in commerce.cohort_conversion]
    return m


def _best(run: Callable[[], T], repeats: int) -> tuple[list[float], T]:
    """One warm-up run, then ``repeats`` timed runs; the seconds of each and the last result."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return times, result


def reset_peak_memory() -> bool:
    """Reset this process's resident high-water mark (Linux ``/proc/self/clear_refs``); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def peak_memory_bytes() -> int:
    """This process's resident high-water mark since it started or since :func:`reset_peak_memory`.

    ``VmHWM`` belongs to the current address space, so nothing of a parent's memory leaks in; where /proc is
    unavailable, ``ru_maxrss`` is the fallback.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss_bytes()


def measure_ours(db: str, as_of: date, repeats: int) -> dict[str, Any]:
    """Time ``build_community_report`` on the cached database (run in a fresh process: its peak RSS is ours)."""
    from analytics.frames import CommunityFrames
    from analytics.report import build_report
    from bot.reporting import ReportRequest, build_community_report
    from storage import communities, report_frames
    from storage.engine import make_engine

    engine = make_engine(f"sqlite:///{db}")
    request = ReportRequest(
        community=COMMUNITY, as_of=as_of, weeks=REPORT_WEEKS, inactive_after_days=INACTIVE_AFTER_DAYS, top_n=TOP_N
    )
    now = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    reset_peak_memory()  # the imports and the engine above are not the report's
    times, (report, _hint) = _best(lambda: build_community_report(engine, request, now=now), repeats)
    peak = peak_memory_bytes()

    # Where the seconds go: the same reads and the same analytics, each part timed on its own (one more run).
    from analytics.report import LOOKBACK_DAYS

    plan = Plan.of(as_of, REPORT_WEEKS, LOOKBACK_DAYS)
    history_start = date(1970, 1, 1) + timedelta(days=plan.score_from)
    parts: dict[str, float] = {}
    rows: dict[str, int] = {}
    read_frames: dict[str, pd.DataFrame] = {}
    with engine.connect() as conn:
        info = communities.find_community(conn, COMMUNITY)
        assert info is not None
        end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        reads: dict[str, Callable[[], pd.DataFrame]] = {
            "member_days": lambda: report_frames.member_days(conn, info.id, history_start, as_of),
            "members": lambda: report_frames.members(conn, info.id),
            "community_days": lambda: report_frames.community_days(conn, info.id, history_start, as_of),
            "channel_days": lambda: report_frames.channel_days(conn, info.id, history_start, as_of),
            "purchases": lambda: report_frames.purchases(conn, info.id, end),
        }
        for name, read in reads.items():
            started = time.perf_counter()
            read_frames[name] = read()
            parts[f"read {name}"] = time.perf_counter() - started
            rows[name] = len(read_frames[name])
    frames = CommunityFrames(
        community=info.name,
        timezone=ZoneInfo(info.timezone),
        as_of=as_of,
        member_days=read_frames["member_days"],
        members=read_frames["members"],
        community_days=read_frames["community_days"],
        channel_days=read_frames["channel_days"],
        purchases=read_frames["purchases"],
    )
    started = time.perf_counter()
    build_report(frames, weeks=REPORT_WEEKS, inactive_after_days=INACTIVE_AFTER_DAYS, top_n=TOP_N)
    parts["build_report"] = time.perf_counter() - started
    engine.dispose()
    return {
        "times": times,
        "peak": peak,
        "parts": parts,
        "rows": rows,
        "metrics": report_metrics(report),
        "history_start": history_start.isoformat(),
    }


# --- DuckDB side: the same metrics with SQL over the raw events -------------------------------------------------


def _nullable_ints(values: np.ndarray[Any, Any], shift: int = 0) -> Any:
    """An ``Int64`` column of ``values + shift``, NULL where ``values`` is ``NONE``."""
    out = pd.array(values.astype(np.int64) + shift, dtype="Int64")
    out[values == NONE] = pd.NA
    return out


def load_duckdb(npz: str) -> tuple[Any, dict[str, int]]:
    """An in-memory DuckDB holding the community's raw events, membership events, members and purchases.

    Tables (days are local day numbers, as the bot's ingestion buckets them):
    ``events(member, day, kind, channel, is_reply, other)``: kind 0 a message (``channel`` where it was posted,
    ``other`` the replied-to author when it is a reply), 1 a live reaction (``other`` the reacted message's author);
    ``memberships(member_id, kind, day, ms)``: 0 a join, 1 a leave; ``people(member_id, is_bot, opt_out,
    first_seen_day)``; ``purchases(purchase_id, member_id, course, title, currency, amount, day, refund_day)``.
    """
    import duckdb

    c = Community.load(Path(npz))
    day0 = first_day_number()
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    raw = pd.DataFrame(
        {
            "member": c.ev_member,
            "day": c.ev_day,
            "kind": c.ev_kind,
            "channel": c.ev_channel,
            "is_reply": c.ev_reply,
            "other": c.ev_other,
        },
        copy=False,
    )
    con.register("raw_events", raw)
    con.execute(
        f"CREATE TABLE events AS SELECT member, day::INTEGER + {day0} AS day, kind, "
        f"NULLIF(channel, {NONE}) AS channel, is_reply, NULLIF(other, {NONE}) AS other FROM raw_events"
    )
    con.unregister("raw_events")
    del raw
    first_seen = np.searchsorted(c.midnight_ms, c.first_seen_ms, side="right") - 1
    people = pd.DataFrame(
        {
            "member_id": np.arange(1, c.members + 1, dtype=np.int32),
            "is_bot": c.is_bot,
            "opt_out": c.opt_out,
            "first_seen_day": (first_seen + day0).astype(np.int32),
        }
    )
    memberships = pd.DataFrame(
        {
            "member_id": c.ms_member,
            "kind": c.ms_kind,
            "day": c.ms_day.astype(np.int32) + day0,
            "ms": c.ms_ms,
        }
    )
    purchases = pd.DataFrame(
        {
            "purchase_id": np.arange(1, len(c.pu_member) + 1),
            "member_id": _nullable_ints(c.pu_member),
            "course": [COURSES[k][0] for k in c.pu_course.tolist()],
            "title": [COURSES[k][1] for k in c.pu_course.tolist()],
            "currency": [COURSES[k][2] for k in c.pu_course.tolist()],
            "amount": c.pu_amount,
            "day": c.pu_day.astype(np.int32) + day0,
            "refund_day": _nullable_ints(c.pu_refund_day, day0),
        }
    )
    for name, frame in (("people", people), ("memberships", memberships), ("purchases", purchases)):
        con.register(f"raw_{name}", frame)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM raw_{name}")
        con.unregister(f"raw_{name}")
    counts = {"events": len(c.ev_member), "memberships": len(c.ms_member), "purchases": len(c.pu_member)}
    return con, counts


def _rows(con: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in con.execute(sql).fetchall()]


def duckdb_metrics(con: Any, plan: Plan) -> dict[str, Any]:
    """Every compared metric, computed with SQL over the raw events (see docs/metrics.md for the definitions)."""
    from analytics.members import DEFAULT_WEIGHTS, HALF_LIFE_DAYS

    e, m0, n_weeks = plan.end, plan.first_monday, plan.weeks
    w = DEFAULT_WEIGHTS
    humans = "(SELECT member_id FROM people WHERE NOT is_bot)"
    bots = "(SELECT member_id FROM people WHERE is_bot)"

    # Member-days of humans over the days the day-level metrics look at (the 28-day windows before the range, the
    # 42 days of the member table and the score's history all start on or after plan.score_from): messages, replies
    # to others, reactions given, reactions received from other humans.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE md AS
        WITH own AS (
            SELECT member AS member_id, day,
                count(*) FILTER (WHERE kind = 0) AS messages,
                count(*) FILTER (WHERE kind = 0 AND is_reply AND (other IS NULL OR other <> member)) AS replies,
                count(*) FILTER (WHERE kind = 1) AS given
            FROM events WHERE member NOT IN {bots} AND day BETWEEN {plan.score_from} AND {e}
            GROUP BY ALL
        ), got AS (
            SELECT other AS member_id, day, count(*) AS received
            FROM events
            WHERE kind = 1 AND other <> member AND member NOT IN {bots} AND other NOT IN {bots}
                AND day BETWEEN {plan.score_from} AND {e}
            GROUP BY ALL
        )
        SELECT member_id, day, coalesce(messages, 0) AS messages, coalesce(replies, 0) AS replies,
            coalesce(given, 0) AS given, coalesce(received, 0) AS received,
            coalesce(messages, 0) + coalesce(given, 0) > 0 AS active
        FROM own FULL JOIN got USING (member_id, day)
    """)
    # Members: join day (first join, else first activity, else first seen), leave day (when gone), last active day.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE person AS
        WITH j AS (
            SELECT member_id,
                min(day) FILTER (WHERE kind = 0) AS first_join_day,
                max(ms) FILTER (WHERE kind = 0) AS last_join_ms,
                max(ms) FILTER (WHERE kind = 1) AS last_left_ms,
                arg_max(day, ms) FILTER (WHERE kind = 1) AS last_left_day
            FROM memberships GROUP BY member_id
        ), a AS (
            -- every event of a human is activity (a message or a reaction given)
            SELECT member AS member_id, min(day) AS first_active_day, max(day) AS last_active_day
            FROM events WHERE member NOT IN {bots} AND day <= {e} GROUP BY member
        )
        SELECT p.member_id, p.opt_out,
            coalesce(least(j.first_join_day, a.first_active_day), p.first_seen_day) AS joined_day,
            CASE WHEN j.last_left_ms IS NOT NULL AND (j.last_join_ms IS NULL OR j.last_left_ms > j.last_join_ms)
                THEN j.last_left_day END AS left_day,
            a.last_active_day
        FROM people p LEFT JOIN j USING (member_id) LEFT JOIN a USING (member_id)
        WHERE NOT p.is_bot
            -- members: humans who ever joined, left, were active or bought (docs/metrics.md, "Members")
            AND (p.member_id IN (SELECT member_id FROM memberships) OR p.member_id IN (SELECT member FROM events)
                OR p.member_id IN (SELECT member_id FROM purchases WHERE member_id IS NOT NULL))
    """)
    # The member table: membership on as_of, recency windows, 28-day messages, engagement score, segment.
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE mt AS
        WITH recent AS (
            SELECT member_id,
                sum(messages) FILTER (WHERE day >= {e - 27}) AS messages_28d,
                bool_or(active AND day >= {e - 27}) AS active_28d,
                bool_or(active AND day >= {e - 13}) AS active_last_14,
                bool_or(active AND day <= {e - 14}) AS active_before_14
            FROM md WHERE day BETWEEN {e - 41} AND {e} GROUP BY member_id
        ), score AS (
            SELECT member_id,
                sum((messages * {w.messages!r}::DOUBLE + replies * {w.replies!r}::DOUBLE
                    + given * {w.reactions_given!r}::DOUBLE + received * {w.reactions_received!r}::DOUBLE)
                    * pow(2.0::DOUBLE, -({e} - day) / {HALF_LIFE_DAYS!r}::DOUBLE)) AS score
            FROM md WHERE day BETWEEN {plan.score_from} AND {e} GROUP BY member_id
        ), t AS (
            SELECT p.member_id, p.opt_out,
                (p.joined_day IS NULL OR p.joined_day <= {e}) AND (p.left_day IS NULL OR p.left_day > {e})
                    AS is_member,
                {e} - p.last_active_day AS days_since_active,
                {e} - p.joined_day AS days_since_joined,
                coalesce(r.messages_28d, 0) AS messages_28d,
                coalesce(r.active_28d, false) AS active_28d,
                coalesce(r.active_last_14, false) AS active_last_14,
                coalesce(r.active_before_14, false) AS active_before_14,
                coalesce(s.score, 0.0) AS score
            FROM person p LEFT JOIN recent r USING (member_id) LEFT JOIN score s USING (member_id)
        ), early AS (
            SELECT *, CASE
                WHEN NOT is_member THEN NULL
                WHEN days_since_joined < 14 THEN 'newcomers'
                WHEN active_before_14 AND NOT active_last_14 THEN 'at_risk'
                WHEN NOT active_28d THEN 'dormant'
                WHEN messages_28d = 0 THEN 'lurkers'
                ELSE '' END AS rule
            FROM t
        ), ranked AS (
            SELECT member_id,
                row_number() OVER (ORDER BY score DESC, member_id) AS place, count(*) OVER () AS candidates
            FROM early WHERE rule = ''
        )
        SELECT early.* EXCLUDE (rule),
            CASE WHEN rule <> '' OR rule IS NULL THEN rule
                WHEN place <= (candidates + 9) // 10 AND messages_28d >= 10 THEN 'champions'
                ELSE 'regulars' END AS segment
        FROM early LEFT JOIN ranked USING (member_id)
    """)

    out: dict[str, Any] = {}
    out["members"] = _rows(con, "SELECT count(*) FILTER (WHERE is_member) FROM mt")[0][0]

    # DAU / WAU / MAU: distinct active members in the 1, 7 and 28 days ending on each day. A member is counted in the
    # window ending on d through the earliest of their active days in it: an active day a whose previous active
    # day is p counts for the days max(a, p + w) .. a + w - 1 (+1 there in a difference array, summed per day).
    daily = _rows(
        con,
        f"""
        WITH act AS (
            SELECT day, lag(day) OVER (PARTITION BY member_id ORDER BY day) AS prev
            FROM md WHERE active AND day BETWEEN {m0 - 27} AND {e}
        ), spans AS (
            SELECT w, greatest(day, coalesce(prev + w, day)) AS lo, least(day + w - 1, {e}) AS hi
            FROM act CROSS JOIN (VALUES (1), (7), (28)) windows(w)
        ), deltas AS (
            SELECT w, lo AS d, 1 AS delta FROM spans WHERE lo <= hi
            UNION ALL SELECT w, hi + 1, -1 FROM spans WHERE lo <= hi
        ), per_day AS (SELECT w, d, sum(delta) AS delta FROM deltas GROUP BY ALL),
        grid AS (SELECT w, range AS d FROM (VALUES (1), (7), (28)) windows(w) CROSS JOIN range({m0 - 27}, {e + 1})),
        counts AS (
            SELECT w, d, sum(coalesce(delta, 0)) OVER (PARTITION BY w ORDER BY d) AS n
            FROM grid LEFT JOIN per_day USING (w, d)
        )
        SELECT d, max(n) FILTER (WHERE w = 1), max(n) FILTER (WHERE w = 7), max(n) FILTER (WHERE w = 28)
        FROM counts WHERE d >= {m0} GROUP BY d ORDER BY d
        """,
    )
    out["daily.day"] = [(date(1970, 1, 1) + timedelta(days=int(r[0]))).isoformat() for r in daily]
    out["daily.dau"] = [int(r[1]) for r in daily]
    out["daily.wau"] = [int(r[2]) for r in daily]
    out["daily.mau"] = [int(r[3]) for r in daily]

    weekly = _rows(
        con,
        f"""
        WITH weeks AS (SELECT range AS w FROM range(0, {n_weeks})),
        a AS (
            SELECT (day - {m0}) // 7 AS w, count(DISTINCT member_id) FILTER (WHERE active) AS active,
                sum(messages) AS messages, sum(given) AS reactions
            FROM md WHERE day BETWEEN {m0} AND {e} GROUP BY w
        ), c AS (
            SELECT w, count(*) AS communicators FROM (
                SELECT member_id, (day - {m0}) // 7 AS w, sum(messages) AS n
                FROM md WHERE day BETWEEN {m0} AND {e} GROUP BY ALL
            ) WHERE n >= 3 GROUP BY w
        ), n AS (
            SELECT (joined_day - {m0}) // 7 AS w, count(*) AS new FROM person
            WHERE joined_day BETWEEN {m0} AND {e} GROUP BY w
        ), l AS (
            SELECT (day - {m0}) // 7 AS w, count(*) AS left_ FROM memberships
            WHERE kind = 1 AND day BETWEEN {m0} AND {e} AND member_id IN {humans} GROUP BY w
        ), ch AS (
            SELECT (day - {m0}) // 7 AS w, count(DISTINCT channel) AS channels FROM events
            WHERE kind = 0 AND day BETWEEN {m0} AND {e} AND member IN {humans} GROUP BY w
        )
        SELECT weeks.w, coalesce(a.active, 0), coalesce(n.new, 0), coalesce(l.left_, 0), coalesce(a.messages, 0),
            coalesce(a.reactions, 0), coalesce(c.communicators, 0), coalesce(ch.channels, 0)
        FROM weeks LEFT JOIN a USING (w) LEFT JOIN c USING (w) LEFT JOIN n USING (w) LEFT JOIN l USING (w)
            LEFT JOIN ch USING (w)
        ORDER BY weeks.w
        """,
    )
    out["weekly.week"] = [plan.week_label(int(r[0])) for r in weekly]
    for i, name in enumerate(("active", "new", "left", "messages", "reactions", "communicators", "active_channels")):
        out[f"weekly.{name}"] = [int(r[i + 1]) for r in weekly]

    # The activity summary over the 28 days ending on as_of.
    s = _rows(
        con,
        f"""
        WITH per_member AS (
            SELECT member_id, sum(messages) AS n FROM md WHERE day BETWEEN {e - 27} AND {e}
            GROUP BY member_id HAVING bool_or(active)
        )
        SELECT
            (SELECT sum(messages) FROM md WHERE day BETWEEN {e - 6} AND {e}),
            (SELECT sum(messages) FROM md WHERE day BETWEEN {e - 27} AND {e}),
            (SELECT sum(given) FROM md WHERE day BETWEEN {e - 27} AND {e}),
            (SELECT count(*) FILTER (WHERE n >= 3) FROM per_member),
            (SELECT count(DISTINCT channel) FROM events
                WHERE kind = 0 AND day BETWEEN {e - 27} AND {e} AND member IN {humans}),
            (SELECT avg(n) FROM per_member),
            (SELECT stddev_pop(n) FROM per_member)
        """,
    )[0]
    dau_28 = out["daily.dau"][-28:]
    mau = out["daily.mau"][-1]
    out["summary.dau"] = out["daily.dau"][-1]
    out["summary.wau"] = out["daily.wau"][-1]
    out["summary.mau"] = mau
    out["summary.stickiness"] = (sum(dau_28) / 28) / mau if mau else None
    for i, name in enumerate(("messages_7d", "messages_28d", "reactions_28d", "communicators_28d")):
        out[f"summary.{name}"] = int(s[i] or 0)
    out["summary.active_channels_28d"] = int(s[4])
    out["summary.messages_per_active_member_mean"] = None if s[5] is None else float(s[5])
    out["summary.messages_per_active_member_std"] = None if s[6] is None else float(s[6])

    # Cohorts: joiners per week of the range, their weekly retention over complete weeks, their activation.
    sizes = _rows(
        con,
        f"""
        WITH j AS (SELECT member_id, joined_day, (joined_day - {m0}) // 7 AS c FROM person
            WHERE joined_day BETWEEN {m0} AND {e}),
        first_week AS (
            SELECT j.member_id, j.c, sum(md.messages) AS n FROM j JOIN md USING (member_id)
            WHERE j.joined_day + 6 <= {e} AND md.day BETWEEN j.joined_day AND j.joined_day + 6 GROUP BY ALL
        ), activated AS (SELECT c, count(*) AS n FROM first_week WHERE n >= 3 GROUP BY c)
        SELECT j.c, count(*), count(*) FILTER (WHERE j.joined_day + 6 <= {e}), any_value(coalesce(activated.n, 0))
        FROM j LEFT JOIN activated USING (c) GROUP BY j.c ORDER BY j.c
        """,
    )
    active = _rows(
        con,
        f"""
        WITH j AS (SELECT member_id, (joined_day - {m0}) // 7 AS c FROM person WHERE joined_day BETWEEN {m0} AND {e})
        SELECT j.c, (md.day - {m0}) // 7 - j.c AS k, count(DISTINCT member_id)
        FROM j JOIN md USING (member_id)
        WHERE md.active AND md.day BETWEEN {m0} AND {m0 + 7 * plan.observed_weeks - 1} AND (md.day - {m0}) // 7 >= j.c
        GROUP BY ALL
        """,
    )
    retained = {(int(c), int(k)): int(n) for c, k, n in active}
    cohorts = []
    for c, size, eligible, activated in sizes:
        c, size, eligible, activated = int(c), int(size), int(eligible), int(activated)
        retention = [retained.get((c, k), 0) / size for k in range(max(plan.observed_weeks - c, 0))]
        cohorts.append(
            (
                plan.week_label(c),
                size,
                retention,
                activated / eligible if eligible else None,
                eligible,
                retention[1] if len(retention) > 1 else None,
            )
        )
    for i, name in enumerate(
        ("cohort", "size", "retention", "activation_rate", "activation_eligible", "second_week_retention")
    ):
        out[f"cohorts.{name}"] = [row[i] for row in cohorts]
    eligible, activated = _rows(
        con,
        f"""
        WITH j AS (SELECT member_id, joined_day FROM person
            WHERE joined_day BETWEEN {plan.activation_first} AND {plan.activation_last} AND joined_day + 6 <= {e}),
        n AS (SELECT j.member_id, sum(md.messages) AS n FROM j JOIN md USING (member_id)
            WHERE md.day BETWEEN j.joined_day AND j.joined_day + 6 GROUP BY j.member_id)
        SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM n WHERE n >= 3)
        """,
    )[0]
    out["activation_rate"] = activated / eligible if eligible else None
    out["activation_eligible"] = int(eligible)

    # Member lists and segments.
    out["inactive"] = [
        [int(a), None if b is None else int(b)]
        for a, b in _rows(
            con,
            f"""
            SELECT member_id, days_since_active FROM mt
            WHERE is_member AND (days_since_active IS NULL OR days_since_active >= {INACTIVE_AFTER_DAYS})
                AND (days_since_joined IS NULL OR days_since_joined >= {INACTIVE_AFTER_DAYS})
            ORDER BY days_since_active NULLS LAST, member_id
            """,
        )
    ]
    out["at_risk"] = [
        [int(a), float(b)]
        for a, b in _rows(
            con,
            "SELECT member_id, score FROM mt WHERE is_member AND active_before_14 AND NOT active_last_14 "
            "ORDER BY score DESC, member_id",
        )
    ]
    counts = dict(_rows(con, "SELECT segment, count(*) FROM mt WHERE segment IS NOT NULL GROUP BY segment"))
    out["segments"] = {
        name: int(counts.get(name, 0))
        for name in ("newcomers", "at_risk", "dormant", "lurkers", "champions", "regulars")
    }
    top = _rows(
        con,
        f"SELECT member_id, score, messages_28d, segment, days_since_active FROM mt "
        f"WHERE is_member AND NOT opt_out AND score > 0 ORDER BY score DESC, member_id LIMIT {TOP_N}",
    )
    out["top_members"] = [[int(r[0]), float(r[1])] for r in top]
    out["top_members.details"] = [[int(r[0]), int(r[2]), r[3], None if r[4] is None else int(r[4])] for r in top]

    out.update(_commerce(con, plan))
    return out


def _commerce(con: Any, plan: Plan) -> dict[str, Any]:
    e, m0 = plan.end, plan.first_monday
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE ledger AS
        SELECT purchase_id, member_id, course, title, currency,
            CASE WHEN currency = 'XTR' THEN amount::DOUBLE ELSE amount::DOUBLE / 100 END AS amount,
            day AS purchased_day, day - (day + 3) % 7 AS week_monday,
            refund_day IS NOT NULL AND refund_day <= {e} AS refunded, refund_day
        FROM purchases WHERE day <= {e}
    """)
    out: dict[str, Any] = {}
    courses = _rows(
        con,
        """
        SELECT course, currency, arg_max(title, purchased_day), count(*),
            count(DISTINCT member_id) + count(*) FILTER (WHERE member_id IS NULL),
            count(*) FILTER (WHERE refunded), sum(amount), coalesce(sum(amount) FILTER (WHERE refunded), 0),
            count(DISTINCT week_monday)
        FROM ledger GROUP BY course, currency ORDER BY course, currency
        """,
    )
    prices: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    for course, currency, price, sales, weeks in _rows(
        con,
        "SELECT course, currency, round(amount, 2) AS price, count(*) AS sales, count(DISTINCT week_monday) "
        "FROM ledger GROUP BY ALL ORDER BY course, currency, sales DESC, price",
    ):
        prices.setdefault((course, currency), []).append((float(price), int(sales), int(weeks)))
    table: dict[str, list[Any]] = {k: [] for k in COURSE_FIELDS}
    for course, currency, title, sales, buyers, refunds, gross, refunded, sale_weeks in courses:
        net = float(gross) - float(refunded)
        points = prices[(course, currency)]
        elasticity = None
        if len(points) >= 2:
            (p1, s1, w1), (p2, s2, w2) = points[0], points[1]
            q1, q2 = s1 / w1, s2 / w2
            if p1 != p2 and q1 + q2 != 0:
                elasticity = ((q2 - q1) / ((q2 + q1) / 2)) / ((p2 - p1) / ((p2 + p1) / 2))
        row = {
            "course": course,
            "currency": currency,
            "title": title,
            "sales": int(sales),
            "buyers": int(buyers),
            "refunds": int(refunds),
            "gross": float(gross),
            "refunded": float(refunded),
            "net": net,
            "refund_rate": refunds / sales,
            "price": net / sales,
            "sales_per_sale_week": sales / sale_weeks,
            "sale_weeks": int(sale_weeks),
            "price_points": [[p, s] for p, s, _w in points] if len(points) >= 2 else [],
            "arc_elasticity": elasticity,
        }
        for k, v in row.items():
            table[k].append(v)
    for k, values in table.items():
        out[f"commerce.courses.{k}"] = values

    out["commerce.revenue_weeks"] = [
        [plan.week_label(int(w)), cur, float(g), float(r), float(g) - float(r)]
        for w, cur, g, r in _rows(
            con,
            f"""
            WITH cur AS (
                SELECT DISTINCT currency FROM ledger
                WHERE purchased_day >= {m0} OR (refunded AND refund_day >= {m0})
            ), grid AS (SELECT range AS w, currency FROM range(0, {plan.weeks}) CROSS JOIN cur),
            g AS (SELECT currency, (purchased_day - {m0}) // 7 AS w, sum(amount) AS gross FROM ledger
                WHERE purchased_day >= {m0} GROUP BY ALL),
            r AS (SELECT currency, (refund_day - {m0}) // 7 AS w, sum(amount) AS back FROM ledger
                WHERE refunded AND refund_day >= {m0} GROUP BY ALL)
            SELECT grid.w, grid.currency, coalesce(g.gross, 0), coalesce(r.back, 0)
            FROM grid LEFT JOIN g USING (currency, w) LEFT JOIN r USING (currency, w)
            ORDER BY grid.w, grid.currency
            """,
        )
    ]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE buyers AS
        WITH ever AS (SELECT member_id, joined_day FROM person WHERE joined_day IS NULL OR joined_day <= {e}),
        first AS (SELECT member_id, min(purchased_day) AS first_day FROM ledger
            WHERE member_id IS NOT NULL GROUP BY member_id)
        SELECT ever.member_id, ever.joined_day, first.first_day FROM ever LEFT JOIN first USING (member_id)
    """)
    members, buyers, median, eligible, retained, refund_rate = _rows(
        con,
        f"""
        SELECT count(*), count(first_day),
            quantile_cont(greatest(first_day - joined_day, 0), 0.5)
                FILTER (WHERE first_day IS NOT NULL AND joined_day IS NOT NULL),
            count(*) FILTER (WHERE first_day + 30 <= {e}),
            count(*) FILTER (WHERE first_day + 30 <= {e} AND EXISTS (
                SELECT 1 FROM events WHERE events.member = buyers.member_id
                    AND events.day BETWEEN buyers.first_day + 1 AND buyers.first_day + 30)),
            (SELECT count(*) FILTER (WHERE refunded) / count(*) FROM ledger)
        FROM buyers
        """,
    )[0]
    out["commerce.buyers"] = int(buyers)
    out["commerce.members"] = int(members)
    out["commerce.conversion"] = buyers / members if members else None
    out["commerce.median_days_to_first_purchase"] = None if median is None else float(median)
    out["commerce.buyer_retention_30d"] = retained / eligible if eligible else None
    out["commerce.buyer_retention_eligible"] = int(eligible)
    out["commerce.refund_rate"] = None if refund_rate is None else float(refund_rate)
    out["commerce.cohort_conversion"] = [
        [plan.week_label(int(c)), int(size), int(bought), bought / size]
        for c, size, bought in _rows(
            con,
            f"""
            SELECT (joined_day - {m0}) // 7 AS c, count(*), count(first_day) FROM buyers
            WHERE joined_day >= {m0} GROUP BY c ORDER BY c
            """,
        )
    ]
    return out


def measure_duckdb(npz: str, as_of: date, repeats: int) -> dict[str, Any]:
    """Load the raw events into DuckDB and time the metrics there (run in a fresh process: its own peak RSS)."""
    import duckdb

    from analytics.report import LOOKBACK_DAYS

    reset_peak_memory()
    started = time.perf_counter()
    con, counts = load_duckdb(npz)
    load_seconds = time.perf_counter() - started
    plan = Plan.of(as_of, REPORT_WEEKS, LOOKBACK_DAYS)
    times, metrics = _best(lambda: duckdb_metrics(con, plan), repeats)
    threads = _rows(con, "SELECT current_setting('threads')")[0][0]
    return {
        "times": times,
        "peak": peak_memory_bytes(),
        "load_seconds": load_seconds,
        "counts": counts,
        "metrics": metrics,
        "version": duckdb.__version__,
        "threads": int(threads),
    }


# --- comparison ----------------------------------------------------------------------------------------------


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None or isinstance(a, str) or isinstance(b, str):
            return False
        x, y = float(a), float(b)
        return x == y or abs(x - y) <= REL_TOL * max(abs(x), abs(y))
    return bool(a == b)


def _ranked_close(a: list[list[Any]], b: list[list[Any]]) -> bool:
    """Member lists ordered by score: same scores in order, and the same members within each run of tied scores."""
    if len(a) != len(b) or not all(_close(x[1], y[1]) for x, y in zip(a, b, strict=True)):
        return False
    i = 0
    while i < len(a):
        j = i + 1
        while j < len(a) and _close(a[j][1], a[i][1]):
            j += 1
        if {x[0] for x in a[i:j]} != {y[0] for y in b[i:j]}:
            return False
        i = j
    return True


def _show(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _first_difference(a: Any, b: Any) -> str:
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if not _close(x, y):
                return f"first at [{i}]: {_show(x)} vs {_show(y)}"
    return f"{_show(a)} vs {_show(b)}"


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """One line per metric that differs (both values), empty when everything agrees."""
    problems = []
    for name in sorted(ours.keys() | theirs.keys()):
        if name not in ours or name not in theirs:
            problems.append(f"{name}: only computed by {'cohortbot' if name in ours else 'duckdb'}")
            continue
        a, b = ours[name], theirs[name]
        same = _ranked_close(a, b) if name in RANKED else _close(a, b)
        if not same:
            problems.append(f"{name}: cohortbot {_first_difference(a, b)} (cohortbot vs duckdb)")
    return problems


# --- the run -----------------------------------------------------------------------------------------------------


def _in_fresh_process(func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    # A spawned process per side: each peak RSS is that side's alone (not the generator's, not the other side's).
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(func, *args).result()


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _yes(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _times(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _wrap(names: Sequence[str], width: int = 116) -> list[str]:
    lines, line = [], ""
    for name in names:
        piece = name if not line else f", {name}"
        if len(line) + len(piece) > width:
            lines.append(line + ",")
            line = name
        else:
            line += piece
    return [*lines, line] if line else lines


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its report; the last line is the one-line summary."""
    import duckdb

    print(
        f"cohortbot analytics benchmark: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"pandas {pd.__version__}, numpy {np.__version__}, DuckDB {duckdb.__version__}; {os.cpu_count()} CPUs; "
        f"load average {_load()}",
        flush=True,
    )
    params = Params(members=args.members, events=args.events, weeks=args.history_weeks, seed=args.seed)
    started = time.perf_counter()
    cached = ensure(params, args.workdir)
    s, n = cached.seconds, cached.counts
    how = "generated now" if cached.built_now else "cached; generating it took"
    print(
        f"community: {args.members:,} members, {n['events']:,} events ({n['messages']:,} messages incl. "
        f"{n['bot_messages']:,} by bots, {n['reactions']:,} reactions), {n['memberships']:,} joins/leaves, "
        f"{n['purchases']:,} purchases ({n['refunds']:,} refunded), {n['channels']} channels; "
        f"{args.history_weeks} weeks from {FIRST_DAY.isoformat()}, seed {args.seed}",
    )
    print(
        f"synthetic: {cached.db} + .npz ({how} {s['total']:.1f} s: events {s['generate']:.1f} s, rollups "
        f"{s['rollups']:.1f} s, SQLite {s['database']:.1f} s, arrays {s['arrays']:.1f} s; "
        f"{n['member_days']:,} member-day rows)"
        + (f"; this run: {time.perf_counter() - started:.1f} s" if cached.built_now else ""),
        flush=True,
    )
    as_of = FIRST_DAY + timedelta(days=params.days - 1)

    ours = _in_fresh_process(measure_ours, str(cached.db), as_of, args.repeats)
    best = min(ours["times"])
    parts = ours["parts"]
    reads = sum(v for k, v in parts.items() if k.startswith("read "))
    rows = ours["rows"]
    print(
        f"cohortbot: build_community_report as of {as_of.isoformat()}, {REPORT_WEEKS} weeks (history from "
        f"{ours['history_start']}): best {best:.2f} s of {_times(ours['times'])} (after a warm-up); "
        f"peak RSS {ours['peak'] / MB:,.0f} MB",
        flush=True,
    )
    print(
        f"  where the time goes (one more run, part by part): SQL reads {reads:.2f} s ("
        + ", ".join(f"{k[5:]} {v:.2f} s / {rows[k[5:]]:,} rows" for k, v in parts.items() if k.startswith("read "))
        + f"), build_report {parts['build_report']:.2f} s"
    )
    duck = _in_fresh_process(measure_duckdb, str(cached.npz), as_of, args.repeats)
    duck_best = min(duck["times"])
    print(
        f"duckdb: {duck['counts']['events']:,} raw events loaded into memory in {duck['load_seconds']:.1f} s "
        f"(not compared); metrics best {duck_best:.2f} s of {_times(duck['times'])} (after a warm-up, "
        f"{duck['threads']} threads); peak RSS {duck['peak'] / MB:,.0f} MB (its own process)",
        flush=True,
    )

    problems = compare(ours["metrics"], duck["metrics"])
    names = sorted(ours["metrics"].keys() & duck["metrics"].keys())
    print(f"metrics compared ({len(names)}):")
    for line in _wrap(names):
        print(f"  {line}")
    ratio = best / duck_best
    peak_mb = ours["peak"] / MB
    if problems:
        print(f"check: cohortbot and duckdb DISAGREE on {len(problems)} of {len(names)} metrics:")
        for problem in problems:
            print(f"  {problem}")
        print(f"timings (not valid while the results differ): {best:.2f} s, {ratio:.2f}x duckdb, {peak_mb:.0f} MB")
        print(f"analytics: results differ from duckdb on {len(problems)} metric(s)")
        return 1
    print(f"check: cohortbot and duckdb agree on all {len(names)} metrics")
    print(
        f"targets: <= {TARGET_SECONDS:g} s {_yes(best <= TARGET_SECONDS)}; <= {TARGET_RATIO:g}x duckdb "
        f"{_yes(ratio <= TARGET_RATIO)}; <= {TARGET_PEAK_MB:,} MB peak {_yes(peak_mb <= TARGET_PEAK_MB)} "
        f"(load average now {_load()})"
    )
    print(f"analytics: {best:.2f} s, {ratio:.2f}x duckdb, {peak_mb:.0f} MB peak")
    return 0
