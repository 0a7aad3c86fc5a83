"""What the text, HTML and JSON renderers of a report share.

Its versions and sizes, the data notices, the weeks compared, and the cells (formatted values and table rows) text
and HTML both show.

Every value is formatted by :mod:`analytics.formatting`, the formatters the chat outputs use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

from analytics.formatting import (
    DASH,
    fmt_ago,
    fmt_change,
    fmt_int,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_totals,
    plural,
)
from analytics.results import CommerceSummary, CourseSales, MemberStatus, Report, SubscriptionSummary, WeekStats
from analytics.safe_text import clean_name
from analytics.weeks import week_label

SCHEMA_VERSION = 2
"""Version of the JSON schema; bumped when a field changes meaning or type (new fields do not bump it)."""

ReportFormat = Literal["text", "json", "html"]
FORMATS: tuple[str, ...] = get_args(ReportFormat)

TEXT_WEEKS = 12
"""Weeks shown in the text and HTML weekly tables (the newest)."""
TEXT_COHORTS = 12
"""Cohorts shown in the retention tables (the newest)."""
RETENTION_WEEKS = 8
"""Retention columns k = 0 .. 7 in the text and HTML tables."""
LIST_NAMES = 5
"""Names shown after the inactive and at-risk counts in text."""
NAME_WIDTH = 24

SHARE_DIGITS = 4
MONEY_DIGITS = 2
STAT_DIGITS = 2


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
        days = plural(n, "day")
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


def last_active(member: MemberStatus) -> str:
    """When a member was last active: "last active 3 days ago", "never active"."""
    days = member.days_since_active
    return "never active" if days is None else f"last active {fmt_ago(days)}"


@dataclass(frozen=True)
class Figure:
    """One key figure: its label, value, change against 7 days earlier and a note on what it counts."""

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
    return fmt_change(getattr(before, field), getattr(now, field), digits=1)


def key_figures(report: Report) -> list[Figure]:
    """The key figures of the report, in the order shown."""
    s = report.summary
    mean = s.messages_per_active_member_mean
    std = s.messages_per_active_member_std
    per_member = f"{fmt_number(mean, 1)} ± {fmt_number(std, 1)}" if mean is not None else DASH
    return [
        Figure("Members", fmt_int(report.members)),
        Figure("DAU", fmt_int(s.dau), _daily_change(report, "dau"), "active on the day"),
        Figure("WAU", fmt_int(s.wau), _daily_change(report, "wau"), "active in the last 7 days"),
        Figure("MAU", fmt_int(s.mau), _daily_change(report, "mau"), "active in the last 28 days"),
        Figure("Stickiness", fmt_pct(s.stickiness, 1), note="mean DAU / MAU over 28 days"),
        Figure("Messages 7d / 28d", f"{fmt_int(s.messages_7d)} / {fmt_int(s.messages_28d)}"),
        Figure("Reactions 28d", fmt_int(s.reactions_28d)),
        Figure("Communicators 28d", fmt_int(s.communicators_28d), note="≥ 3 messages in 28 days"),
        Figure("Active channels 28d", fmt_int(s.active_channels_28d)),
        Figure("Messages per member 28d", per_member, note="mean ± sd over active members"),
        Figure(
            "Activation",
            fmt_pct(report.activation_rate, 1),
            note="joined in last 4 weeks, ≥ 3 msgs in 7 days",
        ),
    ]


@dataclass(frozen=True)
class WeekOverWeek:
    """The two weeks compared, the heading that names them, and one row per figure (label, before, after, change)."""

    previous: WeekStats
    current: WeekStats
    heading: str
    rows: list[tuple[str, str, str, str]]


def week_over_week(report: Report) -> WeekOverWeek | None:
    """The week-over-week comparison; None with too few weeks (see :func:`week_comparison`)."""
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
        rows.append((label, fmt_int(a), fmt_int(b), fmt_change(a, b, digits=1)))
    return WeekOverWeek(prev, cur, heading, rows)


def week_row(w: WeekStats) -> list[str]:
    """A row of the weekly activity table (:data:`WEEK_HEADERS`)."""
    return [
        w.week,
        w.start.isoformat(),
        fmt_int(w.active),
        fmt_int(w.new),
        fmt_int(w.left),
        fmt_int(w.messages),
        fmt_int(w.reactions),
        fmt_int(w.communicators),
        fmt_int(w.active_channels),
    ]


WEEK_HEADERS = ["Week", "Monday", "Active", "New", "Left", "Messages", "Reactions", "Communicators", "Channels"]


def cohort_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """The retention table of the newest cohorts: headers and rows."""
    cohorts = sorted(report.cohorts, key=lambda c: c.start)[-TEXT_COHORTS:]
    headers = ["Cohort", "Size", "Activation", *(f"k={k}" for k in range(RETENTION_WEEKS))]
    rows = []
    for c in cohorts:
        cells = [fmt_pct(r, 0) for r in c.retention[:RETENTION_WEEKS]]
        cells += [""] * (RETENTION_WEEKS - len(cells))
        rows.append([c.cohort, fmt_int(c.size), fmt_pct(c.activation_rate, 1), *cells])
    return headers, rows


TOP_HEADERS = ["#", "Name", "Platform", "Score", "Messages 28d", "Segment", "Last active"]


def segment_name(name: str | None) -> str:
    """A segment as shown: "at risk" for ``at_risk``; "–" for none."""
    return DASH if not name else clean_name(name).replace("_", " ")


def top_row(rank: int, m: MemberStatus) -> list[str]:
    """A row of the top members table (:data:`TOP_HEADERS`); the name uncleaned (each renderer cleans it)."""
    return [
        str(rank),
        m.name,
        m.platform,
        fmt_number(m.score, 1),
        fmt_int(m.messages_28d),
        segment_name(m.segment),
        fmt_ago(m.days_since_active),
    ]


COURSE_HEADERS = ["Course", "Cur.", "Sales", "Buyers", "Refunds", "Net to date", "Refund rate", "Elasticity"]


def course_row(c: CourseSales) -> list[str]:
    """A row of the courses table (:data:`COURSE_HEADERS`)."""
    return [
        c.title or c.course,
        c.currency,
        fmt_int(c.sales),
        fmt_int(c.buyers),
        fmt_int(c.refunds),
        fmt_money(c.net, c.currency),
        fmt_pct(c.refund_rate, 1),
        fmt_number(c.arc_elasticity, 2),
    ]


def price_points_text(c: CourseSales) -> str:
    """A course's prices and sales at each: "49.00 EUR × 3, 59.00 EUR × 1"."""
    points = sorted(c.price_points, key=lambda p: p.price)
    return ", ".join(f"{fmt_money(p.price, c.currency)} × {fmt_int(p.sales)}" for p in points)


