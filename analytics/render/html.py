"""The report as one self-contained HTML page; names are cleaned and everything is escaped with ``html.escape``."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence

from analytics.formatting import DASH, fmt_int, fmt_totals, fmt_weekday_iso, plural
from analytics.render.shared import (
    CONVERSION_HEADERS,
    COURSE_HEADERS,
    SCHEMA_VERSION,
    TEXT_WEEKS,
    TOP_HEADERS,
    WEEK_HEADERS,
    cohort_rows,
    commerce_line,
    conversion_rows,
    course_row,
    data_notices,
    key_figures,
    last_active,
    net_by_currency,
    price_points_text,
    revenue_rows,
    segment_name,
    top_row,
    week_over_week,
    week_row,
    weeks_in_range,
)
from analytics.results import Report
from analytics.safe_text import clean_name

_CSS = """
:root { color-scheme: light; --ink: #1d2330; --muted: #5b6472; --line: #e3e6eb; --accent: #2b6cb0; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: #f6f7f9; }
main { max-width: 64rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .75rem; padding-bottom: .25rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1rem; margin: 1.25rem 0 .5rem; }
p.notice { background: #fff4d6; border-left: 4px solid #e0a800; padding: .4rem .6rem; }
p.meta, p.note, figcaption { color: var(--muted); font-size: .9rem; margin: .25rem 0; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: .5rem 1rem 1rem;
  margin-top: 1rem; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(10.5rem, 1fr)); gap: .75rem; }
.kpi { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .75rem; }
.kpi .label { color: var(--muted); font-size: .8rem; }
.kpi .value { font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi .change { font-size: .85rem; color: var(--muted); }
figure { margin: 1rem 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; font-variant-numeric: tabular-nums; }
th, td { padding: .3rem .55rem; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #f0f2f5; font-weight: 600; }
th.l, td.l { text-align: left; }
td.name { white-space: normal; overflow-wrap: anywhere; min-width: 8rem; max-width: 18rem; }
.note { color: var(--muted); }
ul.names { margin: .25rem 0; padding-left: 1.25rem; }
footer { color: var(--muted); font-size: .85rem; margin-top: 2rem; }
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_SECTION_CHARTS = {
    "activity": ("activity.png",),
    "cohorts": ("cohort_heatmap.png", "retention_curves.png"),
    "commerce": ("revenue.png",),
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _name_html(name: str) -> str:
    return f"<bdi>{_e(clean_name(name))}</bdi>"


def _html_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    left: set[int],
    raw: set[int] | None = None,
    names: set[int] | None = None,
) -> str:
    """A table; cells are escaped except the columns in ``raw`` (already HTML).

    Columns in ``left`` are left-aligned (text), the others right-aligned (numbers); columns in ``names`` wrap.
    """
    raw = raw or set()
    names = names or set()
    head = "".join(f'<th class="l">{_e(h)}</th>' if i in left else f"<th>{_e(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            classes = []
            if i in left:
                classes.append("l")
            if i in names:
                classes.append("name")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attr}>{cell if i in raw else _e(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure_html(name: str, png: bytes) -> str:
    from analytics.charts import CHART_TITLES

    caption = CHART_TITLES.get(name, name)
    data = base64.b64encode(png).decode("ascii")
    size = ""
    if png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR":  # width and height from the PNG header
        size = f' width="{int.from_bytes(png[16:20], "big")}" height="{int.from_bytes(png[20:24], "big")}"'
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}"{size}>'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _charts_html(charts: Mapping[str, bytes], names: Iterable[str]) -> str:
    return "".join(_figure_html(name, charts[name]) for name in names if name in charts)


def render_html(report: Report, charts: Mapping[str, bytes]) -> str:
    """One self-contained HTML page: inline CSS, charts as ``data:`` PNG images, no external resource.

    A Content-Security-Policy forbids scripts and any network fetch, as a second line of defence behind escaping.

    Args:
        report: The report.
        charts: PNG bytes by file name, as from :func:`analytics.charts.render_charts` (may be empty). Charts
            with unknown names are shown at the end.

    Returns:
        The HTML document.
    """
    community = clean_name(report.community)
    parts: list[str] = []
    add = parts.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">')
    add(f"<title>{_e(community)} · report as of {report.as_of.isoformat()}</title>")
    add(f"<style>{_CSS}</style></head><body><main>")
    add(f"<h1>{_e(community)}</h1>")
    as_of = f"{fmt_weekday_iso(report.as_of)} ({clean_name(report.timezone)})"
    add(f'<p class="meta">Community report as of {_e(as_of)}</p>')
    for note in data_notices(report):
        add(f'<p class="notice">{_e(note)}</p>')

    # key figures
    add('<section><h2>Key figures</h2><div class="kpis">')
    for f in key_figures(report):
        change = f'<div class="change">{_e(f.change)} vs 7 days earlier</div>' if f.change and f.change != DASH else ""
        note = f'<div class="change">{_e(f.note)}</div>' if f.note else ""
        add(f'<div class="kpi"><div class="label">{_e(f.label)}</div><div class="value">{_e(f.value)}</div>')
        add(f"{change}{note}</div>")
    add("</div>")
    wow = week_over_week(report)
    if wow is not None:
        add(f"<h3>Week over week: {_e(wow.heading)}</h3>")
        add(_html_table(["", wow.previous.week, wow.current.week, "Change"], wow.rows, left={0, 3}))
    add("</section>")

    # activity
    add("<section><h2>Activity</h2>")
    add(_charts_html(charts, _SECTION_CHARTS["activity"]))
    weeks = weeks_in_range(report)[-TEXT_WEEKS:]
    add(f"<h3>Weekly activity (last {plural(len(weeks), 'week')})</h3>")
    add(_html_table(WEEK_HEADERS, [week_row(w) for w in weeks], left={0, 1}) if weeks else "<p>No weeks.</p>")
    add("</section>")

    # cohorts
    add("<section><h2>Cohorts</h2>")
    add(_charts_html(charts, _SECTION_CHARTS["cohorts"]))
    headers, rows = cohort_rows(report)
    add("<h3>Retention: share of each join week's members active k weeks after joining</h3>")
    add(_html_table(headers, rows, left={0}) if rows else "<p>No join cohorts yet.</p>")
    add("</section>")

    # members
    add("<section><h2>Members</h2>")
    add("<h3>Segments</h3>")
    if report.segments:
        add(
            _html_table(
                ["Segment", "Members"], [[segment_name(k), fmt_int(v)] for k, v in report.segments.items()], {0}
            )
        )
    else:
        add(f"<p>{DASH}</p>")
    add("<h3>Top members (by engagement score)</h3>")
    if report.top_members:
        top = [top_row(i, m) for i, m in enumerate(report.top_members, 1)]
        for row in top:
            row[1] = _name_html(row[1])
        add(_html_table(TOP_HEADERS, top, left={1, 2, 5}, raw={1}, names={1}))
    else:
        add(f"<p>{DASH}</p>")
    for title, members in (("Inactive", report.inactive), ("At risk", report.at_risk)):
        add(f"<h3>{title}: {_e(fmt_int(len(members)))}</h3>")
        if members:
            items = "".join(
                f'<li>{_name_html(m.name)} <span class="note">({_e(m.platform)}, {_e(last_active(m))})</span></li>'
                for m in members
            )
            add(f'<ul class="names">{items}</ul>')
    add("</section>")

    # commerce
    add("<section><h2>Commerce</h2>")
    commerce = report.commerce
    if commerce is None:
        add("<p>No courses or sales.</p>")
    else:
        add(_charts_html(charts, _SECTION_CHARTS["commerce"]))
        add(f"<p>{_e(' · '.join(commerce_line(commerce)))}</p>")
        if commerce.courses:
            course_rows = []
            for c in commerce.courses:
                row = [_e(cell) for cell in course_row(c)]
                row[0] = _name_html(c.title or c.course)
                if len(c.price_points) > 1:
                    row[0] += f'<br><span class="note">at {_e(price_points_text(c))}</span>'
                course_rows.append(row)
            add("<h3>By course</h3>")
            add(_html_table(COURSE_HEADERS, course_rows, left={0, 1}, raw=set(range(len(COURSE_HEADERS))), names={0}))
            totals = fmt_totals(net_by_currency(commerce), " · ")
            add(f"<p>Net revenue to date: {_e(totals)}</p>")
        if commerce.revenue_weeks:
            headers, rows = revenue_rows(report, commerce, TEXT_WEEKS)
            add(f"<h3>Net revenue by week (last {plural(len(rows), 'week')})</h3>")
            add(_html_table(headers, rows, left={0}))
        if commerce.cohort_conversion:
            conv = conversion_rows(commerce)
            add("<h3>Buyers by join cohort</h3>")
            add(_html_table(CONVERSION_HEADERS, conv, left={0}))
    add("</section>")

    known = {name for names in _SECTION_CHARTS.values() for name in names}
    others = sorted(name for name in charts if name not in known)
    if others:
        add("<section><h2>More charts</h2>")
        add(_charts_html(charts, others))
        add("</section>")

    add(
        f"<footer>Exact figures, for the community's owners and admins. Report schema version {SCHEMA_VERSION}."
        "</footer>"
    )
    add("</main></body></html>")
    return "\n".join(parts) + "\n"
