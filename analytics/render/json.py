"""The report as JSON: the documented schema (docs/metrics.md, section "Report JSON"), exact numbers, never "<5"."""

from __future__ import annotations

import json

from analytics.formatting import finite, money_digits
from analytics.render.questions import questions_json
from analytics.render.shared import (
    MONEY_DIGITS,
    SCHEMA_VERSION,
    SHARE_DIGITS,
    STAT_DIGITS,
    data_notices,
    weeks_in_range,
)
from analytics.results import (
    CommerceSummary,
    CourseSales,
    MemberStatus,
    Report,
    RevenueWeek,
    SubscriptionSummary,
    WeekStats,
)


def _rounded(value: float | None, digits: int) -> float | None:
    value = finite(value)
    return None if value is None else round(value, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


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


def _amounts_json(sales: CourseSales | RevenueWeek) -> dict[str, object]:
    """Gross, refunded and net, rounded as the currency is written (no decimals for Stars)."""
    digits = money_digits(sales.currency)
    return {
        "gross": _rounded(sales.gross, digits),
        "refunded": _rounded(sales.refunded, digits),
        "net": _rounded(sales.net, digits),
    }


def _course_json(course: CourseSales) -> dict[str, object]:
    return {
        "course": course.course,
        "title": course.title,
        "currency": course.currency,
        "sales": course.sales,
        "buyers": course.buyers,
        "refunds": course.refunds,
        **_amounts_json(course),
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
                **_amounts_json(w),
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
        "ltv_cohorts": [
            {
                "cohort": c.cohort,
                "start": c.start.isoformat(),
                "currency": c.currency,
                "members": c.members,
                "buyers": c.buyers,
                "net": _rounded(c.net, money_digits(c.currency)),
                "per_member": _rounded(c.per_member, MONEY_DIGITS),
            }
            for c in commerce.ltv_cohorts
        ],
    }


def _subscriptions_json(s: SubscriptionSummary) -> dict[str, object]:
    return {
        "active": s.active,
        "subscribers": s.subscribers,
        "mrr": [{"currency": currency, "amount": _rounded(amount, MONEY_DIGITS)} for currency, amount in s.mrr],
        "renewals_due": s.renewals_due,
        "renewed": s.renewed,
        "renewal_rate": _share_json(s.renewal_rate),
        "weeks": [
            {"week": w.week, "start": w.start.isoformat(), "new": w.new, "churned": w.churned, "active": w.active}
            for w in s.weeks
        ],
        "courses": [
            {
                "course": c.course,
                "title": c.title,
                "active": c.active,
                "new": c.new,
                "churned": c.churned,
                "renewals_due": c.renewals_due,
                "renewal_rate": _share_json(c.renewal_rate),
            }
            for c in s.courses
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
        "subscriptions": None if report.subscriptions is None else _subscriptions_json(report.subscriptions),
        "hour_of_week": [
            {"weekday": h.weekday, "hour": h.hour, "messages": h.messages, "reactions": h.reactions}
            for h in report.hour_of_week
        ],
        "channels": [
            {
                "channel_id": c.channel_id,
                "name": c.name,
                "parent": c.parent,
                "messages": c.messages,
                "active_members": c.active_members,
                "previous_messages": c.previous_messages,
                "weekly_messages": list(c.weekly_messages),
            }
            for c in report.channels
        ],
        "growth": [
            {"day": g.day.isoformat(), "joins": g.joins, "leaves": g.leaves, "members": g.members}
            for g in report.growth
        ],
        "questions": None if report.questions is None else questions_json(report.questions),
        "surveys": None if report.surveys is None else report.surveys.to_json(),
    }


def render_json(report: Report) -> str:
    """The report's JSON document: pretty-printed, keys sorted, so the same report gives the same text.

    Args:
        report: The report.

    Returns:
        The JSON text, ending with a newline.
    """
    return json.dumps(report_to_json(report), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
