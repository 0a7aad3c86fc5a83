"""The report as terminal text (80 to 100 columns); untrusted names have control characters replaced by "?"."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

from analytics.formatting import DASH, fmt_ago, fmt_int, fmt_totals, fmt_weekday_iso
from analytics.render.questions import questions_text
from analytics.render.shared import (
    CONVERSION_HEADERS,
    COURSE_HEADERS,
    LIST_NAMES,
    LTV_HEADERS,
    NAME_WIDTH,
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
from analytics.results import MemberStatus, Report
from analytics.safe_text import clean_name


def _width(text: str) -> int:
    """Terminal columns a string takes (wide East Asian characters count 2, combining marks 0)."""
    total = 0
    for ch in text:
        if unicodedata.combining(ch) or ch == "\u200d":
            continue
        total += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return total


def _fit(text: str, width: int) -> str:
    """Cut a (cleaned) string to ``width`` terminal columns, ending with "…" when it was cut."""
    if _width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = _width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * max(0, width - _width(text))
    return fill + text if right else text + fill


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int], indent: str = "  "
) -> list[str]:
    """Columns aligned on terminal width; the columns in ``right`` (numbers) right-aligned, the others left."""
    right = set(right)
    widths = [max([_width(h), *(_width(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = []
    for row in [list(headers), *(list(r) for r in rows)]:
        cells = [_pad(cell, widths[i], right=i in right) for i, cell in enumerate(row)]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _from(first: int, headers: Sequence[str]) -> range:
    return range(first, len(headers))


def _heading(title: str, note: str = "") -> list[str]:
    line = title.upper() + (f"  {note}" if note else "")
    return ["", line, "─" * min(_width(line), 100)]


def _name_list(members: Sequence[MemberStatus], shown: int) -> str:
    names = [f"{_fit(clean_name(m.name), NAME_WIDTH)} ({fmt_ago(m.days_since_active)})" for m in members[:shown]]
    more = len(members) - shown
    if more > 0:
        names.append(f"and {more} more")
    return ", ".join(names)


def _wrap(prefix: str, text: str, width: int = 98) -> list[str]:
    """Wrap ``text`` at ", " boundaries to ``width`` columns, continuation lines indented under the text."""
    lines, line = [], prefix
    for i, part in enumerate(text.split(", ")):
        piece = part if i == 0 else ", " + part
        if _width(line) + _width(piece) > width and line.strip():
            lines.append(line.rstrip(" ,") + ",")
            line = " " * _width(prefix) + part
        else:
            line += piece
    lines.append(line)
    return lines


def render_text(report: Report, *, weeks: int = TEXT_WEEKS) -> str:
    """A readable terminal report (80 to 100 columns): key figures, week over week, tables.

    Args:
        report: The report.
        weeks: How many of the newest weeks the weekly table shows.

    Returns:
        The text, ending with a newline.
    """
    community = clean_name(report.community)
    title = f"{community} · community report as of {fmt_weekday_iso(report.as_of)} ({clean_name(report.timezone)})"
    out = [title, "═" * min(_width(title), 100)]
    out += [f"⚠ {note}" for note in data_notices(report)]

    out += _heading("Key figures", "change vs 7 days earlier")
    figures = key_figures(report)
    label_w = max(_width(f.label) for f in figures)
    value_w = max(_width(f.value) for f in figures)
    change_w = max(_width(f.change) for f in figures)
    for f in figures:
        line = f"  {_pad(f.label, label_w, False)}  {_pad(f.value, value_w, True)}"
        if change_w:
            line += f"  {_pad(f.change, change_w, False)}"
        if f.note:
            line += f"  {f.note}"
        out.append(line.rstrip())

    wow = week_over_week(report)
    if wow is None:
        out += _heading("Week over week")
        out.append("  Needs two weeks of data.")
    else:
        out += _heading("Week over week", wow.heading)
        out += _table(["", wow.previous.week, wow.current.week, "Change"], wow.rows, right={1, 2})

    shown_weeks = weeks_in_range(report)[-weeks:] if weeks > 0 else []
    out += _heading("Weekly activity", "the last week" if len(shown_weeks) == 1 else f"last {len(shown_weeks)} weeks")
    if shown_weeks:
        out += _table(WEEK_HEADERS, [week_row(w) for w in shown_weeks], right=_from(2, WEEK_HEADERS))
    else:
        out.append("  No weeks.")

    out += _heading("Cohort retention", "share of each join week's members active k weeks after joining")
    headers, rows = cohort_rows(report)
    out += _table(headers, rows, right=_from(1, headers)) if rows else ["  No join cohorts yet."]

    out += _heading("Segments")
    if report.segments:
        segments = [[segment_name(k), fmt_int(v)] for k, v in report.segments.items()]
        out += _table(["Segment", "Members"], segments, right={1})
    else:
        out.append(f"  {DASH}")

    out += _heading("Top members", "by engagement score")
    if report.top_members:
        top = [top_row(i, m) for i, m in enumerate(report.top_members, 1)]
        for row in top:
            row[1] = _fit(clean_name(row[1]), NAME_WIDTH)
        out += _table(TOP_HEADERS, top, right={0, 3, 4})
    else:
        out.append(f"  {DASH}")

    out += _heading("Inactive and at risk")
    for label, members in (("Inactive:", report.inactive), ("At risk:", report.at_risk)):
        head = f"  {label:<9} {fmt_int(len(members))}"
        out += _wrap(f"{head} {DASH} ", _name_list(members, LIST_NAMES)) if members else [head]

    out += _heading("Commerce")
    commerce = report.commerce
    if commerce is None:
        out.append("  No courses or sales.")
    else:
        out += _wrap("  ", ", ".join(commerce_line(commerce)))
        if commerce.courses:
            course_rows = []
            for c in commerce.courses:
                row = course_row(c)
                row[0] = _fit(clean_name(row[0]), NAME_WIDTH)
                course_rows.append(row)
            lines = _table(COURSE_HEADERS, course_rows, right=_from(2, COURSE_HEADERS))
            out.append(lines[0])
            for course, line in zip(commerce.courses, lines[1:], strict=True):
                out.append(line)
                if len(course.price_points) > 1:
                    out.append(f"      at {price_points_text(course)}")
            totals = fmt_totals(net_by_currency(commerce), " · ")
            out.append(f"  Net revenue to date: {totals}")
        else:
            out.append("  No sales yet.")
        if commerce.revenue_weeks:
            headers, rows = revenue_rows(report, commerce, 6)
            out += ["", "  Net revenue by week (last 6 weeks)"]
            out += _table(headers, rows, right=_from(1, headers))
        if commerce.cohort_conversion:
            conv = conversion_rows(commerce)
            out += ["", "  Buyers by join cohort"]
            out += _table(CONVERSION_HEADERS, conv, right={1, 2, 3})
        if commerce.ltv_cohorts:
            out += ["", "  Net revenue per member by join month"]
            out += _table(LTV_HEADERS, ltv_rows(commerce), right={1, 3, 4, 5})

    out += _heading("Subscriptions", "monthly courses; a member in two courses counts in each")
    subscriptions = report.subscriptions
    if subscriptions is None:
        out.append("  No subscriptions.")
    else:
        out += _wrap("  ", ", ".join(subscription_line(subscriptions)))
        out += ["", "  By week (last 6 weeks)"]
        out += _table(SUBSCRIPTION_WEEK_HEADERS, subscription_week_rows(subscriptions, 6), right={1, 2, 3})
        course_rows = subscription_course_rows(subscriptions)
        for row in course_rows:
            row[0] = _fit(clean_name(row[0]), NAME_WIDTH)
        out += ["", "  By course (report range)"]
        out += _table(SUBSCRIPTION_COURSE_HEADERS, course_rows, right={1, 2, 3, 4, 5})

    if report.questions is not None:
        out += questions_text(report.questions)

    return "\n".join(out) + "\n"
