"""``/surveys`` (NPS with its interval, per course and per month, comments by band, native polls) and its downloads.

Owners only, like every dashboard page: comments are members' own words, shown without names. The figures count
every answer given up to the end of the range's last day (a survey's answers come in over days; a range start
would cut a survey in two).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, time, timedelta

from aiohttp import web

from analytics.formatting import fmt_int, fmt_pct
from analytics.surveys import NpsFigure, SurveyResults, survey_results
from bot.web.pages.common import context, csv_response, dashboard_data, page_values, render
from storage.surveys import survey_frames


async def _results(request: web.Request) -> tuple[SurveyResults, str]:
    data = await dashboard_data(request)
    ctx = context(request)
    tz = ctx.settings.community.tz
    until = datetime.combine(data.range.end + timedelta(days=1), time(0), tzinfo=tz)
    frames = await asyncio.to_thread(survey_frames, ctx.engine, ctx.community_id)
    return survey_results(frames, timezone=ctx.settings.community.timezone, until=until), str(data.range.end)


def _nps(figure: NpsFigure) -> str:
    return "–" if figure.nps is None else f"{figure.nps:+.0f}"


def _interval(figure: NpsFigure) -> str:
    return "–" if figure.low is None or figure.high is None else f"{figure.low:+.0f} to {figure.high:+.0f}"


def _row(name: str, figure: NpsFigure) -> list[str]:
    return [
        name,
        _nps(figure),
        _interval(figure),
        fmt_int(figure.responses),
        f"{fmt_int(figure.promoters)} / {fmt_int(figure.passives)} / {fmt_int(figure.detractors)}",
        fmt_int(figure.asked) if figure.asked else "–",
        fmt_pct(figure.response_rate, 0),
    ]


async def surveys_page(request: web.Request) -> web.Response:
    """``/surveys``: NPS overall, per course and per month, the comments by course and band, the native polls."""
    data = await dashboard_data(request)
    results, _ = await _results(request)
    overall = results.overall
    return render(
        request,
        "surveys.html",
        title="Surveys",
        nps=_nps(overall),
        interval=_interval(overall),
        responses=fmt_int(overall.responses),
        response_rate=fmt_pct(overall.response_rate, 0),
        course_rows=[_row(c.course or "the community", c.figure) for c in results.by_course],
        month_rows=[_row(m.month, m.figure) for m in results.by_month],
        comment_groups=[(g.course or "the community", g.band, g.comments) for g in results.comments],
        poll_rows=[
            [
                p.question,
                "; ".join(f"{o}: {fmt_int(v)}" for o, v in zip(p.options, p.votes, strict=True)),
                fmt_int(sum(p.votes)),
                fmt_pct(p.response_rate, 0),
            ]
            for p in results.polls
        ],
        **page_values(request, data),
    )


async def surveys_csv(request: web.Request) -> web.Response:
    """``/surveys.csv``: NPS per course and per month (one row each, ``scope`` says which)."""
    results, end = await _results(request)
    rows: list[list[object]] = []
    for scope, key, figure in (
        [("overall", "", results.overall)]
        + [("course", c.course or "", c.figure) for c in results.by_course]
        + [("month", m.month, m.figure) for m in results.by_month]
    ):
        rows.append(
            [
                scope,
                key,
                figure.responses,
                figure.promoters,
                figure.passives,
                figure.detractors,
                "" if figure.nps is None else round(figure.nps, 1),
                "" if figure.low is None else round(figure.low, 1),
                "" if figure.high is None else round(figure.high, 1),
                figure.asked,
                "" if figure.response_rate is None else round(figure.response_rate, 4),
            ]
        )
    return csv_response(
        f"surveys-{end}.csv",
        [
            "scope",
            "key",
            "responses",
            "promoters",
            "passives",
            "detractors",
            "nps",
            "nps_low",
            "nps_high",
            "asked",
            "response_rate",
        ],
        rows,
    )


async def surveys_json(request: web.Request) -> web.Response:
    """``/surveys.json``: the report JSON's ``surveys`` section (docs/metrics.md)."""
    results, _ = await _results(request)
    return web.Response(
        text=json.dumps(results.to_json(), indent=2, sort_keys=True, ensure_ascii=False),
        content_type="application/json",
        charset="utf-8",
    )
