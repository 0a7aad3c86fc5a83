"""The report as one self-contained HTML page, built from the dashboard's Jinja components.

The page is ``templates/report.html``; it imports ``templates/components.html``, the macros the dashboard pages
use too. Autoescaping is on and names are cleaned with :func:`~analytics.safe_text.clean_name`, so a hostile name
is shown as text. The page has no script and fetches nothing: its CSS is inline and its charts are ``data:`` PNGs.

Long member lists are capped at :data:`LIST_CAP` rows; :mod:`.files` writes the full lists as CSV files beside the
page (:data:`LIST_FILES`), and the page links them.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from analytics.channels import channel_rows
from analytics.formatting import DASH, fmt_ago, fmt_change, fmt_int, fmt_totals, fmt_weekday_iso, plural
from analytics.render.shared import (
    CONVERSION_HEADERS,
    COURSE_HEADERS,
    LTV_HEADERS,
    SCHEMA_VERSION,
    SUBSCRIPTION_COURSE_HEADERS,
    SUBSCRIPTION_WEEK_HEADERS,
    TEXT_WEEKS,
    TOP_HEADERS,
    WEEK_HEADERS,
    cohort_rows,
    commerce_line,
    conversion_rows,
    course_row,
    data_notices,
    key_figures,
    ltv_rows,
    net_by_currency,
    price_points_text,
    revenue_rows,
    segment_name,
    subscription_course_rows,
    subscription_line,
    subscription_week_rows,
    top_row,
    week_over_week,
    week_row,
    weeks_in_range,
)
from analytics.results import GrowthDay, HourOfWeek, MemberStatus, Report
from analytics.safe_text import clean_name
from analytics.weeks import week_label

TEMPLATES = Path(__file__).resolve().parent / "templates"

LIST_CAP = 50
"""Rows shown in each member list and the channel table; the CSV files beside the page hold them all."""

LIST_FILES: dict[str, str] = {"inactive": "inactive.csv", "at_risk": "at_risk.csv", "channels": "channels.csv"}
"""The CSV file of each capped list, written beside ``report.html``."""

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_SECTION_CHARTS = {
    "activity": ("activity.png",),
    "cohorts": ("cohort_heatmap.png", "retention_curves.png"),
    "revenue": ("revenue.png",),
    "subscriptions": ("subscriptions.png",),
}

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such cells get a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SPARK = "▁▂▃▄▅▆▇█"

MEMBER_CSV_HEADERS = ["member_id", "name", "platform", "days_since_active", "segment", "score", "messages_28d"]
CHANNEL_CSV_HEADERS = ["channel", "parent", "messages", "active_members", "previous_messages", "weekly_messages"]


def build_environment(page_dirs: Sequence[Path] = ()) -> jinja2.Environment:
    """The one way cohortbot builds a Jinja environment: the static report's and the dashboard's.

    Args:
        page_dirs: Template folders searched before the shared components and the report's template (the
            dashboard passes its pages).

    Returns:
        An environment with autoescaping on for every template, undefined values raising errors, and the
        ``plural`` filter (``{{ n | plural("week") }}`` reads "1 week", "2 weeks").
    """
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [*(jinja2.FileSystemLoader(d) for d in page_dirs), jinja2.FileSystemLoader(TEMPLATES)]
        ),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["plural"] = plural
    return environment


@dataclass(frozen=True)
class _Chart:
    src: str
    caption: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class _MemberList:
    key: str
    title: str
    total: int
    rows: list[list[Any]]
    csv: str | None


def _chart(name: str, png: bytes) -> _Chart:
    from analytics.charts import CHART_TITLES

    width = height = None
    if png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR":  # width and height from the PNG header
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return _Chart(src, CHART_TITLES.get(name, name), width, height)


def _charts(charts: Mapping[str, bytes], names: Sequence[str]) -> list[_Chart]:
    return [_chart(name, charts[name]) for name in names if name in charts]


def _spreadsheet_safe(value: object) -> str:
    text = clean_name(str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([_spreadsheet_safe("" if cell is None else cell) for cell in row] for row in rows)
    return buffer.getvalue()


def members_csv(members: Sequence[MemberStatus]) -> str:
    """A member list (inactive, at risk) as CSV, every member, one row each; names cleaned and spreadsheet-safe.

    Args:
        members: The members, in the report's order.

    Returns:
        The CSV text with a header row (:data:`MEMBER_CSV_HEADERS`); an empty ``days_since_active`` means never.
    """
    return _csv(
        MEMBER_CSV_HEADERS,
        [
            [
                m.member_id,
                m.name,
                m.platform,
                m.days_since_active,
                m.segment,
                None if m.score is None else round(m.score, 2),
                m.messages_28d,
            ]
            for m in members
        ],
    )


def channels_csv(report: Report) -> str:
    """Every channel of the report as CSV, threads after their parent, with the weekly trend.

    Args:
        report: The report.

    Returns:
        The CSV text with a header row (:data:`CHANNEL_CSV_HEADERS`); the trend is messages per week, oldest first.
    """
    return _csv(
        CHANNEL_CSV_HEADERS,
        [
            [
                c.name,
                c.parent or "",
                c.messages,
                c.active_members,
                c.previous_messages,
                " ".join(str(n) for n in c.weekly_messages),
            ]
            for c, _ in channel_rows(report.channels)
        ],
    )


def _sparkline(values: Sequence[int]) -> str:
    top = max(values, default=0)
    return "".join(_SPARK[0] if top == 0 else _SPARK[round(v / top * (len(_SPARK) - 1))] for v in values)


def _member_list(key: str, title: str, members: Sequence[MemberStatus], csv_links: bool) -> _MemberList:
    rows: list[list[Any]] = [
        [{"text": clean_name(m.name), "cls": "name"}, m.platform, fmt_ago(m.days_since_active), segment_name(m.segment)]
        for m in members[:LIST_CAP]
    ]
    return _MemberList(key, title, len(members), rows, LIST_FILES[key] if csv_links else None)


def _hour_rows(cells: Sequence[HourOfWeek]) -> list[tuple[str, list[dict[str, Any]]]]:
    if not cells:
        return []
    grid = {(c.weekday, c.hour): c for c in cells}
    top = max((c.messages for c in cells), default=0)
    rows = []
    for day, label in enumerate(WEEKDAYS):
        row = []
        for hour in range(24):
            c = grid.get((day, hour))
            messages, reactions = (c.messages, c.reactions) if c else (0, 0)
            row.append(
                {
                    "text": fmt_int(messages) if messages else "",
                    "shade": messages / top if top else 0.0,
                    "title": f"{label} {hour:02d}:00: {fmt_int(messages)} messages, {fmt_int(reactions)} reactions",
                }
            )
        rows.append((label, row))
    return rows


def _busiest_hour(cells: Sequence[HourOfWeek]) -> str:
    busiest = max(cells, key=lambda c: c.messages, default=None)
    if busiest is None or busiest.messages == 0:
        return ""
    total = sum(c.messages for c in cells)
    return (
        f"Busiest hour: {WEEKDAYS[busiest.weekday]} {busiest.hour:02d}:00, {fmt_int(busiest.messages)} of "
        f"{fmt_int(total)} messages"
    )


def _growth_rows(days: Sequence[GrowthDay]) -> list[list[str]]:
    weeks: dict[str, list[GrowthDay]] = {}
    for d in sorted(days, key=lambda d: d.day):
        weeks.setdefault(week_label(d.day), []).append(d)
    rows = [
        [
            week,
            fmt_int(sum(d.joins for d in ds)),
            fmt_int(sum(d.leaves for d in ds)),
            fmt_int(sum(d.joins for d in ds) - sum(d.leaves for d in ds)),
            fmt_int(ds[-1].members),
        ]
        for week, ds in weeks.items()
    ]
    return rows[-TEXT_WEEKS:]


def _revenue(report: Report, charts: Mapping[str, bytes]) -> dict[str, Any] | None:
    commerce = report.commerce
    if commerce is None:
        return None
    courses = []
    for c in commerce.courses:
        row: list[Any] = course_row(c)
        row[0] = {"text": clean_name(row[0]), "cls": "name"}
        row.append(price_points_text(c) if len(c.price_points) > 1 else DASH)
        courses.append(row)
    revenue_headers, revenue_table = revenue_rows(report, commerce, TEXT_WEEKS) if commerce.revenue_weeks else ([], [])
    return {
        "line": " · ".join(commerce_line(commerce)),
        "totals": fmt_totals(net_by_currency(commerce), " · ") if commerce.courses else "",
        "courses": courses,
        "course_headers": [*COURSE_HEADERS, "Price points"],
        "weekly_headers": revenue_headers,
        "weekly": revenue_table,
        "conversion": conversion_rows(commerce) if commerce.cohort_conversion else [],
        "conversion_headers": CONVERSION_HEADERS,
        "ltv": ltv_rows(commerce),
        "ltv_headers": LTV_HEADERS,
        "charts": _charts(charts, _SECTION_CHARTS["revenue"]),
    }


def _subscriptions(report: Report, charts: Mapping[str, bytes]) -> dict[str, Any] | None:
    s = report.subscriptions
    if s is None:
        return None
    courses: list[list[Any]] = []
    for row in subscription_course_rows(s):
        cells: list[Any] = list(row)
        cells[0] = {"text": clean_name(row[0]), "cls": "name"}
        courses.append(cells)
    return {
        "line": " · ".join(subscription_line(s)),
        "week_headers": SUBSCRIPTION_WEEK_HEADERS,
        "weeks": subscription_week_rows(s, TEXT_WEEKS),
        "course_headers": SUBSCRIPTION_COURSE_HEADERS,
        "courses": courses,
        "charts": _charts(charts, _SECTION_CHARTS["subscriptions"]),
    }


def render_html(report: Report, charts: Mapping[str, bytes], *, csv_links: bool = False) -> str:
    """One self-contained HTML page: inline CSS, charts as ``data:`` PNG images, no script, no external resource.

    A Content-Security-Policy forbids scripts and any network fetch, as a second line of defence behind escaping.
    Order: key figures, revenue, activity (weekly, by hour of week, channels, member growth), cohorts, members.
    The inactive and at-risk lists and the channel table show at most :data:`LIST_CAP` rows.

    Args:
        report: The report.
        charts: PNG bytes by file name, as from :func:`analytics.charts.render_charts` (may be empty). Charts
            with unknown names are shown at the end.
        csv_links: Whether the full lists are written beside the page (:data:`LIST_FILES`, as
            :func:`analytics.render.write_report` does) and linked from it.

    Returns:
        The HTML document.
    """
    weeks = weeks_in_range(report)[-TEXT_WEEKS:]
    cohort_headers, cohorts = cohort_rows(report)
    top: list[list[Any]] = []
    for i, m in enumerate(report.top_members, 1):
        row: list[Any] = top_row(i, m)
        row[1] = {"text": clean_name(row[1]), "cls": "name"}
        top.append(row)
    channels = [
        [
            {"text": clean_name(c.name), "cls": "child" if is_thread else "name"},
            fmt_int(c.messages),
            fmt_int(c.active_members),
            fmt_int(c.previous_messages),
            fmt_change(c.previous_messages, c.messages),
            _sparkline(c.weekly_messages),
        ]
        for c, is_thread in channel_rows(report.channels)
    ]
    known = {name for names in _SECTION_CHARTS.values() for name in names}
    values = {
        "csp": _CSP,
        "community": clean_name(report.community),
        "as_of": report.as_of.isoformat(),
        "as_of_line": f"{fmt_weekday_iso(report.as_of)} ({clean_name(report.timezone)})",
        "timezone": clean_name(report.timezone),
        "notices": data_notices(report),
        "figures": key_figures(report),
        "dash": DASH,
        "wow": week_over_week(report),
        "revenue": _revenue(report, charts),
        "subscriptions": _subscriptions(report, charts),
        "activity_charts": _charts(charts, _SECTION_CHARTS["activity"]),
        "week_headers": WEEK_HEADERS,
        "weeks": [week_row(w) for w in weeks],
        "hour_columns": [f"{h:02d}" for h in range(24)],
        "hours": _hour_rows(report.hour_of_week),
        "busiest_hour": _busiest_hour(report.hour_of_week),
        "channel_headers": ["Channel", "Messages", "Active members", "Previous range", "Change", "Trend by week"],
        "channels": channels[:LIST_CAP],
        "channel_total": len(channels),
        "channels_csv": LIST_FILES["channels"] if csv_links else None,
        "growth_headers": ["Week", "Joins", "Leaves", "Net", "Members at week end"],
        "growth": _growth_rows(report.growth),
        "cohort_charts": _charts(charts, _SECTION_CHARTS["cohorts"]),
        "cohort_headers": cohort_headers,
        "cohorts": cohorts,
        "segments": [[segment_name(k), fmt_int(v)] for k, v in report.segments.items()],
        "top_headers": TOP_HEADERS,
        "top": top,
        "lists": [
            _member_list("inactive", "Inactive", report.inactive, csv_links),
            _member_list("at_risk", "At risk", report.at_risk, csv_links),
        ],
        "list_cap": LIST_CAP,
        "other_charts": _charts(charts, sorted(name for name in charts if name not in known)),
        "schema_version": SCHEMA_VERSION,
        "fmt_int": fmt_int,
    }
    return build_environment().get_template("report.html").render(values)
