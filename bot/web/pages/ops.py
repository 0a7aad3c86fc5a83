"""``/nudges`` (the nudge experiment per run) and ``/health`` (jobs, writer, last events, problems)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from aiohttp import web

from analytics.experiments import rate_difference
from analytics.formatting import fmt_int, fmt_pct
from bot.scheduler import job_names
from bot.web.pages.common import context, dashboard_data, page_values, render
from storage.job_runs import last_job_runs
from storage.member_profile import NudgeRun, last_event_per_platform, nudge_runs, recent_problems

OUTCOME_DAYS = 7  # a nudged member "came back" when active within 7 days of the decision


def _pct_interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "–"
    return f"{low * 100:+.1f} to {high * 100:+.1f} points"


def run_row(run: NudgeRun, now: datetime) -> list[str]:
    """One run: its groups, their comeback rates and the difference with its 95% interval."""
    diff = rate_difference(run.nudged_came_back, run.nudged, run.holdout_came_back, run.holdout)
    open_window = run.first_decided_at + timedelta(days=OUTCOME_DAYS) > now
    return [
        run.day.isoformat(),
        f"{fmt_int(run.nudged_came_back)} / {fmt_int(run.nudged)} ({fmt_pct(diff.a_rate, 0)})",
        f"{fmt_int(run.holdout_came_back)} / {fmt_int(run.holdout)} ({fmt_pct(diff.b_rate, 0)})",
        "–" if diff.difference is None else f"{diff.difference * 100:+.1f} points",
        _pct_interval(diff.low, diff.high),
        fmt_int(run.errors),
        "window still open"
        if open_window
        else (
            "comes back more"
            if diff.conclusive and (diff.low or 0) > 0
            else "no clear effect"
            if not diff.conclusive
            else "comes back less"
        ),
    ]


async def nudges_page(request: web.Request) -> web.Response:
    """``/nudges``: nudged vs holdout comeback per run, and over every closed run of the range."""
    data = await dashboard_data(request)
    ctx = context(request)
    tz = ctx.settings.community.tz
    since = datetime.combine(data.range.start, datetime.min.time(), tzinfo=tz)
    until = datetime.combine(data.range.end + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    runs = await asyncio.to_thread(nudge_runs, ctx.engine, ctx.community_id, timezone=tz, since=since, until=until)
    now = ctx.clock.now()
    closed = [r for r in runs if r.first_decided_at + timedelta(days=OUTCOME_DAYS) <= now]
    totals = [
        sum(getattr(r, f) for r in closed) for f in ("nudged_came_back", "nudged", "holdout_came_back", "holdout")
    ]
    overall = rate_difference(*totals)
    return render(
        request,
        "nudges.html",
        title="Nudges",
        runs=[run_row(r, now) for r in runs],
        closed=len(closed),
        nudged=f"{fmt_int(totals[0])} / {fmt_int(totals[1])}",
        holdout=f"{fmt_int(totals[2])} / {fmt_int(totals[3])}",
        nudged_rate=fmt_pct(overall.a_rate, 1),
        holdout_rate=fmt_pct(overall.b_rate, 1),
        difference="–" if overall.difference is None else f"{overall.difference * 100:+.1f} points",
        interval=_pct_interval(overall.low, overall.high),
        conclusive=overall.conclusive,
        settings=ctx.settings.nudges,
        **page_values(request, data),
    )


def _when(value: datetime | None, request: web.Request) -> str:
    if value is None:
        return "–"
    return value.astimezone(context(request).settings.community.tz).strftime("%Y-%m-%d %H:%M")


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "never"
    s = max(0, int((now - value).total_seconds()))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


async def health_page(request: web.Request) -> web.Response:
    """``/health``: the scheduler's last run of each job, the writer's queue, last event per platform, problems."""
    data = await dashboard_data(request)
    ctx = context(request)
    now = ctx.clock.now()
    runs, platforms, problems = await asyncio.gather(
        asyncio.to_thread(last_job_runs, ctx.engine, ctx.community_id),
        asyncio.to_thread(last_event_per_platform, ctx.engine, ctx.community_id),
        asyncio.to_thread(recent_problems, ctx.engine, ctx.community_id),
    )
    names = dict(job_names())
    job_rows = []
    for job in sorted(set(names) | set(runs)):
        run = runs.get(job)
        job_rows.append(
            [
                job,
                names.get(job, ""),
                "never run" if run is None else run.outcome,
                "–" if run is None else _when(run.started_at, request),
                "–" if run is None or run.finished_at is None else _when(run.finished_at, request),
                "" if run is None or run.detail is None else run.detail[:200],
            ]
        )
    return render(
        request,
        "health.html",
        title="Health",
        job_rows=job_rows,
        in_process=ctx.writer is not None,
        queue_depth=None if ctx.writer is None else ctx.writer.pending,
        platform_rows=[[p, _when(at, request), _ago(at, now)] for p, at in platforms.items()],
        problem_rows=[[_when(p.at, request), p.what, p.detail[:300]] for p in problems],
        **page_values(request, data),
    )
