"""The DuckDB reference for the questions section: the definitions of docs/metrics.md in SQL over the raw tables.

cohortbot finds help channels in ``storage.questions`` and questions and answers in ``analytics.questions`` (pandas);
here the same definitions are written once more as DuckDB SQL over the stored ``channels``, ``messages`` and
``members`` rows, read as they are. ``tests/test_bench_analytics.py`` runs both on the Komodo slice and compares
every figure (:func:`ours` and :func:`reference` return the same shape).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, select

from analytics.questions import QuestionFigures, QuestionsSummary
from storage.models import Channel, Member, Message


def _figures(f: QuestionFigures) -> list[Any]:
    return [f.questions, f.answered_1h, f.answered_24h, f.median_minutes, f.p90_minutes, f.unanswered]


def ours(summary: QuestionsSummary) -> dict[str, Any]:
    """cohortbot's section in the comparison's shape (every helper, not only the report's top)."""
    return {
        "questions.total": _figures(summary.total),
        "questions.weekly": [[w.start.isoformat(), *_figures(w.figures)] for w in summary.weeks],
        "questions.channels": sorted([[c.channel_id, *_figures(c.figures)] for c in summary.channels]),
        "questions.helpers": sorted([[h.member_id, h.answers, h.median_minutes] for h in summary.helpers]),
        "questions.helper_count": summary.helper_count,
    }


def _tables(engine: Engine, community_id: int) -> dict[str, pd.DataFrame]:
    """The raw rows, instants as epoch milliseconds (UTC)."""
    with engine.connect() as conn:
        channels = pd.DataFrame(
            conn.execute(
                select(
                    Channel.id, Channel.platform, Channel.platform_channel_id, Channel.name, Channel.parent_id
                ).where(Channel.community_id == community_id)
            ).all(),
            columns=["id", "platform", "platform_channel_id", "name", "parent_id"],
        )
        messages = pd.DataFrame(
            conn.execute(
                select(
                    Message.id,
                    Message.platform_message_id,
                    Message.channel_id,
                    Message.thread_id,
                    Message.member_id,
                    Message.created_at,
                    Message.reply_to_member_id,
                )
                .join(Channel, Channel.id == Message.channel_id)
                .where(Channel.community_id == community_id)
            ).all(),
            columns=[
                "id",
                "platform_message_id",
                "channel_id",
                "thread_id",
                "member_id",
                "created_at",
                "reply_to_member_id",
            ],
        )
        members = pd.DataFrame(
            conn.execute(select(Member.id, Member.is_bot).where(Member.community_id == community_id)).all(),
            columns=["id", "is_bot"],
        )
    messages["ms"] = [int(t.timestamp() * 1000) for t in messages["created_at"]]
    messages = messages.drop(columns="created_at")
    for frame, columns in ((channels, ["parent_id"]), (messages, ["thread_id", "reply_to_member_id"])):
        for column in columns:
            frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    members["is_bot"] = members["is_bot"].astype(bool)
    return {"channels": channels, "messages": messages, "members": members}


_QUESTIONS_SQL = """
WITH forums AS (
    SELECT c.id FROM channels c
    WHERE c.platform = 'discord' AND c.parent_id IS NULL
      AND EXISTS (SELECT 1 FROM channels k WHERE k.parent_id = c.id)
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.channel_id = c.id)
),
roots AS (
    SELECT c.id, (c.platform = 'telegram' AND c.parent_id IS NOT NULL) AS topic FROM channels c
    WHERE (c.platform_channel_id IN (SELECT id FROM listed) OR c.id IN (SELECT id FROM forums))
      AND c.platform_channel_id NOT IN (SELECT id FROM excluded)
),
threads AS (
    SELECT k.id, k.parent_id AS root FROM channels k JOIN roots r ON k.parent_id = r.id
    WHERE k.platform = 'discord' AND k.platform_channel_id NOT IN (SELECT id FROM excluded)
),
human AS (
    SELECT m.* FROM messages m JOIN members p ON p.id = m.member_id WHERE NOT p.is_bot AND m.ms < $end_ms
),
starters AS (  -- a message a thread of its (non-topic) help channel was started from, by Discord's shared id
    SELECT m.id, th.id AS thread FROM messages m
    JOIN roots r ON NOT r.topic AND m.channel_id = r.id
    JOIN threads th ON th.root = r.id
    JOIN channels k ON k.id = th.id AND k.platform_channel_id = m.platform_message_id
    WHERE m.ms < $end_ms
),
flat AS (
    SELECT m.*, r.id AS root, coalesce(m.thread_id, m.channel_id) AS place FROM human m
    JOIN roots r ON NOT r.topic AND m.channel_id = r.id
    LEFT JOIN channels t ON t.id = m.thread_id
    WHERE m.ms >= $lower_ms AND (t.id IS NULL OR t.platform_channel_id NOT IN (SELECT id FROM excluded))
      AND m.id NOT IN (SELECT id FROM starters)
    UNION ALL
    SELECT m.*, r.id AS root, m.thread_id AS place FROM human m
    JOIN roots r ON r.topic AND m.thread_id = r.id
    WHERE m.ms >= $lower_ms AND m.channel_id NOT IN (SELECT id FROM roots WHERE NOT topic)
),
gaps AS (
    SELECT *, lag(ms) OVER (PARTITION BY place ORDER BY ms, id) AS prev,
           (reply_to_member_id IS NOT NULL AND reply_to_member_id <> member_id) AS replies_other
    FROM flat
),
convs AS (
    SELECT *, (prev IS NULL OR ms - prev >= $quiet_ms) AS opens,
           sum(CASE WHEN prev IS NULL OR ms - prev >= $quiet_ms THEN 1 ELSE 0 END)
               OVER (PARTITION BY place ORDER BY ms, id ROWS UNBOUNDED PRECEDING) AS conv
    FROM gaps
),
flat_q AS (SELECT * FROM convs WHERE opens AND NOT replies_other),
heuristic AS (
    SELECT q.id AS qid, a.id, a.ms, a.member_id FROM flat_q q
    JOIN convs a ON a.place = q.place AND a.conv = q.conv
    WHERE a.member_id <> q.member_id AND a.ms - q.ms <= $window_ms
      AND NOT (a.replies_other AND a.reply_to_member_id <> q.member_id)
),
structural AS (
    SELECT qid, id, ms, member_id FROM (
        SELECT q.id AS qid, r.id, r.ms, r.member_id,
               row_number() OVER (PARTITION BY r.id ORDER BY q.ms DESC, q.id DESC) AS n
        FROM convs r JOIN flat_q q
          ON r.replies_other AND q.place = r.place AND q.member_id = r.reply_to_member_id AND q.ms <= r.ms
    ) WHERE n = 1
),
thread_all AS (
    SELECT m.*, th.root, th.id AS thread FROM human m JOIN threads th ON th.id = m.channel_id
    UNION ALL
    SELECT m.*, th.root, th.id AS thread FROM human m JOIN starters s ON s.id = m.id JOIN threads th ON th.id = s.thread
),
thread_msgs AS (
    SELECT *, row_number() OVER (PARTITION BY thread ORDER BY ms, id) AS n FROM thread_all
),
thread_q AS (SELECT * FROM thread_msgs WHERE n = 1),
thread_answers AS (
    SELECT q.id AS qid, a.id, a.ms, a.member_id FROM thread_q q
    JOIN thread_msgs a ON a.thread = q.thread AND a.member_id <> q.member_id
),
questions AS (
    SELECT id, root, member_id, ms FROM flat_q UNION ALL SELECT id, root, member_id, ms FROM thread_q
),
candidates AS (
    SELECT * FROM heuristic UNION ALL SELECT * FROM structural UNION ALL SELECT * FROM thread_answers
),
first_answer AS (
    SELECT qid, ms, member_id FROM (
        SELECT *, row_number() OVER (PARTITION BY qid ORDER BY ms, id) AS n FROM candidates
    ) WHERE n = 1
)
SELECT q.id, q.root, q.member_id AS asker, q.ms AS asked_ms, a.ms AS answered_ms, a.member_id AS answerer,
       CAST(date_trunc('week', timezone($tz, to_timestamp(q.ms / 1000.0))) AS DATE) AS week
FROM questions q LEFT JOIN first_answer a ON a.qid = q.id
WHERE q.ms >= $start_ms AND q.ms < $end_ms
"""

_FIGURES_SQL = """
SELECT count(*) AS questions,
       avg(CASE WHEN answered_ms IS NOT NULL AND answered_ms - asked_ms <= 3600000 THEN 1.0 ELSE 0.0 END)
           FILTER (WHERE $end_ms - asked_ms >= 3600000) AS answered_1h,
       avg(CASE WHEN answered_ms IS NOT NULL AND answered_ms - asked_ms <= 86400000 THEN 1.0 ELSE 0.0 END)
           FILTER (WHERE $end_ms - asked_ms >= 86400000) AS answered_24h,
       quantile_cont((answered_ms - asked_ms) / 60000.0, 0.5) AS median_minutes,
       quantile_cont((answered_ms - asked_ms) / 60000.0, 0.9) AS p90_minutes,
       count(*) FILTER (WHERE answered_ms IS NULL AND $end_ms - asked_ms > $limit_ms) AS unanswered
FROM found
"""


def reference(
    engine: Engine,
    community_id: int,
    *,
    channels: tuple[str, ...],
    exclude: tuple[str, ...],
    quiet_minutes: int,
    answer_window_hours: int,
    unanswered_after_hours: int,
    timezone: ZoneInfo,
    first_week: date,
    as_of: date,
) -> dict[str, Any]:
    """The questions section computed by DuckDB from the raw tables, in :func:`ours`' shape.

    Args:
        engine: The database cohortbot stored the community in.
        community_id: The community.
        channels: ``[help] channels``.
        exclude: ``[help] exclude``.
        quiet_minutes: ``[help] quiet_minutes``.
        answer_window_hours: ``[help] answer_window_hours``.
        unanswered_after_hours: ``[help] unanswered_after_hours``.
        timezone: The community's time zone.
        first_week: The range's first Monday.
        as_of: The range's last local day.

    Returns:
        Metric name → value.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    for name, frame in _tables(engine, community_id).items():
        con.register(name, frame)
    con.register("listed", pd.DataFrame({"id": pd.Series(list(channels), dtype="object")}))
    con.register("excluded", pd.DataFrame({"id": pd.Series(list(exclude), dtype="object")}))
    start = datetime.combine(first_week, datetime.min.time(), tzinfo=timezone)
    end = datetime.combine(as_of + timedelta(days=1), datetime.min.time(), tzinfo=timezone)
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    params = {
        "start_ms": start_ms,
        "end_ms": end_ms,
        "lower_ms": start_ms - quiet_minutes * 60_000,
        "quiet_ms": quiet_minutes * 60_000,
        "window_ms": answer_window_hours * 3_600_000,
        "tz": timezone.key,
    }
    found = con.execute(_QUESTIONS_SQL, params).df()
    con.register("all_found", found)
    figure_params = {"end_ms": end_ms, "limit_ms": unanswered_after_hours * 3_600_000}

    def figures(where: str) -> list[Any]:
        con.execute(f"CREATE OR REPLACE VIEW found AS SELECT * FROM all_found WHERE {where}")
        row = con.execute(_FIGURES_SQL, figure_params).fetchone()
        assert row is not None
        return [int(row[0]), *(None if v is None else float(v) for v in row[1:5]), int(row[5])]

    weeks = []
    monday = first_week
    while monday <= as_of:
        weeks.append([monday.isoformat(), *figures(f"week = DATE '{monday.isoformat()}'")])
        monday += timedelta(weeks=1)
    roots = sorted(int(r) for r in found["root"].unique())
    helpers = con.execute(
        "SELECT answerer, count(*), median((answered_ms - asked_ms) / 60000.0) FROM all_found "
        "WHERE answerer IS NOT NULL GROUP BY answerer ORDER BY answerer"
    ).fetchall()
    result = {
        "questions.total": figures("TRUE"),
        "questions.weekly": weeks,
        "questions.channels": [[root, *figures(f"root = {root}")] for root in roots],
        "questions.helpers": [[int(a), int(n), float(m)] for a, n, m in helpers],
        "questions.helper_count": len(helpers),
    }
    con.close()
    return result
