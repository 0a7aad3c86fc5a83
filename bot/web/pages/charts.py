"""Plotly figures (plain dicts, drawn by static/charts.js) built from the report's values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from typing import Any

from analytics.results import Cohort, GrowthDay, HourOfWeek, Report

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
Figure = dict[str, Any]


def _layout(title: str, **more: Any) -> dict[str, Any]:
    return {"title": {"text": title}, **more}


def active_members_figure(report: Report, start: date) -> Figure | None:
    """DAU, WAU and MAU per day from ``start`` to the last measured day; None without days."""
    end = report.measured_through
    days = [d for d in report.daily if start <= d.day <= end]
    if not days:
        return None
    x = [d.day.isoformat() for d in days]
    traces = [
        {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": [getattr(d, field) for d in days]}
        for name, field in (("DAU", "dau"), ("WAU", "wau"), ("MAU", "mau"))
    ]
    return {
        "data": traces,
        "layout": _layout("Active members per day", yaxis={"rangemode": "tozero"}, hovermode="x unified"),
    }


def hour_of_week_matrix(cells: Sequence[HourOfWeek]) -> list[list[int]]:
    """Messages per weekday (rows, Monday first) and local hour (columns); empty without cells or messages."""
    z = [[0] * 24 for _ in range(7)]
    for c in cells:
        z[c.weekday][c.hour] += c.messages
    return z if any(any(row) for row in z) else []


def growth_figure(growth: Sequence[GrowthDay]) -> Figure | None:
    """Joins and leaves per day (bars) and members at the end of each day (line)."""
    if not growth:
        return None
    x = [g.day.isoformat() for g in growth]
    left, right, member_ticks = _aligned_ranges(
        [g.joins for g in growth], [g.leaves for g in growth], [g.members for g in growth]
    )
    return {
        "data": [
            {"type": "bar", "name": "Joins", "x": x, "y": [g.joins for g in growth], "marker": {"color": "#2e8b57"}},
            {
                "type": "bar",
                "name": "Leaves",
                "x": x,
                "y": [-g.leaves for g in growth],
                "marker": {"color": "#c0392b"},
                "customdata": [g.leaves for g in growth],
                "hovertemplate": "%{x}: %{customdata} left<extra></extra>",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Members",
                "x": x,
                "y": [g.members for g in growth],
                "yaxis": "y2",
                "line": {"color": "#1f5fbf"},
            },
        ],
        "layout": _layout(
            "Member growth",
            barmode="relative",
            hovermode="x unified",
            yaxis={"title": {"text": "joins / leaves"}, "range": left},
            yaxis2={
                "title": {"text": "members"},
                "overlaying": "y",
                "side": "right",
                "range": right,
                "tickmode": "array",
                "tickvals": member_ticks,
                "tickformat": ",d",
                "showgrid": False,
            },
        ),
    }


def _nice_step(top: float, ticks: int = 4) -> int:
    """A round tick step (1, 2, 5 x 10^k) that splits 0..top into about ``ticks`` parts."""
    raw = max(top / ticks, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def _aligned_ranges(
    joins: Sequence[int], leaves: Sequence[int], members: Sequence[int]
) -> tuple[list[float], list[float], list[int]]:
    """Axis ranges that put both axes' zero on one line (leaves are drawn below it), and the members' ticks."""
    top = max([*joins, 1]) * 1.1
    bottom = -max([*leaves, 0]) * 1.1
    members_top = max([*members, 1]) * 1.1
    step = _nice_step(members_top)
    # The right axis spans the same share below zero as the left one, so its zero sits level with the bars' zero;
    # only non-negative member counts get a tick.
    return [bottom, top], [members_top * bottom / top, members_top], list(range(0, int(members_top) + 1, step))


def retention_matrix(cohorts: Sequence[Cohort], weeks: int) -> tuple[list[list[float | None]], list[str], list[str]]:
    """Retention in percent per cohort (rows, oldest first, labelled with their size) and week k (columns)."""
    z = [
        [round(r * 100, 1) for r in c.retention[:weeks]] + [None] * (weeks - len(c.retention[:weeks])) for c in cohorts
    ]
    y = [f"{c.cohort} (n={c.size})" for c in cohorts]
    x = [f"week {k}" for k in range(weeks)]
    return z, x, y


def retention_curves(cohorts: Sequence[Cohort], weeks: int) -> Figure | None:
    """One line per cohort: the share still active k weeks after joining."""
    shown = [c for c in cohorts if c.size and c.retention]
    if not shown:
        return None
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{c.cohort} (n={c.size})",
                "x": list(range(len(c.retention[:weeks]))),
                "y": [round(r * 100, 1) for r in c.retention[:weeks]],
                "hovertemplate": f"{c.cohort}, week %{{x}}: %{{y}}%<extra></extra>",
            }
            for c in shown
        ],
        "layout": _layout(
            "Retention curves",
            xaxis={"title": {"text": "weeks after joining"}, "dtick": 1},
            yaxis={"title": {"text": "% active"}, "range": [0, 105]},
        ),
    }


def bar_figure(
    title: str, x: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, stacked: bool = True
) -> Figure | None:
    """Bars per ``x`` for each named series; None without ``x``."""
    if not x:
        return None
    return {
        "data": [{"type": "bar", "name": name, "x": list(x), "y": list(values)} for name, values in series],
        "layout": _layout(title, barmode="stack" if stacked else "group"),
    }


def sparkline(values: Sequence[int]) -> str:
    """A trend in block characters: "▁▃█"."""
    if not values:
        return ""
    top = max(values)
    blocks = "▁▂▃▄▅▆▇█"
    return "".join(blocks[0] if top == 0 else blocks[round(v / top * (len(blocks) - 1))] for v in values)
