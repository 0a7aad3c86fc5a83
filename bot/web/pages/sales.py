"""``/sales``, ``/sales.csv``, ``/subscriptions.csv`` and ``/ltv.csv``: what sells, to whom, and what came back.

Revenue by week, course and currency; the funnel to buyers; conversion per cohort; buyer retention; refunds; price
points; subscriptions (active, MRR, new and churned per week, renewal rate) and revenue per member by join month.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from analytics.commerce import revenue_by_course
from analytics.formatting import DASH, fmt_int, fmt_money, fmt_number, fmt_pct, plural
from analytics.render.shared import (
    COURSE_HEADERS,
    LTV_HEADERS,
    SUBSCRIPTION_COURSE_HEADERS,
    SUBSCRIPTION_WEEK_HEADERS,
    conversion_rows,
    course_row,
    ltv_rows,
    price_points_text,
    subscription_course_rows,
    subscription_week_rows,
)
from analytics.results import Report, RevenueLine
from analytics.weeks import week_label, week_start
from bot.web.data import DashboardData
from bot.web.pages.common import context, csv_response, dashboard_data, page_values, render

WEEKLY_LINES = "sales:weekly_lines"  # DashboardData.memo key


def weekly_lines(data: DashboardData, request: web.Request) -> list[tuple[date, RevenueLine]]:
    """Sales per ISO week of the range and course and currency (refunds counted in the week they happened).

    Computed once per set of figures (the page and the CSV share it): each week scans the whole ledger, which is
    about 100 ms for a range of 13 weeks and 6,000 purchases.
    """
    cached: list[tuple[date, RevenueLine]] | None = data.memo.get(WEEKLY_LINES)
    if cached is None:
        cached = data.memo[WEEKLY_LINES] = _weekly_lines(data, context(request).settings.community.tz)
    return cached


def _weekly_lines(data: DashboardData, tz: ZoneInfo) -> list[tuple[date, RevenueLine]]:
    out: list[tuple[date, RevenueLine]] = []
    start = week_start(data.range.start)
    while start <= data.range.end:
        end = min(start + timedelta(days=7), data.range.end + timedelta(days=1))
        lines = revenue_by_course(
            data.ledger,
            start=datetime.combine(start, datetime.min.time(), tzinfo=tz),
            end=datetime.combine(end, datetime.min.time(), tzinfo=tz),
        )
        out.extend((start, line) for line in lines)
        start += timedelta(days=7)
    return out


def _amount(value: float, currency: str) -> float:
    return round(value, 0 if currency == "XTR" else 2)


def subscription_values(report: Report) -> dict[str, object] | None:
    """The Subscriptions section of ``/sales``: figures, the weekly chart and table, the courses; None without any."""
    s = report.subscriptions
    if s is None:
        return None
    labels = [w.week for w in s.weeks]
    figure = {
        "data": [
            # The colours of the report's PNG chart (analytics.charts): new blue, churned red, active green.
            {"type": "bar", "name": "New", "x": labels, "y": [w.new for w in s.weeks], "marker": {"color": "#3a7dc9"}},
            {
                "type": "bar",
                "name": "Churned",
                "x": labels,
                "y": [-w.churned for w in s.weeks],
                "marker": {"color": "#d1495b"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Active at week end",
                "x": labels,
                "y": [w.active for w in s.weeks],
                "line": {"color": "#2ca02c"},
            },
        ],
        "layout": {"title": {"text": "Subscriptions per week"}, "barmode": "relative"},
    }
    return {
        "active": fmt_int(s.active),
        "subscribers": plural(s.subscribers, "member"),
        # One card per currency: money is never added across currencies, and two amounts do not fit one card.
        "mrr": [(currency, fmt_money(amount, currency)) for currency, amount in s.mrr] or [("", DASH)],
        "renewal_rate": fmt_pct(s.renewal_rate, 1),
        "renewed": f"{fmt_int(s.renewed)} of {fmt_int(s.renewals_due)} renewed",
        "figure": figure,
        "week_headers": SUBSCRIPTION_WEEK_HEADERS,
        "weeks": list(reversed(subscription_week_rows(s, len(s.weeks)))),
        "course_headers": SUBSCRIPTION_COURSE_HEADERS,
        "courses": subscription_course_rows(s),
    }


async def sales_page(request: web.Request) -> web.Response:
    """``/sales``."""
    data = await dashboard_data(request)
    commerce = data.report.commerce
    lines = weekly_lines(data, request)
    weeks = []
    start = week_start(data.range.start)
    while start <= data.range.end:
        weeks.append(start)
        start += timedelta(days=7)
    figures = []
    for currency in sorted({line.currency for _, line in lines}):
        courses = sorted({line.title for _, line in lines if line.currency == currency})
        net = {(w, line.title): float(line.net) for w, line in lines if line.currency == currency}
        figures.append(
            {
                "currency": currency,
                "figure": {
                    "data": [
                        {
                            "type": "bar",
                            "name": title,
                            "x": [week_label(w) for w in weeks],
                            "y": [_amount(net.get((w, title), 0.0), currency) for w in weeks],
                            "hovertemplate": f"{title}, %{{x}}: %{{y}} {currency}<extra></extra>",
                        }
                        for title in courses
                    ],
                    "layout": {"title": {"text": f"Net revenue per week ({currency})"}, "barmode": "relative"},
                },
            }
        )
    week_rows = [
        [
            week_label(w),
            line.title,
            line.currency,
            fmt_int(line.sales),
            fmt_int(line.refunds),
            fmt_money(line.gross, line.currency),
            fmt_money(line.refunded, line.currency),
            fmt_money(line.net, line.currency),
        ]
        for w, line in reversed(lines)
    ]
    tz = context(request).settings.community.tz
    first = datetime.combine(week_start(data.range.start), datetime.min.time(), tzinfo=tz)
    last = datetime.combine(data.range.end + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    refunds = [
        [
            r.title,
            fmt_money(r.amount_major, r.currency),
            r.purchased_at.astimezone(tz).strftime("%Y-%m-%d"),
            r.refunded_at.astimezone(tz).strftime("%Y-%m-%d"),
        ]
        for r in data.ledger
        if r.refunded_at is not None and first <= r.refunded_at < last
    ]
    funnel = None
    if commerce is not None and commerce.members:
        funnel = {
            "data": [
                {
                    "type": "funnel",
                    "y": ["Members", "Buyers"],
                    "x": [commerce.members, commerce.buyers],
                    "textinfo": "value+percent initial",
                }
            ],
            "layout": {"title": {"text": "Members → buyers"}, "margin": {"l": 80}},
        }
    return render(
        request,
        "sales.html",
        title="Sales",
        commerce=commerce,
        revenue_figures=figures,
        week_rows=week_rows,
        course_headers=[*COURSE_HEADERS, "Price points"],
        course_rows=[] if commerce is None else [[*course_row(c), price_points_text(c)] for c in commerce.courses],
        conversion_headers=["Cohort", "Size", "Buyers", "Conversion"],
        conversion=[] if commerce is None else conversion_rows(commerce),
        refunds=refunds,
        funnel=funnel,
        buyers=fmt_int(commerce.buyers) if commerce else "0",
        members=fmt_int(commerce.members) if commerce else "0",
        conversion_rate=fmt_pct(commerce.conversion, 1) if commerce else "–",
        refund_rate=fmt_pct(commerce.refund_rate, 1) if commerce else "–",
        buyer_retention=fmt_pct(commerce.buyer_retention_30d, 1) if commerce else "–",
        buyer_retention_eligible=fmt_int(commerce.buyer_retention_eligible) if commerce else "0",
        median_days=fmt_number(commerce.median_days_to_first_purchase, 1) if commerce else "–",
        subscriptions=subscription_values(data.report),
        ltv_headers=LTV_HEADERS,
        ltv=[] if commerce is None else ltv_rows(commerce, newest_first=True),
        **page_values(request, data),
    )


async def sales_csv(request: web.Request) -> web.Response:
    """``/sales.csv``: one row per ISO week of the range, course and currency with sales."""
    data = await dashboard_data(request)
    return csv_response(
        f"sales-{data.range.start}-{data.range.end}.csv",
        ["week", "course", "title", "currency", "sales", "buyers", "refunds", "gross", "refunded", "net"],
        [
            [
                week_label(w),
                line.course_key,
                line.title,
                line.currency,
                line.sales,
                line.buyers,
                line.refunds,
                str(line.gross),
                str(line.refunded),
                str(line.net),
            ]
            for w, line in weekly_lines(data, request)
        ],
    )


async def subscriptions_csv(request: web.Request) -> web.Response:
    """``/subscriptions.csv``: one row per ISO week of the range: new, churned and active subscriptions."""
    data = await dashboard_data(request)
    s = data.report.subscriptions
    return csv_response(
        f"subscriptions-{data.range.start}-{data.range.end}.csv",
        ["week", "start", "new", "churned", "active_at_end"],
        [] if s is None else [[w.week, w.start.isoformat(), w.new, w.churned, w.active] for w in s.weeks],
    )


async def ltv_csv(request: web.Request) -> web.Response:
    """``/ltv.csv``: net revenue to date per member of each join month and currency (the last 12 months)."""
    data = await dashboard_data(request)
    commerce = data.report.commerce
    return csv_response(
        f"ltv-{data.range.end}.csv",
        ["join_month", "currency", "members", "buyers", "net", "per_member"],
        []
        if commerce is None
        else [
            [c.cohort, c.currency, c.members, c.buyers, _amount(c.net, c.currency), round(c.per_member or 0.0, 2)]
            for c in commerce.ltv_cohorts
        ],
    )
