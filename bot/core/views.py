"""Formatting shared by commands and the digest: numbers, changes, money, days, and revenue per time window.

Counts of members follow the audience's rule (``analytics.privacy``): exact for owners and admins, "<5" for 1 to 4
in what members can see; counts of events and money are shown exactly to both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from analytics.privacy import Audience
from bot.config import CourseSettings
from storage.ledger import LedgerRow

DASH = "–"
MINUS = "−"


def fmt_int(n: int) -> str:
    """An exact count with thousands separators."""
    return f"{n:,}"


def fmt_members(n: int, audience: Audience) -> str:
    """A count of members for ``audience``: exact for owners, "<5" for 1 to 4 for members; thousands separators."""
    return audience.count(n)


def fmt_pct(share: float | None, digits: int = 0) -> str:
    """A share as a percentage; "–" when undefined."""
    if share is None or not math.isfinite(share):
        return DASH
    text = f"{share * 100:.{digits}f}%"
    return MINUS + text[1:] if text.startswith("-") else text


def fmt_change(previous: int, current: int, *, audience: Audience | None = None) -> str:
    """A change such as "+12, +8%", "−3, −20%" or "no change".

    Args:
        previous: The earlier count.
        current: The later count.
        audience: For counts of members, who will see it: "–" when either count is hidden from them (the difference
            would reveal it). None for counts of events.
    """
    if audience is not None and audience.hides_change(previous, current):
        return DASH
    change = current - previous
    if change == 0:
        return "no change"
    sign = "+" if change > 0 else MINUS
    text = f"{sign}{abs(change):,}"
    if previous:
        text += f", {sign}{abs(change) / previous * 100:.0f}%"
    return text


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
    verb = "owns" if len(owners) == 1 else "own"
    return f"{fmt_int(len(owners))} of {fmt_int(n)} member{'' if n == 1 else 's'} {verb} a course ({share} of members)"


def fmt_money(amount: Decimal, currency: str) -> str:
    """Money: "1,500 Stars", "49.00 EUR"."""
    text = f"{amount:,.0f} Stars" if currency == "XTR" else f"{amount:,.2f} {currency}"
    return MINUS + text[1:] if text.startswith("-") else text


def fmt_day(day: date) -> str:
    """A day as "Mon 4 Mar 2024"."""
    return f"{day:%a} {day.day} {day:%b %Y}"


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
    return " or ".join(p for p in prices if p) or "ask an admin"


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant a local day starts."""
    return datetime.combine(day, time(0), tzinfo=tz)


@dataclass(frozen=True, slots=True)
class RevenueLine:
    """Sales of one course in one currency within a time window (refunds counted when they happened)."""

    course_key: str
    title: str
    currency: str
    sales: int
    buyers: int
    refunds: int
    gross: Decimal
    refunded: Decimal

    @property
    def net(self) -> Decimal:
        """Gross minus refunds made in the window."""
        return self.gross - self.refunded


def revenue_by_course(rows: Iterable[LedgerRow], *, start: datetime | None, end: datetime) -> list[RevenueLine]:
    """Revenue per course and currency: sales made in [start, end), minus refunds made in [start, end).

    Args:
        rows: The ledger.
        start: The window's first instant; None for all time.
        end: The instant after the window.

    Returns:
        One line per course and currency with a sale or a refund in the window, by course then currency.
    """

    def inside(at: datetime | None) -> bool:
        return at is not None and (start is None or at >= start) and at < end

    acc: dict[tuple[str, str], _Accumulator] = {}
    for row in rows:
        sold, refunded = inside(row.purchased_at), inside(row.refunded_at)
        if not (sold or refunded):
            continue
        entry = acc.setdefault((row.course_key, row.currency), _Accumulator(row.title))
        if sold:
            entry.sales += 1
            entry.gross += row.amount_major
            # A forgotten buyer still counts once per purchase.
            entry.buyers.add(row.member_id if row.member_id is not None else f"purchase-{row.purchase_id}")
        if refunded:
            entry.refunds += 1
            entry.refunded += row.amount_major
    return [
        RevenueLine(
            course_key=course_key,
            title=entry.title,
            currency=currency,
            sales=entry.sales,
            buyers=len(entry.buyers),
            refunds=entry.refunds,
            gross=entry.gross,
            refunded=entry.refunded,
        )
        for (course_key, currency), entry in sorted(acc.items())
    ]


@dataclass(slots=True)
class _Accumulator:
    title: str
    sales: int = 0
    refunds: int = 0
    gross: Decimal = Decimal(0)
    refunded: Decimal = Decimal(0)
    buyers: set[int | str] = field(default_factory=set)


def totals_by_currency(lines: Sequence[RevenueLine]) -> dict[str, Decimal]:
    """Net revenue per currency over the lines."""
    out: dict[str, Decimal] = {}
    for line in lines:
        out[line.currency] = out.get(line.currency, Decimal(0)) + line.net
    return out


def fmt_totals(totals: dict[str, Decimal]) -> str:
    """Net totals per currency: "98.00 EUR, 1,500 Stars"; "nothing" when empty."""
    if not totals:
        return "nothing"
    return ", ".join(fmt_money(amount, currency) for currency, amount in sorted(totals.items()))


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
