"""What commands and the digest say alike: retention and activation, conversion, course prices, revenue windows.

Numbers, changes, money and days are formatted by :mod:`analytics.formatting`; revenue is computed by
:mod:`analytics.commerce`.

Counts of members follow the audience's rule (``analytics.privacy``): exact for owners and admins, "<5" for 1 to 4
in what members can see; counts of events and money are shown exactly to both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from analytics.formatting import fmt_day, fmt_int, fmt_members, fmt_money, fmt_pct, plural
from analytics.privacy import Audience, members_counted
from analytics.results import Cohort, Report
from bot.config import BILLING_PERIOD_DAYS, CourseSettings
from storage.ledger import LedgerRow


def fmt_conversion(rows: Iterable[LedgerRow], member_ids: frozenset[int], *, end: datetime) -> str:
    """The conversion line: how many of the current members own a course, naming its denominator.

    Owners are members with a purchase made before ``end`` and not refunded before it; the denominator is the
    members on the day (docs/metrics.md, "Members"), the same number ``/report`` shows as "Members".

    Args:
        rows: The ledger.
        member_ids: The current members.
        end: The instant the figures are for.

    Returns:
        E.g. "3 of 44 members own a course (6.8% of members)".
    """
    owners = {
        r.member_id
        for r in rows
        if r.member_id in member_ids and r.purchased_at < end and (r.refunded_at is None or r.refunded_at >= end)
    }
    n = len(member_ids)
    share = fmt_pct(len(owners) / n if n else None, 1)
    verb = plural(len(owners), "owns", "own", with_count=False)
    return f"{fmt_int(len(owners))} of {plural(n, 'member')} {verb} a course ({share} of members)"


def course_prices(course: CourseSettings, platform: str | None = None) -> str:
    """A course's price as a member on ``platform`` can pay it.

    Telegram sells in Stars (an invoice) and falls back to the money price of the checkout page; Discord shows the
    money price, or its shop when the course is a Discord SKU; without a platform every price is listed.
    """
    stars = fmt_money(Decimal(course.price_stars), "XTR") if course.price_stars is not None else None
    money = fmt_money(course.price, course.currency) if course.price is not None and course.currency else None
    if platform == "telegram":
        prices = [stars or money]
    elif platform == "discord":
        prices = [money or ("in Discord's shop" if course.discord_sku_id is not None else None)]
    else:
        prices = [stars, money]
    text = " or ".join(p for p in prices if p)
    if not text:
        return "ask an admin"
    # A monthly course is charged again every period: say so wherever its price is shown.
    return f"{text} every {BILLING_PERIOD_DAYS} days" if course.billing == "monthly" else text


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant a local day starts."""
    return datetime.combine(day, time(0), tzinfo=tz)


def week_bounds(day: date) -> tuple[date, date]:
    """The Monday and the Sunday of the ISO week containing ``day``."""
    monday = day - timedelta(days=day.weekday())
    return monday, monday + timedelta(days=6)


def revenue_windows(today: date, tz: ZoneInfo) -> list[tuple[str, datetime | None]]:
    """The windows revenue is shown for: this ISO week, the last 4 weeks (this one included), all time.

    Returns:
        ``(label, first instant)`` pairs; all time has no first instant.
    """
    monday = today - timedelta(days=today.weekday())
    four = monday - timedelta(weeks=3)
    return [
        (f"This week (since {fmt_day(monday)})", local_midnight(monday, tz)),
        (f"Last 4 weeks (since {fmt_day(four)})", local_midnight(four, tz)),
        ("All time", None),
    ]


def latest_cohort(report: Report) -> Cohort | None:
    """The most recent join cohort whose second week is over (the retention headline)."""
    observed = [c for c in report.cohorts if len(c.retention) >= 2]
    return observed[-1] if observed else None


def activation_share(report: Report, audience: Audience) -> float | None:
    """The report's activation rate as ``audience`` may see it (None when hidden or undefined)."""
    rate, eligible = report.activation_rate, report.activation_eligible
    return audience.share(rate, eligible, members_counted(rate, eligible))


def retention_sentence(report: Report, audience: Audience) -> str | None:
    """The retention headline of ``/report`` and the digest, for ``audience``; None without an observed cohort.

    E.g. "Retention: of the 10 who joined in 2024-W08, 40% came back in their second week."
    """
    cohort = latest_cohort(report)
    if cohort is None:
        return None
    rate = cohort.second_week_retention
    share = audience.share(rate, cohort.size, members_counted(rate, cohort.size))
    joined = f"Retention: of the {fmt_members(cohort.size, audience)} who joined in {cohort.cohort}, "
    if share is None:
        return joined + "how many came back in their second week is not shown (fewer than 5 either way)."
    return joined + f"{fmt_pct(share)} came back in their second week."


def activation_sentence(report: Report, audience: Audience) -> str | None:
    """The activation headline of ``/report`` and the digest, for ``audience``; None without recent joiners.

    E.g. "Activation: 40% of the 5 recent joiners posted 3+ messages in their first 7 days."
    """
    if not report.activation_eligible:
        return None
    activation = activation_share(report, audience)
    joiners = f"the {fmt_members(report.activation_eligible, audience)} recent joiners"
    if activation is None:
        return (
            f"Activation: how many of {joiners} posted 3+ messages in their first 7 days is not shown "
            "(fewer than 5 either way)."
        )
    return f"Activation: {fmt_pct(activation)} of {joiners} posted 3+ messages in their first 7 days."
