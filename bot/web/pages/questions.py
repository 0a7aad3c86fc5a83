"""``/questions``: questions and answers in the help channels over the chosen range, with CSV and JSON downloads.

Definitions: docs/metrics.md, "Questions and answers". The figures are read for the page's range (its first Monday
to its as-of day), as the report's ``questions`` section is.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from analytics.formatting import fmt_day, fmt_int, fmt_pct
from analytics.questions import QuestionsSummary
from analytics.render import clean_name
from analytics.render.questions import figure_cells, fmt_minutes, questions_json
from analytics.weeks import week_label, week_start
from bot.core.commands.questions import message_link
from bot.questions import questions_section
from bot.web.pages.common import context, csv_response, dashboard_range, render

LISTED = 50
"""How many helpers and waiting questions the page names."""


async def _summary(request: web.Request, top_n: int = LISTED) -> QuestionsSummary:
    ctx = context(request)
    rng = await dashboard_range(request)
    tz = ctx.settings.community.tz
    return await asyncio.to_thread(
        questions_section,
        ctx.engine,
        ctx.community_id,
        ctx.settings.help,
        timezone=tz,
        first_week=week_start(rng.start),
        as_of=rng.end,
        top_n=top_n,
    )


async def questions_page(request: web.Request) -> web.Response:
    """``/questions``: the range's questions, answer times, help channels, helpers and the longest-waiting questions."""
    ctx = context(request)
    rng = await dashboard_range(request)
    summary = await _summary(request)
    tz = ctx.settings.community.tz
    waiting = []
    for q in summary.waiting:
        url = message_link(ctx.settings, q)
        asked = fmt_day(q.asked_at.astimezone(tz).date())
        waiting.append(
            [
                {"text": asked, "href": url} if url else asked,
                clean_name(q.channel),
                clean_name(q.asker),
                fmt_minutes(q.waiting_hours * 60),
            ]
        )
    total = summary.total
    return render(
        request,
        "questions.html",
        title="Questions",
        questions=fmt_int(total.questions),
        answered_1h=fmt_pct(total.answered_1h),
        answered_24h=fmt_pct(total.answered_24h),
        median=fmt_minutes(total.median_minutes),
        p90=fmt_minutes(total.p90_minutes),
        unanswered=fmt_int(total.unanswered),
        helper_count=fmt_int(summary.helper_count),
        weeks=[[week_label(w.start), *figure_cells(w.figures)] for w in summary.weeks],
        channels=[[clean_name(c.name), *figure_cells(c.figures)] for c in summary.channels],
        helpers=[[clean_name(h.name), fmt_int(h.answers), fmt_minutes(h.median_minutes)] for h in summary.helpers],
        waiting=waiting,
        limit_hours=ctx.settings.help.unanswered_after_hours,
        rng=rng,
        query=rng.query(),
    )


async def questions_csv(request: web.Request) -> web.Response:
    """``/questions.csv``: one row per ISO week of the range with its question figures."""
    summary = await _summary(request)
    rows = [
        [
            week_label(w.start),
            w.start.isoformat(),
            w.figures.questions,
            "" if w.figures.answered_1h is None else round(w.figures.answered_1h, 4),
            "" if w.figures.answered_24h is None else round(w.figures.answered_24h, 4),
            "" if w.figures.median_minutes is None else round(w.figures.median_minutes, 2),
            "" if w.figures.p90_minutes is None else round(w.figures.p90_minutes, 2),
            w.figures.unanswered,
        ]
        for w in summary.weeks
    ]
    header = [
        "week",
        "start",
        "questions",
        "answered_1h",
        "answered_24h",
        "median_minutes_to_answer",
        "p90_minutes_to_answer",
        "unanswered",
    ]
    return csv_response("questions.csv", header, rows)


async def questions_json_page(request: web.Request) -> web.Response:
    """``/questions.json``: the report JSON's ``questions`` section for the range (docs/metrics.md)."""
    summary = await _summary(request)
    body = json.dumps(questions_json(summary), indent=2, sort_keys=True)
    return web.Response(text=body, content_type="application/json", charset="utf-8")
