"""The DuckDB reference of ``python -m bench analytics``: the same metrics with SQL over the raw events."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analytics.common import (
    COURSE_FIELDS,
    INACTIVE_AFTER_DAYS,
    REPORT_WEEKS,
    TOP_N,
    Plan,
    best_of,
    peak_memory_bytes,
    reset_peak_memory,
)
from bench.synthetic import (
    COURSES,
    NONE,
    SUBSCRIPTION_COURSE,
    TIMEZONE,
    Community,
    channel_name,
    channel_parent,
    first_day_number,
)

# --- DuckDB side: the same metrics with SQL over the raw events -------------------------------------------------


def _nullable_ints(values: np.ndarray[Any, Any], shift: int = 0) -> Any:
    """An ``Int64`` column of ``values + shift``, NULL where ``values`` is ``NONE``."""
    out = pd.array(values.astype(np.int64) + shift, dtype="Int64")
    out[values == NONE] = pd.NA
    return out


def load_duckdb(npz: str) -> tuple[Any, dict[str, int]]:
    """An in-memory DuckDB holding the community's raw events, membership events, members and purchases.

    Tables (days are local day numbers, as the bot's ingestion buckets them):
    ``events(member, day, hour, kind, channel, is_reply, other)``: kind 0 a message (``channel`` where it was posted,
    ``other`` the replied-to author when it is a reply), 1 a live reaction (``other`` the reacted message's author);
    ``hour`` is the local wall-clock hour, converted here by DuckDB's own time zone support from the UTC instant;
    ``channels(channel, name, parent)``: names, and the parent's name of a thread;
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
            "ms": c.midnight_ms[c.ev_day.astype(np.int64)] + c.ev_offset,
            "kind": c.ev_kind,
            "channel": c.ev_channel,
            "is_reply": c.ev_reply,
            "other": c.ev_other,
        },
        copy=False,
    )
    con.register("raw_events", raw)
    con.execute(
        f"CREATE TABLE events AS SELECT member, day::INTEGER + {day0} AS day, "
        f"hour(timezone('{TIMEZONE}', to_timestamp(ms / 1000.0)))::INTEGER AS hour, kind, "
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
    # A subscription's paid periods are purchases too (the monthly course), and the periods get a table of their own.
    sub_course, sub_title, sub_currency = SUBSCRIPTION_COURSE
    period_day = (np.searchsorted(c.midnight_ms, c.sp_start_ms, side="right") - 1).astype(np.int32) + day0
    refund_day = np.where(
        c.sp_refund_ms == NONE, NONE, np.searchsorted(c.midnight_ms, c.sp_refund_ms, side="right") - 1
    ).astype(np.int32)
    purchases = pd.concat(
        [
            purchases,
            pd.DataFrame(
                {
                    "purchase_id": np.arange(len(c.pu_member) + 1, len(c.pu_member) + len(c.sp_sub) + 1),
                    "member_id": pd.array(c.su_member[c.sp_sub].astype(np.int64), dtype="Int64"),
                    "course": sub_course,
                    "title": sub_title,
                    "currency": sub_currency,
                    "amount": c.sp_amount,
                    "day": period_day,
                    "refund_day": _nullable_ints(refund_day, day0),
                }
            ),
        ],
        ignore_index=True,
    )
    paid_until = c.su_paid_until_ms[c.sp_sub]
    periods = pd.DataFrame(
        {
            "sub": c.sp_sub.astype(np.int64) + 1,
            "member_id": c.su_member[c.sp_sub].astype(np.int64),
            "course": sub_course,
            "currency": sub_currency,
            "amount": c.sp_amount.astype(np.float64) / 100,
            "starts": c.sp_start_ms,
            "ends": c.sp_end_ms,
            "paid_until": paid_until,
            "start_day": period_day,
            # The local day of each possible access end (meaningful for ends before the data ends, all that count).
            "end_day": (np.searchsorted(c.midnight_ms, c.sp_end_ms, side="right") - 1).astype(np.int32) + day0,
            "paid_day": (np.searchsorted(c.midnight_ms, paid_until, side="right") - 1).astype(np.int32) + day0,
            "refund_ms": pd.array(np.where(c.sp_refund_ms == NONE, None, c.sp_refund_ms), dtype="Int64"),
        }
    )
    midnights = pd.DataFrame(
        {"day": np.arange(len(c.midnight_ms), dtype=np.int64) + day0, "ms": c.midnight_ms.astype(np.int64)}
    )
    ids = list(range(1, int(c.n_channels) + 1))
    parents = [channel_parent(i) for i in ids]
    channels = pd.DataFrame(
        {
            "channel": ids,
            "name": [channel_name(i) for i in ids],
            "parent": [None if p is None else channel_name(p) for p in parents],
        }
    )
    for name, frame in (
        ("people", people),
        ("memberships", memberships),
        ("purchases", purchases),
        ("channels", channels),
        ("periods", periods),
        ("midnights", midnights),
    ):
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
    out.update(_subscriptions(con, plan))
    out.update(_dashboard(con, plan))
    return out


def _dashboard(con: Any, plan: Plan) -> dict[str, Any]:
    """Hour of week, channels and member growth over the report range (docs/metrics.md), from the raw events."""
    e, m0 = plan.end, plan.first_monday
    length = e - m0 + 1
    humans = "(SELECT member_id FROM people WHERE NOT is_bot)"
    out: dict[str, Any] = {}
    # Day number 0 (1970-01-01) is a Thursday: (day + 3) % 7 is the weekday with Monday = 0.
    out["hour_of_week"] = [
        [int(cell) // 24, int(cell) % 24, int(messages), int(reactions)]
        for cell, messages, reactions in _rows(
            con,
            f"""
            WITH cells AS (SELECT range AS cell FROM range(0, 168)),
            counted AS (
                SELECT ((day + 3) % 7) * 24 + hour AS cell,
                    count(*) FILTER (WHERE kind = 0) AS messages, count(*) FILTER (WHERE kind = 1) AS reactions
                FROM events WHERE member IN {humans} AND day BETWEEN {m0} AND {e} GROUP BY ALL
            )
            SELECT cell, coalesce(messages, 0), coalesce(reactions, 0)
            FROM cells LEFT JOIN counted USING (cell) ORDER BY cell
            """,
        )
    ]
    posted = f"kind = 0 AND member IN {humans}"
    channels = _rows(
        con,
        f"""
        WITH now AS (
            SELECT channel, count(*) AS messages, count(DISTINCT member) AS active FROM events
            WHERE {posted} AND day BETWEEN {m0} AND {e} GROUP BY channel
        ), before AS (
            SELECT channel, count(*) AS messages FROM events
            WHERE {posted} AND day BETWEEN {m0 - length} AND {m0 - 1} GROUP BY channel
        ), weeks AS (
            SELECT channel, (day - {m0}) // 7 AS w, count(*) AS messages FROM events
            WHERE {posted} AND day BETWEEN {m0} AND {e} GROUP BY ALL
        ), trend AS (
            SELECT now.channel, list(coalesce(weeks.messages, 0) ORDER BY grid.w) AS weekly
            FROM now CROSS JOIN range(0, {plan.weeks}) grid(w)
                LEFT JOIN weeks ON weeks.channel = now.channel AND weeks.w = grid.w
            GROUP BY now.channel
        )
        SELECT now.channel, c.name, c.parent, now.messages, now.active, coalesce(before.messages, 0), trend.weekly
        FROM now JOIN channels c USING (channel) LEFT JOIN before USING (channel) JOIN trend USING (channel)
        ORDER BY now.messages DESC, c.name, now.channel
        """,
    )
    out["channels"] = [
        [int(r[0]), r[1], r[2], int(r[3]), int(r[4]), int(r[5]), [int(v) for v in r[6]]] for r in channels
    ]
    growth = _rows(
        con,
        f"""
        WITH days AS (SELECT range AS d FROM range({m0}, {e + 1})),
        joins AS (SELECT joined_day AS d, count(*) AS n FROM person WHERE joined_day BETWEEN {m0} AND {e} GROUP BY ALL),
        leaves AS (
            SELECT day AS d, count(*) AS n FROM memberships
            WHERE kind = 1 AND day BETWEEN {m0} AND {e} AND member_id IN {humans} GROUP BY ALL
        ), members AS (
            SELECT days.d, count(p.member_id) AS n FROM days LEFT JOIN person p
                ON (p.joined_day IS NULL OR p.joined_day <= days.d) AND (p.left_day IS NULL OR p.left_day > days.d)
            GROUP BY days.d
        )
        SELECT days.d, coalesce(joins.n, 0), coalesce(leaves.n, 0), members.n
        FROM days LEFT JOIN joins USING (d) LEFT JOIN leaves USING (d) JOIN members USING (d) ORDER BY days.d
        """,
    )
    out["growth"] = [
        [(date(1970, 1, 1) + timedelta(days=int(d))).isoformat(), int(j), int(n_left), int(n)]
        for d, j, n_left, n in growth
    ]
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
    out["commerce.ltv_cohorts"] = [
        [f"{int(mi) // 12:04d}-{int(mi) % 12 + 1:02d}", cur, int(n), int(b), float(net), float(net) / int(n)]
        for mi, cur, n, b, net in _rows(
            con,
            f"""
            WITH months AS (
                SELECT member_id, year(d) * 12 + month(d) - 1 AS mi FROM (
                    SELECT member_id, DATE '1970-01-01' + joined_day::INTEGER AS d FROM person
                    WHERE joined_day IS NOT NULL AND joined_day <= {e})
            ), kept AS (SELECT * FROM months WHERE mi >= {_month_index(plan.as_of) - 11}),
            sizes AS (SELECT mi, count(*) AS n FROM kept GROUP BY mi),
            cur AS (SELECT DISTINCT currency FROM ledger),
            net AS (
                SELECT mi, currency, count(DISTINCT member_id) AS buyers,
                    sum(CASE WHEN refunded THEN 0 ELSE amount END) AS net
                FROM ledger JOIN kept USING (member_id) GROUP BY ALL)
            SELECT sizes.mi, cur.currency, sizes.n, coalesce(net.buyers, 0), coalesce(net.net, 0)
            FROM sizes CROSS JOIN cur LEFT JOIN net USING (mi, currency)
            ORDER BY sizes.mi, cur.currency
            """,
        )
    ]
    return out


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


def _subscriptions(con: Any, plan: Plan) -> dict[str, Any]:
    """The subscription figures (docs/metrics.md, "Subscriptions") with SQL over the paid periods."""
    e, m0 = plan.end, plan.first_monday
    grace = 86_400_000
    (end_ms,) = _rows(con, f"SELECT ms FROM midnights WHERE day = {e + 1}")[0]
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE sp AS
        WITH p AS (
            SELECT *, least(ends, paid_until) AS e,
                CASE WHEN ends <= paid_until THEN end_day ELSE paid_day END AS e_day,
                lead(starts) OVER (PARTITION BY sub ORDER BY starts, ends) AS next_start,
                row_number() OVER (PARTITION BY sub ORDER BY starts DESC, ends DESC) AS from_last
            FROM periods WHERE starts < {end_ms}
        )
        SELECT *, coalesce(next_start <= e + {grace}, false) AS renewed,
            coalesce(next_start <= e + {grace}, false) OR e + {grace} <= {end_ms} AS decided,
            e < {end_ms} AND e_day >= {m0} AS ends_in_range
        FROM p
    """)
    out: dict[str, Any] = {}
    active, subscribers = _rows(
        con,
        f"SELECT count(DISTINCT sub), count(DISTINCT member_id) FROM sp WHERE starts <= {end_ms} AND {end_ms} < e",
    )[0]
    out["subscriptions.active"] = int(active)
    out["subscriptions.subscribers"] = int(subscribers)
    out["subscriptions.mrr"] = [
        [cur, float(v)]
        for cur, v in _rows(
            con,
            f"""
            WITH live AS (SELECT DISTINCT sub FROM sp WHERE starts <= {end_ms} AND {end_ms} < e),
            latest AS (
                SELECT sp.*, (ends - starts) / 86400000.0 AS days FROM sp JOIN live USING (sub) WHERE from_last = 1
            )
            SELECT currency, sum(CASE WHEN days >= 27.5 AND days < 31.5 THEN amount ELSE amount * 30 / days END)
            FROM latest WHERE refund_ms IS NULL OR refund_ms >= {end_ms}
            GROUP BY currency ORDER BY currency
            """,
        )
    ]
    due, renewed = _rows(
        con,
        "SELECT count(*) FILTER (WHERE decided AND ends_in_range), "
        "count(*) FILTER (WHERE decided AND ends_in_range AND renewed) FROM sp",
    )[0]
    out["subscriptions.renewals_due"] = int(due)
    out["subscriptions.renewed"] = int(renewed)
    out["subscriptions.renewal_rate"] = renewed / due if due else None
    week_ends = ", ".join(f"({w}, {m0 + 7 * (w + 1)})" for w in range(plan.weeks))
    out["subscriptions.weeks"] = [
        [plan.week_label(int(w)), int(new), int(churned), int(active_at_end)]
        for w, new, churned, active_at_end in _rows(
            con,
            f"""
            WITH grid AS (
                SELECT g.w, least(coalesce(m.ms, {end_ms}), {end_ms}) AS t
                FROM (VALUES {week_ends}) AS g(w, day) LEFT JOIN midnights m ON m.day = g.day
            ),
            firsts AS (SELECT sub, arg_min(start_day, starts) AS d FROM sp GROUP BY sub),
            n AS (SELECT (d - {m0}) // 7 AS w, count(*) AS c FROM firsts WHERE d >= {m0} GROUP BY ALL),
            ch AS (SELECT (e_day - {m0}) // 7 AS w, count(*) AS c FROM sp
                WHERE decided AND NOT renewed AND ends_in_range GROUP BY ALL),
            a AS (SELECT grid.w, count(DISTINCT sp.sub) AS c FROM grid JOIN sp ON sp.starts <= grid.t AND grid.t < sp.e
                GROUP BY grid.w)
            SELECT grid.w, coalesce(n.c, 0), coalesce(ch.c, 0), coalesce(a.c, 0)
            FROM grid LEFT JOIN n USING (w) LEFT JOIN ch USING (w) LEFT JOIN a USING (w) ORDER BY grid.w
            """,
        )
    ]
    out["subscriptions.courses"] = [
        [course, int(act), int(new), int(churned), int(c_due), c_renewed / c_due if c_due else None]
        for course, act, new, churned, c_due, c_renewed in _rows(
            con,
            f"""
            WITH firsts AS (
                SELECT sub, arg_min(start_day, starts) AS d, any_value(course) AS course FROM sp GROUP BY sub
            )
            SELECT course,
                (SELECT count(DISTINCT sub) FROM sp s
                    WHERE s.course = c.course AND starts <= {end_ms} AND {end_ms} < e),
                (SELECT count(*) FROM firsts f WHERE f.course = c.course AND d >= {m0}),
                count(*) FILTER (WHERE decided AND NOT renewed AND ends_in_range),
                count(*) FILTER (WHERE decided AND ends_in_range),
                count(*) FILTER (WHERE decided AND ends_in_range AND renewed)
            FROM sp c GROUP BY course ORDER BY course
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
    times, metrics = best_of(lambda: duckdb_metrics(con, plan), repeats)
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
