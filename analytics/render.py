"""Render a :class:`~analytics.results.Report` as terminal text, JSON or one HTML page.

The JSON schema is documented in docs/metrics.md, section "Report JSON".

All three are for the community's owners and admins (:data:`analytics.privacy.OWNERS`), so every figure is exact,
small groups included: a spreadsheet reading the JSON gets numbers, never "<5". Outputs that members can see (the
digest posted to the community chat) apply the small-group rule of :mod:`analytics.privacy` themselves.

Names come from chat platforms and are untrusted: text output replaces control and format characters (terminal
escapes, bidirectional overrides) with "?", HTML output does that and escapes everything with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import json
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, get_args

from analytics.results import CommerceSummary, CourseSales, MemberStatus, Report, WeekStats
from analytics.safe_text import clean_name as clean_name  # re-exported: chat outputs import it from here
from analytics.weeks import week_label

SCHEMA_VERSION = 2
"""Version of the JSON schema; bumped when a field changes meaning or type (new fields do not bump it)."""

ReportFormat = Literal["text", "json", "html"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)

DASH = "–"
MINUS = "−"

TEXT_WEEKS = 12
"""Weeks shown in the text and HTML weekly tables (the newest)."""
TEXT_COHORTS = 12
"""Cohorts shown in the retention tables (the newest)."""
RETENTION_WEEKS = 8
"""Retention columns k = 0 .. 7 in the text and HTML tables."""
LIST_NAMES = 5
"""Names shown after the inactive and at-risk counts in text."""
NAME_WIDTH = 24

ZERO_DECIMAL_CURRENCIES = frozenset({"XTR", "JPY", "KRW", "CLP", "ISK", "VND"})

SHARE_DIGITS = 4
MONEY_DIGITS = 2
STAT_DIGITS = 2


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers


def data_notices(report: Report) -> list[str]:
    """What every output says first when its figures are not complete: data that ends early, a day not over yet.

    Args:
        report: The report.

    Returns:
        Zero, one or two sentences, e.g. ``"Data ends 2019-12-10; figures after that are not measured."``
    """
    notes = []
    if report.data_ends is not None:
        notes.append(f"Data ends {report.data_ends.isoformat()}; figures after that are not measured.")
    if report.last_complete_day is not None and report.last_complete_day < report.as_of:
        notes.append(
            f"{report.as_of.isoformat()} is not over yet: its figures are so far, and charts end on "
            f"{report.measured_through.isoformat()}."
        )
    return notes


def week_comparison(report: Report) -> tuple[WeekStats, WeekStats, str] | None:
    """The two weeks a week-over-week comparison shows, and its heading; None with fewer than two weeks.

    A week in progress is compared with the same weekdays of the week before, never with a whole week:
    ``"2019-W50 so far (2 days) vs the same 2 days of 2019-W49"``.

    Args:
        report: The report.

    Returns:
        ``(earlier, later, heading)``, or None.
    """
    weeks = weeks_in_range(report)
    if len(weeks) < 2:
        return None
    cur = weeks[-1]
    so_far, same_days = report.week_so_far, report.previous_week_same_days
    if so_far is not None and same_days is not None:
        n = (min(report.as_of, report.measured_through) - so_far.start).days + 1
        days = "1 day" if n == 1 else f"{n} days"
        return same_days, so_far, f"{so_far.week} so far ({days}) vs the same {days} of {same_days.week}"
    if report.as_of.weekday() != 6:  # a week in progress without a measured day: compare the last whole weeks
        if len(weeks) < 3:
            return None
        return weeks[-3], weeks[-2], f"{weeks[-3].week} → {weeks[-2].week} ({cur.week} has no complete day yet)"
    return weeks[-2], cur, f"{weeks[-2].week} → {cur.week}"


def weeks_in_range(report: Report) -> list[WeekStats]:
    """The report's weeks, oldest first, with every week between the first and the last present.

    The metric code is expected to include zero weeks; a week it left out is added here with zeros, so the
    rendered reports always show an unbroken run of weeks.

    Args:
        report: The report.

    Returns:
        One ``WeekStats`` per ISO week from the first to the last of ``report.weekly``.
    """
    by_start = {w.start: w for w in report.weekly}
    if not by_start:
        return []
    first, last = min(by_start), max(by_start)
    weeks = []
    start = first
    while start <= last:
        weeks.append(by_start.get(start) or WeekStats(week_label(start), start, 0, 0, 0, 0, 0, 0, 0))
        start += timedelta(days=7)
    return weeks


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _rounded(value: float | None, digits: int) -> float | None:
    value = _finite(value)
    return None if value is None else round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _money_digits(currency: str) -> int:
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else MONEY_DIGITS


# ---------------------------------------------------------------------------------------------------------------
# JSON


def _share_json(value: float | None) -> float | None:
    return _rounded(value, SHARE_DIGITS)


def _week_json(w: WeekStats) -> dict[str, object]:
    return {
        "week": w.week,
        "start": w.start.isoformat(),
        "active": w.active,
        "new": w.new,
        "left": w.left,
        "messages": w.messages,
        "reactions": w.reactions,
        "communicators": w.communicators,
        "active_channels": w.active_channels,
    }


def _member_json(member: MemberStatus) -> dict[str, object]:
    return {
        "member_id": member.member_id,
        "name": member.name,
        "platform": member.platform,
        "days_since_active": member.days_since_active,
        "messages_28d": member.messages_28d,
        "score": _rounded(member.score, STAT_DIGITS),
        "segment": member.segment,
    }


def _course_json(course: CourseSales) -> dict[str, object]:
    digits = _money_digits(course.currency)
    return {
        "course": course.course,
        "title": course.title,
        "currency": course.currency,
        "sales": course.sales,
        "buyers": course.buyers,
        "refunds": course.refunds,
        "gross": _rounded(course.gross, digits),
        "refunded": _rounded(course.refunded, digits),
        "net": _rounded(course.net, digits),
        "refund_rate": _share_json(course.refund_rate),
        "price": _rounded(course.price, MONEY_DIGITS),
        "sales_per_sale_week": _rounded(course.sales_per_sale_week, STAT_DIGITS),
        "sale_weeks": course.sale_weeks,
        "price_points": [
            {"price": _rounded(p.price, MONEY_DIGITS), "sales": p.sales}
            for p in sorted(course.price_points, key=lambda p: p.price)
        ],
        "arc_elasticity": _rounded(course.arc_elasticity, STAT_DIGITS),
    }


def _commerce_json(commerce: CommerceSummary) -> dict[str, object]:
    return {
        "buyers": commerce.buyers,
        "members": commerce.members,
        "conversion": _share_json(commerce.conversion),
        "refund_rate": _share_json(commerce.refund_rate),
        "median_days_to_first_purchase": _rounded(commerce.median_days_to_first_purchase, STAT_DIGITS),
        "buyer_retention_30d": _share_json(commerce.buyer_retention_30d),
        "courses": [_course_json(c) for c in commerce.courses],
        "revenue_weeks": [
            {
                "week": w.week,
                "start": w.start.isoformat(),
                "currency": w.currency,
                "gross": _rounded(w.gross, _money_digits(w.currency)),
                "refunded": _rounded(w.refunded, _money_digits(w.currency)),
                "net": _rounded(w.net, _money_digits(w.currency)),
            }
            for w in sorted(commerce.revenue_weeks, key=lambda w: (w.start, w.currency))
        ],
        "cohort_conversion": [
            {
                "cohort": c.cohort,
                "size": c.size,
                "buyers": c.buyers,
                "conversion": _share_json(c.conversion),
            }
            for c in commerce.cohort_conversion
        ],
    }


def report_to_json(report: Report) -> dict[str, object]:
    """The report as JSON-safe values, in the documented schema (docs/metrics.md, "Report JSON").

    Dates are ISO strings, shares are rounded to 4 decimals, money to 2 (0 for Telegram Stars), other statistics
    to 2; NaN and infinities become ``null``. Every count is the exact integer (the report is for owners).

    Args:
        report: The report.

    Returns:
        A dict of str, int, float, bool, None, lists and dicts only.
    """
    s = report.summary
    days = sorted(report.daily, key=lambda d: d.day)
    return {
        "schema_version": SCHEMA_VERSION,
        "community": report.community,
        "timezone": report.timezone,
        "as_of": report.as_of.isoformat(),
        "members": report.members,
        "data_ends": None if report.data_ends is None else report.data_ends.isoformat(),
        "last_complete_day": report.measured_through.isoformat(),
        "notices": data_notices(report),
        "weekly": [_week_json(w) for w in weeks_in_range(report)],
        "week_so_far": None if report.week_so_far is None else _week_json(report.week_so_far),
        "previous_week_same_days": (
            None if report.previous_week_same_days is None else _week_json(report.previous_week_same_days)
        ),
        "dau_wau_mau": {
            "dau": s.dau,
            "wau": s.wau,
            "mau": s.mau,
            "stickiness": _share_json(s.stickiness),
            "daily": [{"day": d.day.isoformat(), "dau": d.dau, "wau": d.wau, "mau": d.mau} for d in days],
        },
        "activity": {
            "messages_7d": s.messages_7d,
            "messages_28d": s.messages_28d,
            "reactions_28d": s.reactions_28d,
            "communicators_28d": s.communicators_28d,
            "active_channels_28d": s.active_channels_28d,
            "messages_per_active_member_mean": _rounded(s.messages_per_active_member_mean, STAT_DIGITS),
            "messages_per_active_member_std": _rounded(s.messages_per_active_member_std, STAT_DIGITS),
        },
        "cohorts": [
            {
                "cohort": c.cohort,
                "start": c.start.isoformat(),
                "size": c.size,
                "retention": [_share_json(r) for r in c.retention],
                "activation_rate": _share_json(c.activation_rate),
                "second_week_retention": _share_json(c.second_week_retention),
            }
            for c in sorted(report.cohorts, key=lambda c: c.start)
        ],
        "activation_rate": _share_json(report.activation_rate),
        "inactive": {"count": len(report.inactive), "member_ids": [m.member_id for m in report.inactive]},
        "at_risk": {"count": len(report.at_risk), "member_ids": [m.member_id for m in report.at_risk]},
        "segments": dict(report.segments),
        "top_members": [_member_json(m) for m in report.top_members],
        "commerce": None if report.commerce is None else _commerce_json(report.commerce),
    }


def render_json(report: Report) -> str:
    """The report's JSON document: pretty-printed, keys sorted, so the same report gives the same text.

    Args:
        report: The report.

    Returns:
        The JSON text, ending with a newline.
    """
    return json.dumps(report_to_json(report), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Cells: the formatted values text and HTML share


def _int(n: int) -> str:
    return f"{n:,}"


def _signed(text: str) -> str:
    return MINUS + text[1:] if text.startswith("-") else text


def _pct(share: float | None, digits: int = 1) -> str:
    share = _finite(share)
    return DASH if share is None else _signed(f"{share * 100:.{digits}f}%")


def _num(value: float | None, digits: int = 2) -> str:
    value = _finite(value)
    return DASH if value is None else _signed(f"{value:,.{digits}f}")


def _money(amount: float | None, currency: str) -> str:
    amount = _finite(amount)
    if amount is None:
        return DASH
    return _signed(f"{amount:,.{_money_digits(currency)}f}") + f" {currency}"


def _delta(previous: int, current: int) -> str:
    """A change such as "+12 (+8.3%)", "−3 (−20.0%)" or "±0"."""
    change = current - previous
    if change == 0:
        return "±0 (0.0%)" if previous else "±0"
    sign = "+" if change > 0 else MINUS
    text = f"{sign}{abs(change):,}"
    if previous:
        text += f" ({sign}{abs(change) / previous * 100:.1f}%)"
    return text


def _ago(days: int | None) -> str:
    if days is None:
        return "never"
    if days == 0:
        return "today"
    return "1 day ago" if days == 1 else f"{days} days ago"


def _last_active(member: MemberStatus) -> str:
    days = member.days_since_active
    return "never active" if days is None else f"last active {_ago(days)}"


def _weekday(day: date) -> str:
    return f"{day:%a} {day.isoformat()}"


@dataclass(frozen=True)
class _Figure:
    label: str
    value: str
    change: str = ""
    note: str = ""


def _daily_change(report: Report, field: Literal["dau", "wau", "mau"]) -> str:
    if report.measured_through < report.as_of:
        return DASH  # never compare a day that is not over, or not measured
    by_day = {d.day: d for d in report.daily}
    now, before = by_day.get(report.as_of), by_day.get(report.as_of - timedelta(days=7))
    if now is None or before is None:
        return DASH
    return _delta(getattr(before, field), getattr(now, field))


def _key_figures(report: Report) -> list[_Figure]:
    s = report.summary
    mean = s.messages_per_active_member_mean
    std = s.messages_per_active_member_std
    per_member = f"{_num(mean, 1)} ± {_num(std, 1)}" if mean is not None else DASH
    return [
        _Figure("Members", _int(report.members)),
        _Figure("DAU", _int(s.dau), _daily_change(report, "dau"), "active on the day"),
        _Figure("WAU", _int(s.wau), _daily_change(report, "wau"), "active in the last 7 days"),
        _Figure("MAU", _int(s.mau), _daily_change(report, "mau"), "active in the last 28 days"),
        _Figure("Stickiness", _pct(s.stickiness), note="mean DAU / MAU over 28 days"),
        _Figure("Messages 7d / 28d", f"{_int(s.messages_7d)} / {_int(s.messages_28d)}"),
        _Figure("Reactions 28d", _int(s.reactions_28d)),
        _Figure("Communicators 28d", _int(s.communicators_28d), note="≥ 3 messages in 28 days"),
        _Figure("Active channels 28d", _int(s.active_channels_28d)),
        _Figure("Messages per member 28d", per_member, note="mean ± sd over active members"),
        _Figure(
            "Activation",
            _pct(report.activation_rate),
            note="joined in last 4 weeks, ≥ 3 msgs in 7 days",
        ),
    ]


@dataclass(frozen=True)
class _WeekOverWeek:
    previous: WeekStats
    current: WeekStats
    heading: str
    rows: list[tuple[str, str, str, str]]


def _week_over_week(report: Report) -> _WeekOverWeek | None:
    compared = week_comparison(report)
    if compared is None:
        return None
    prev, cur, heading = compared
    rows: list[tuple[str, str, str, str]] = []
    for label, field in (
        ("Active members", "active"),
        ("New members", "new"),
        ("Left", "left"),
        ("Messages", "messages"),
        ("Reactions", "reactions"),
        ("Communicators", "communicators"),
        ("Active channels", "active_channels"),
    ):
        a, b = int(getattr(prev, field)), int(getattr(cur, field))
        rows.append((label, _int(a), _int(b), _delta(a, b)))
    return _WeekOverWeek(prev, cur, heading, rows)


def _week_row(w: WeekStats) -> list[str]:
    return [
        w.week,
        w.start.isoformat(),
        _int(w.active),
        _int(w.new),
        _int(w.left),
        _int(w.messages),
        _int(w.reactions),
        _int(w.communicators),
        _int(w.active_channels),
    ]


WEEK_HEADERS = ["Week", "Monday", "Active", "New", "Left", "Messages", "Reactions", "Communicators", "Channels"]


def _cohort_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    cohorts = sorted(report.cohorts, key=lambda c: c.start)[-TEXT_COHORTS:]
    headers = ["Cohort", "Size", "Activation", *(f"k={k}" for k in range(RETENTION_WEEKS))]
    rows = []
    for c in cohorts:
        cells = [_pct(r, 0) for r in c.retention[:RETENTION_WEEKS]]
        cells += [""] * (RETENTION_WEEKS - len(cells))
        rows.append([c.cohort, _int(c.size), _pct(c.activation_rate), *cells])
    return headers, rows


TOP_HEADERS = ["#", "Name", "Platform", "Score", "Messages 28d", "Segment", "Last active"]


def _segment(name: str | None) -> str:
    return DASH if not name else clean_name(name).replace("_", " ")


def _top_row(rank: int, m: MemberStatus) -> list[str]:
    return [
        str(rank),
        m.name,
        m.platform,
        _num(m.score, 1),
        _int(m.messages_28d),
        _segment(m.segment),
        _ago(m.days_since_active),
    ]


COURSE_HEADERS = ["Course", "Cur.", "Sales", "Buyers", "Refunds", "Net to date", "Refund rate", "Elasticity"]


def _course_row(c: CourseSales) -> list[str]:
    return [
        c.title or c.course,
        c.currency,
        _int(c.sales),
        _int(c.buyers),
        _int(c.refunds),
        _money(c.net, c.currency),
        _pct(c.refund_rate),
        _num(c.arc_elasticity, 2),
    ]


def _price_points(c: CourseSales) -> str:
    points = sorted(c.price_points, key=lambda p: p.price)
    return ", ".join(f"{_money(p.price, c.currency)} × {_int(p.sales)}" for p in points)


def _commerce_line(commerce: CommerceSummary) -> list[str]:
    median = _num(commerce.median_days_to_first_purchase, 1)
    return [
        f"Buyers {_int(commerce.buyers)} of {_int(commerce.members)} members ({_pct(commerce.conversion)})",
        f"refund rate {_pct(commerce.refund_rate)}",
        f"median days to first purchase {median}",
        f"buyers active again within 30 days {_pct(commerce.buyer_retention_30d)}",
    ]


def _net_by_currency(commerce: CommerceSummary) -> dict[str, float]:
    totals: dict[str, float] = {}
    for c in commerce.courses:
        totals[c.currency] = totals.get(c.currency, 0.0) + c.net
    return dict(sorted(totals.items()))


def _revenue_rows(report: Report, commerce: CommerceSummary, last: int) -> tuple[list[str], list[list[str]]]:
    currencies = sorted({w.currency for w in commerce.revenue_weeks})
    net = {(w.start, w.currency): w.net for w in commerce.revenue_weeks}
    starts = sorted({w.start for w in weeks_in_range(report)} | {w.start for w in commerce.revenue_weeks})
    rows = [
        [week_label(start), *(_money(net.get((start, cur), 0.0), cur) for cur in currencies)]
        for start in starts[-last:]
    ]
    return ["Week", *(f"Net {cur}" for cur in currencies)], rows


# ---------------------------------------------------------------------------------------------------------------
# Text


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
    names = [f"{_fit(clean_name(m.name), NAME_WIDTH)} ({_ago(m.days_since_active)})" for m in members[:shown]]
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
    title = f"{community} · community report as of {_weekday(report.as_of)} ({clean_name(report.timezone)})"
    out = [title, "═" * min(_width(title), 100)]
    out += [f"⚠ {note}" for note in data_notices(report)]

    out += _heading("Key figures", "change vs 7 days earlier")
    figures = _key_figures(report)
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

    wow = _week_over_week(report)
    if wow is None:
        out += _heading("Week over week")
        out.append("  Needs two weeks of data.")
    else:
        out += _heading("Week over week", wow.heading)
        out += _table(["", wow.previous.week, wow.current.week, "Change"], wow.rows, right={1, 2})

    shown_weeks = weeks_in_range(report)[-weeks:] if weeks > 0 else []
    out += _heading("Weekly activity", "the last week" if len(shown_weeks) == 1 else f"last {len(shown_weeks)} weeks")
    if shown_weeks:
        out += _table(WEEK_HEADERS, [_week_row(w) for w in shown_weeks], right=_from(2, WEEK_HEADERS))
    else:
        out.append("  No weeks.")

    out += _heading("Cohort retention", "share of each join week's members active k weeks after joining")
    headers, rows = _cohort_rows(report)
    out += _table(headers, rows, right=_from(1, headers)) if rows else ["  No join cohorts yet."]

    out += _heading("Segments")
    if report.segments:
        segments = [[_segment(k), _int(v)] for k, v in report.segments.items()]
        out += _table(["Segment", "Members"], segments, right={1})
    else:
        out.append(f"  {DASH}")

    out += _heading("Top members", "by engagement score")
    if report.top_members:
        top = [_top_row(i, m) for i, m in enumerate(report.top_members, 1)]
        for row in top:
            row[1] = _fit(clean_name(row[1]), NAME_WIDTH)
        out += _table(TOP_HEADERS, top, right={0, 3, 4})
    else:
        out.append(f"  {DASH}")

    out += _heading("Inactive and at risk")
    for label, members in (("Inactive:", report.inactive), ("At risk:", report.at_risk)):
        head = f"  {label:<9} {_int(len(members))}"
        out += _wrap(f"{head} {DASH} ", _name_list(members, LIST_NAMES)) if members else [head]

    out += _heading("Commerce")
    commerce = report.commerce
    if commerce is None:
        out.append("  No courses or sales.")
    else:
        out += _wrap("  ", ", ".join(_commerce_line(commerce)))
        if commerce.courses:
            course_rows = []
            for c in commerce.courses:
                row = _course_row(c)
                row[0] = _fit(clean_name(row[0]), NAME_WIDTH)
                course_rows.append(row)
            lines = _table(COURSE_HEADERS, course_rows, right=_from(2, COURSE_HEADERS))
            out.append(lines[0])
            for course, line in zip(commerce.courses, lines[1:], strict=True):
                out.append(line)
                if len(course.price_points) > 1:
                    out.append(f"      at {_price_points(course)}")
            totals = " · ".join(_money(v, k) for k, v in _net_by_currency(commerce).items())
            out.append(f"  Net revenue to date: {totals}")
        else:
            out.append("  No sales yet.")
        if commerce.revenue_weeks:
            headers, rows = _revenue_rows(report, commerce, 6)
            out += ["", "  Net revenue by week (last 6 weeks)"]
            out += _table(headers, rows, right=_from(1, headers))
        if commerce.cohort_conversion:
            conv = [[c.cohort, _int(c.size), _int(c.buyers), _pct(c.conversion)] for c in commerce.cohort_conversion]
            out += ["", "  Buyers by join cohort"]
            out += _table(["Cohort", "Size", "Buyers", "Conversion"], conv, right={1, 2, 3})

    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# HTML

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
    add(f'<p class="meta">Community report as of {_e(_weekday(report.as_of))} ({_e(clean_name(report.timezone))})</p>')
    for note in data_notices(report):
        add(f'<p class="notice">{_e(note)}</p>')

    # key figures
    add('<section><h2>Key figures</h2><div class="kpis">')
    for f in _key_figures(report):
        change = f'<div class="change">{_e(f.change)} vs 7 days earlier</div>' if f.change and f.change != DASH else ""
        note = f'<div class="change">{_e(f.note)}</div>' if f.note else ""
        add(f'<div class="kpi"><div class="label">{_e(f.label)}</div><div class="value">{_e(f.value)}</div>')
        add(f"{change}{note}</div>")
    add("</div>")
    wow = _week_over_week(report)
    if wow is not None:
        add(f"<h3>Week over week: {_e(wow.heading)}</h3>")
        add(_html_table(["", wow.previous.week, wow.current.week, "Change"], wow.rows, left={0, 3}))
    add("</section>")

    # activity
    add("<section><h2>Activity</h2>")
    add(_charts_html(charts, _SECTION_CHARTS["activity"]))
    weeks = weeks_in_range(report)[-TEXT_WEEKS:]
    add(f"<h3>Weekly activity (last {len(weeks)} weeks)</h3>")
    add(_html_table(WEEK_HEADERS, [_week_row(w) for w in weeks], left={0, 1}) if weeks else "<p>No weeks.</p>")
    add("</section>")

    # cohorts
    add("<section><h2>Cohorts</h2>")
    add(_charts_html(charts, _SECTION_CHARTS["cohorts"]))
    headers, rows = _cohort_rows(report)
    add("<h3>Retention: share of each join week's members active k weeks after joining</h3>")
    add(_html_table(headers, rows, left={0}) if rows else "<p>No join cohorts yet.</p>")
    add("</section>")

    # members
    add("<section><h2>Members</h2>")
    add("<h3>Segments</h3>")
    if report.segments:
        add(_html_table(["Segment", "Members"], [[_segment(k), _int(v)] for k, v in report.segments.items()], {0}))
    else:
        add(f"<p>{DASH}</p>")
    add("<h3>Top members (by engagement score)</h3>")
    if report.top_members:
        top = [_top_row(i, m) for i, m in enumerate(report.top_members, 1)]
        for row in top:
            row[1] = _name_html(row[1])
        add(_html_table(TOP_HEADERS, top, left={1, 2, 5}, raw={1}, names={1}))
    else:
        add(f"<p>{DASH}</p>")
    for title, members in (("Inactive", report.inactive), ("At risk", report.at_risk)):
        add(f"<h3>{title}: {_e(_int(len(members)))}</h3>")
        if members:
            items = "".join(
                f'<li>{_name_html(m.name)} <span class="note">({_e(m.platform)}, {_e(_last_active(m))})</span></li>'
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
        add(f"<p>{_e(' · '.join(_commerce_line(commerce)))}</p>")
        if commerce.courses:
            course_rows = []
            for c in commerce.courses:
                row = [_e(cell) for cell in _course_row(c)]
                row[0] = _name_html(c.title or c.course)
                if len(c.price_points) > 1:
                    row[0] += f'<br><span class="note">at {_e(_price_points(c))}</span>'
                course_rows.append(row)
            add("<h3>By course</h3>")
            add(_html_table(COURSE_HEADERS, course_rows, left={0, 1}, raw=set(range(len(COURSE_HEADERS))), names={0}))
            totals = " · ".join(_money(v, k) for k, v in _net_by_currency(commerce).items())
            add(f"<p>Net revenue to date: {_e(totals)}</p>")
        if commerce.revenue_weeks:
            headers, rows = _revenue_rows(report, commerce, TEXT_WEEKS)
            add(f"<h3>Net revenue by week (last {len(rows)} weeks)</h3>")
            add(_html_table(headers, rows, left={0}))
        if commerce.cohort_conversion:
            conv = [[c.cohort, _int(c.size), _int(c.buyers), _pct(c.conversion)] for c in commerce.cohort_conversion]
            add("<h3>Buyers by join cohort</h3>")
            add(_html_table(["Cohort", "Size", "Buyers", "Conversion"], conv, left={0}))
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


# ---------------------------------------------------------------------------------------------------------------
# Files


def write_report(report: Report, out_dir: Path, fmt: ReportFormat, *, charts: bool = True) -> list[Path]:
    """Write the report in one format, and its charts as PNG files, into ``out_dir`` (created if missing).

    Files: ``report.txt``, ``report.json`` or ``report.html``, plus ``activity.png``, ``cohort_heatmap.png``,
    ``retention_curves.png`` and (with commerce) ``revenue.png``. The HTML page embeds the charts itself, so it
    stands alone; the PNG files are written beside it for other uses (chat attachments, slides).

    Args:
        report: The report.
        out_dir: The directory to write into.
        fmt: ``"text"``, ``"json"`` or ``"html"``.
        charts: Whether to draw and write the PNG charts (the HTML page always embeds them).

    Returns:
        The paths written, the report first.

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    from analytics.charts import render_charts

    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = render_charts(report) if charts or fmt == "html" else {}
    if fmt == "text":
        path, body = out_dir / "report.txt", render_text(report)
    elif fmt == "json":
        path, body = out_dir / "report.json", render_json(report)
    else:
        path, body = out_dir / "report.html", render_html(report, pngs)
    path.write_text(body, encoding="utf-8", newline="\n")
    written = [path]
    if charts:
        for name, png in pngs.items():
            png_path = out_dir / name
            png_path.write_bytes(png)
            written.append(png_path)
    return written
