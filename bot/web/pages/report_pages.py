"""The pages built from the cached community report: Overview, Activity, Retention, the report JSON and CSVs."""

from __future__ import annotations

import asyncio
import importlib
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiohttp import web

from analytics.channels import channel_rows
from analytics.commerce import revenue_by_course, totals_by_currency
from analytics.formatting import DASH, fmt_change, fmt_int, fmt_money, fmt_pct
from analytics.render.json import render_json
from analytics.render.shared import data_notices, key_figures, week_over_week
from analytics.results import ChannelActivity, Report
from analytics.weeks import week_start
from bot.reporting import with_surveys
from bot.web.data import DashboardData
from bot.web.pages import charts
from bot.web.pages.common import context, csv_response, dashboard_data, page_values, render
from storage.member_profile import day_totals

RETENTION_WEEKS = 12


def _midnight(day: date, data: DashboardData, request: web.Request) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=context(request).settings.community.tz)


def revenue_between(data: DashboardData, request: web.Request, first: date, last: date) -> dict[str, Decimal]:
    """Net revenue per currency of the local days ``first`` .. ``last`` (refunds counted when they happened)."""
    lines = revenue_by_course(
        data.ledger, start=_midnight(first, data, request), end=_midnight(last + timedelta(days=1), data, request)
    )
    return totals_by_currency(lines)


def _ago(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s} s ago"
    if s < 7200:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s // 3600} h ago"
    return f"{s // 86400} days ago"


async def _today(request: web.Request, data: DashboardData) -> dict[str, Any]:
    """Today's figures: w1's live figures when that module is there, else the rollups' day totals."""
    ctx = context(request)
    try:
        live: Any = importlib.import_module("bot.web.live")  # the live feed's figures; absent in a build without it
    except ImportError:
        live = None
    if live is not None and hasattr(live, "today_figures"):
        figures = await asyncio.to_thread(live.today_figures, ctx)
        values: dict[str, Any] = dict(figures.as_json())
        last = figures.last_event_at
        values["day"] = figures.day
    else:
        day = ctx.clock.now().astimezone(ctx.settings.community.tz).date()
        totals = await asyncio.to_thread(day_totals, ctx.engine, ctx.community_id, day)
        values = {
            "day": totals.day,
            "messages": totals.messages,
            "reactions": totals.reactions,
            "active_members": totals.active_members,
            "joins": totals.joins,
            "leaves": totals.leaves,
            "purchases": sum(
                1 for row in data.ledger if row.purchased_at.astimezone(ctx.settings.community.tz).date() == day
            ),
        }
        last = totals.last_event_at
    if "revenue" not in values:
        values["revenue"] = {
            cur: fmt_money(amount, cur)
            for cur, amount in revenue_between(data, request, values["day"], values["day"]).items()
        }
    revenue: dict[str, str] = values["revenue"]
    values["revenue_text"] = ", ".join(revenue[cur] for cur in sorted(revenue)) or "nothing"
    values["last_event_at"] = last
    values["last_event_ago"] = None if last is None else _ago((ctx.clock.now() - last).total_seconds())
    return values


async def overview(request: web.Request) -> web.Response:
    """``/``: key figures with their change, revenue this week, freshness, what changed, today so far."""
    data = await dashboard_data(request)
    report = data.report
    end = data.range.end
    this_week = revenue_between(data, request, week_start(end), end)
    last_week = revenue_between(data, request, week_start(end) - timedelta(days=7), week_start(end) - timedelta(days=1))
    revenue = [
        (cur, fmt_money(this_week.get(cur, Decimal(0)), cur), fmt_money(last_week.get(cur, Decimal(0)), cur))
        for cur in sorted(set(this_week) | set(last_week))
    ]
    wow = week_over_week(report)
    today = await _today(request, data)
    return render(
        request,
        "overview.html",
        title="Overview",
        figures=key_figures(report),
        revenue=revenue,
        wow=wow,
        today=today,
        hint=data.hint,
        changes=_changes(report, data),
        notices=data_notices(report),
        **page_values(request, data),
    )


def _changes(report: Report, data: DashboardData) -> list[str]:
    """Plain sentences on what moved this week: the biggest figures, busiest channels, growth."""
    out: list[str] = []
    wow = week_over_week(report)
    if wow is not None:
        for label, before, after, change in wow.rows:
            if change not in (DASH, "no change") and label in ("Active members", "Messages", "New members", "Left"):
                out.append(f"{label}: {before} → {after} ({change})")
    rising = sorted(
        (c for c in report.channels if c.weekly_messages and len(c.weekly_messages) >= 2),
        key=lambda c: c.weekly_messages[-1] - c.weekly_messages[-2],
        reverse=True,
    )
    if rising and rising[0].weekly_messages[-1] > rising[0].weekly_messages[-2]:
        c = rising[0]
        out.append(
            f"Busiest rise: {_channel_name(c)} with {fmt_int(c.weekly_messages[-1])} messages this week "
            f"({fmt_change(c.weekly_messages[-2], c.weekly_messages[-1])})"
        )
    at_risk = len(report.at_risk)
    if at_risk:
        out.append(f"{fmt_int(at_risk)} members are at risk (active before, quiet for the last 14 days)")
    return out


def _channel_name(c: ChannelActivity) -> str:
    return c.name if c.parent is None else f"{c.parent} › {c.name}"