def commerce_line(commerce: CommerceSummary) -> list[str]:
    """The commerce summary as phrases: buyers and conversion, refund rate, days to purchase, buyer retention."""
    median = fmt_number(commerce.median_days_to_first_purchase, 1)
    return [
        f"Buyers {fmt_int(commerce.buyers)} of {plural(commerce.members, 'member')} "
        f"({fmt_pct(commerce.conversion, 1)})",
        f"refund rate {fmt_pct(commerce.refund_rate, 1)}",
        f"median days to first purchase {median}",
        f"buyers active again within 30 days {fmt_pct(commerce.buyer_retention_30d, 1)}",
    ]


def net_by_currency(commerce: CommerceSummary) -> dict[str, float]:
    """Net revenue to date per currency, by currency code."""
    totals: dict[str, float] = {}
    for c in commerce.courses:
        totals[c.currency] = totals.get(c.currency, 0.0) + c.net
    return dict(sorted(totals.items()))


def revenue_rows(report: Report, commerce: CommerceSummary, last: int) -> tuple[list[str], list[list[str]]]:
    """Net revenue of the ``last`` weeks, one column per currency: headers and rows."""
    currencies = sorted({w.currency for w in commerce.revenue_weeks})
    net = {(w.start, w.currency): w.net for w in commerce.revenue_weeks}
    starts = sorted({w.start for w in weeks_in_range(report)} | {w.start for w in commerce.revenue_weeks})
    rows = [
        [week_label(start), *(fmt_money(net.get((start, cur), 0.0), cur) for cur in currencies)]
        for start in starts[-last:]
    ]
    return ["Week", *(f"Net {cur}" for cur in currencies)], rows


CONVERSION_HEADERS = ["Cohort", "Size", "Buyers", "Conversion"]


def conversion_rows(commerce: CommerceSummary) -> list[list[str]]:
    """The "Buyers by join cohort" rows: cohort, size, buyers, conversion."""
    return [
        [c.cohort, fmt_int(c.size), fmt_int(c.buyers), fmt_pct(c.conversion, 1)] for c in commerce.cohort_conversion
    ]


LTV_HEADERS = ["Join month", "Members", "Cur.", "Buyers", "Net to date", "Per member"]


def ltv_rows(commerce: CommerceSummary, *, newest_first: bool = False) -> list[list[str]]:
    """The "Revenue per member by join month" rows (:data:`LTV_HEADERS`), currencies alphabetically per month."""
    cohorts = sorted(commerce.ltv_cohorts, key=lambda c: (-c.start.toordinal() if newest_first else 0, c.start))
    return [
        [
            c.cohort,
            fmt_int(c.members),
            c.currency,
            fmt_int(c.buyers),
            fmt_money(c.net, c.currency),
            fmt_money(c.per_member, c.currency),
        ]
        for c in cohorts
    ]


def subscription_line(subscriptions: SubscriptionSummary) -> list[str]:
    """The subscriptions summary as phrases: active, MRR per currency, renewal rate."""
    s = subscriptions
    mrr = fmt_totals(dict(s.mrr), " · ") if s.mrr else DASH
    return [
        f"Active subscriptions {fmt_int(s.active)} ({plural(s.subscribers, 'member')})",
        f"MRR {mrr}",
        f"renewal rate {fmt_pct(s.renewal_rate, 1)} ({fmt_int(s.renewed)} of {fmt_int(s.renewals_due)} renewed)",
    ]


SUBSCRIPTION_WEEK_HEADERS = ["Week", "New", "Churned", "Active at end"]


def subscription_week_rows(subscriptions: SubscriptionSummary, last: int) -> list[list[str]]:
    """New, churned and active subscriptions of the ``last`` weeks (:data:`SUBSCRIPTION_WEEK_HEADERS`)."""
    return [[w.week, fmt_int(w.new), fmt_int(w.churned), fmt_int(w.active)] for w in subscriptions.weeks[-last:]]


SUBSCRIPTION_COURSE_HEADERS = ["Course", "Active", "New", "Churned", "Renewals due", "Renewal rate"]


def subscription_course_rows(subscriptions: SubscriptionSummary) -> list[list[str]]:
    """Per monthly course over the range (:data:`SUBSCRIPTION_COURSE_HEADERS`); the title uncleaned."""
    return [
        [
            c.title or c.course,
            fmt_int(c.active),
            fmt_int(c.new),
            fmt_int(c.churned),
            fmt_int(c.renewals_due),
            fmt_pct(c.renewal_rate, 1),
        ]
        for c in subscriptions.courses
    ]