async def activity(request: web.Request) -> web.Response:
    """``/activity``: DAU/WAU/MAU over the range, activity by hour of week, channels, member growth."""
    data = await dashboard_data(request)
    report = data.report
    q = data.range.query()
    table = []
    for c, is_thread in channel_rows(report.channels):
        name = {
            "text": c.name,
            "cls": "child" if is_thread else "",
        }
        table.append(
            [
                name,
                fmt_int(c.messages),
                fmt_int(c.active_members),
                fmt_change(c.previous_messages, c.messages),
                charts.sparkline(c.weekly_messages),
            ]
        )
    return render(
        request,
        "activity.html",
        title="Activity",
        active_figure=charts.active_members_figure(report, data.range.start),
        hours=charts.hour_of_week_matrix(report.hour_of_week),
        weekdays=list(charts.WEEKDAYS),
        hour_labels=[f"{h:02d}" for h in range(24)],  # two digits: no sideways labels at desktop width
        channel_table=table,
        growth_figure=charts.growth_figure([g for g in report.growth if g.day >= data.range.start]),
        csv_query=q,
        notices=data_notices(report),
        **page_values(request, data),
    )


async def retention(request: web.Request) -> web.Response:
    """``/retention``: cohort heatmap, curves, activation, with each cohort's size."""
    data = await dashboard_data(request)
    report = data.report
    cohorts = [c for c in sorted(report.cohorts, key=lambda c: c.start) if c.start >= week_start(data.range.start)]
    z, x, y = charts.retention_matrix(cohorts, RETENTION_WEEKS)
    rows = [
        [
            c.cohort,
            fmt_int(c.size),
            fmt_pct(c.activation_rate, 1),
            fmt_int(c.activation_eligible),
            fmt_pct(c.second_week_retention, 1),
            *(fmt_pct(r, 0) for r in c.retention[:RETENTION_WEEKS]),
            *([""] * (RETENTION_WEEKS - len(c.retention[:RETENTION_WEEKS]))),
        ]
        for c in cohorts
    ]
    headers = ["Cohort", "Size", "Activation", "Eligible", "Week 1", *(f"k={k}" for k in range(RETENTION_WEEKS))]
    return render(
        request,
        "retention.html",
        title="Retention",
        heat_z=z,
        heat_x=x,
        heat_y=y,
        curves=charts.retention_curves(cohorts[-8:], RETENTION_WEEKS),
        headers=headers,
        rows=rows,
        activation=fmt_pct(report.activation_rate, 1),
        activation_eligible=fmt_int(report.activation_eligible),
        notices=data_notices(report),
        **page_values(request, data),
    )


async def report_json(request: web.Request) -> web.Response:
    """``/report.json``: the report JSON (docs/metrics.md) of the chosen range."""
    data = await dashboard_data(request)
    ctx = context(request)
    # The cached report is built from frames alone; its surveys section is read fresh (a small table).
    report = await asyncio.to_thread(with_surveys, ctx.engine, data.report, ctx.community_id)
    return web.Response(text=render_json(report), content_type="application/json", charset="utf-8")


async def activity_csv(request: web.Request) -> web.Response:
    """``/activity.csv``: one row per day of the range: DAU, WAU, MAU, joins, leaves, members."""
    data = await dashboard_data(request)
    report = data.report
    growth = {g.day: g for g in report.growth}
    rows = []
    for d in report.daily:
        if not data.range.start <= d.day <= report.measured_through:
            continue
        g = growth.get(d.day)
        rows.append([d.day.isoformat(), d.dau, d.wau, d.mau, *((g.joins, g.leaves, g.members) if g else ("", "", ""))])
    return csv_response(
        f"activity-{data.range.start}-{data.range.end}.csv",
        ["day", "dau", "wau", "mau", "joins", "leaves", "members"],
        rows,
    )


async def channels_csv(request: web.Request) -> web.Response:
    """``/channels.csv``: one row per channel, threads after their parent, with the weekly trend."""
    data = await dashboard_data(request)
    rows = [
        [
            c.name,
            c.parent or "",
            c.messages,
            c.active_members,
            c.previous_messages,
            " ".join(str(n) for n in c.weekly_messages),
        ]
        for c, _ in channel_rows(data.report.channels)
    ]
    return csv_response(
        f"channels-{data.range.start}-{data.range.end}.csv",
        ["channel", "parent", "messages", "active_members", "previous_messages", "weekly_messages"],
        rows,
    )


async def retention_csv(request: web.Request) -> web.Response:
    """``/retention.csv``: one row per cohort: size, activation, retention per week k (shares, 0..1)."""
    data = await dashboard_data(request)
    cohorts = sorted(data.report.cohorts, key=lambda c: c.start)
    width = max((len(c.retention) for c in cohorts), default=0)
    rows = [
        [
            c.cohort,
            c.start.isoformat(),
            c.size,
            "" if c.activation_rate is None else round(c.activation_rate, 4),
            c.activation_eligible,
            *(round(r, 4) for r in c.retention),
            *([""] * (width - len(c.retention))),
        ]
        for c in cohorts
    ]
    return csv_response(
        f"retention-{data.range.start}-{data.range.end}.csv",
        ["cohort", "start", "size", "activation_rate", "activation_eligible", *(f"week_{k}" for k in range(width))],
        rows,
    )
