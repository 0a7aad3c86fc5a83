"""The one family of number, change, money and date formatters every output uses.

Chat replies, the digest, the console and the text and HTML reports all format through here, so a figure reads the
same wherever an owner sees it. The wording chosen once for all of them:

* A missing or undefined value is an en dash, "–" (:data:`DASH`); never "nan", "None" or an empty cell.
* Negative numbers use the typographic minus "−" (:data:`MINUS`), not the hyphen: "−3", "−20.0%", "−49.00 EUR".
* Counts have thousands separators: "1,234".
* A change between two counts is signed, with its relative size when the earlier count is not zero:
  "+12, +8%", "−3, −20%", "+1" (from zero); a count that did not move is "no change" (never "±0").
* Money is the amount, then the currency: "1,500 Stars" for Telegram Stars (currency code ``XTR``: owners know the
  Stars, not the code), "49.00 EUR" otherwise; currencies without a minor unit (Stars, JPY, …) have no decimals.
  Tables with a currency column still show the code (``XTR``), which is what it is.
* A count agrees with its word: "1 message", "2 messages" (:func:`plural`), never "message(s)".
* Days: "Mon 4 Mar 2024" in chat (:func:`fmt_day`), "Mon 2024-03-04" in reports, which sort and compare dates
  (:func:`fmt_weekday_iso`).

This module imports nothing from ``bot`` or ``storage``: analytics must not, and the bot may import analytics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from analytics.privacy import Audience

DASH = "–"
"""A value that is missing, undefined or hidden."""
MINUS = "−"
"""The minus sign of negative numbers (U+2212)."""
NO_CHANGE = "no change"
"""A change of zero."""

ZERO_DECIMAL_CURRENCIES = frozenset({"XTR", "JPY", "KRW", "CLP", "ISK", "VND"})
"""Currencies without a minor unit: amounts are shown (and rounded in JSON) without decimals."""
MONEY_DIGITS = 2
"""Decimals of the other currencies."""
CURRENCY_NAMES = {"XTR": "Stars"}
"""How a currency is named after an amount, where its code is not what people call it."""
CURRENCY_NAMES_ONE = {"XTR": "Star"}
"""The same names after an amount of exactly one: "1 Star"."""


def finite(value: float | None) -> float | None:
    """``value``, or None when it is None, NaN or infinite."""
    return value if value is not None and math.isfinite(value) else None


def signed(text: str) -> str:
    """A formatted number with a leading hyphen turned into the minus sign."""
    return MINUS + text[1:] if text.startswith("-") else text


def fmt_int(n: int) -> str:
    """An exact count with thousands separators: "1,234"."""
    return f"{n:,}"


def plural(n: int, singular: str, many: str | None = None, *, with_count: bool = True) -> str:
    """A count and the word that agrees with it: "1 message", "2 messages", "1,234 people", "0 replies".

    Every count in an answer goes through here, so none reads "1 purchases" or "message(s)".

    Args:
        n: The count.
        singular: The word for exactly one ("message", "active day", "stays").
        many: The word for any other count, when it is not ``singular`` + "s" ("people", "replies", "stay").
        with_count: False for the word alone, e.g. a verb that agrees with a count shown elsewhere.
    """
    word = singular if n == 1 else (many if many is not None else singular + "s")
    return f"{fmt_int(n)} {word}" if with_count else word


def fmt_members(n: int, audience: Audience) -> str:
    """A count of members for ``audience``: exact for owners, "<5" for 1 to 4 for members; thousands separators."""
    return audience.count(n)


def fmt_pct(share: float | None, digits: int = 0) -> str:
    """A share as a percentage with ``digits`` decimals: "12%", "−3.5%"; "–" when undefined."""
    share = finite(share)
    return DASH if share is None else signed(f"{share * 100:.{digits}f}%")


def fmt_number(value: float | None, digits: int = 2) -> str:
    """A statistic with thousands separators and ``digits`` decimals: "1,234.57"; "–" when undefined."""
    value = finite(value)
    return DASH if value is None else signed(f"{value:,.{digits}f}")


def fmt_change(previous: int, current: int, *, digits: int = 0, audience: Audience | None = None) -> str:
    """A change such as "+12, +8%", "−3, −20%", "+1" (from zero) or "no change".

    Args:
        previous: The earlier count.
        current: The later count.
        digits: Decimals of the relative change.
        audience: For counts of members, who will see it: "–" when either count is hidden from them (the difference
            would reveal it). None for counts of events, or for owners' reports.
    """
    if audience is not None and audience.hides_change(previous, current):
        return DASH
    change = current - previous
    if change == 0:
        return NO_CHANGE
    sign = "+" if change > 0 else MINUS
    text = f"{sign}{abs(change):,}"
    if previous:
        text += f", {sign}{abs(change) / previous * 100:.{digits}f}%"
    return text


def money_digits(currency: str) -> int:
    """Decimals shown for an amount in ``currency``: 0 without a minor unit (Stars, JPY, …), else 2."""
    return 0 if currency.upper() in ZERO_DECIMAL_CURRENCIES else MONEY_DIGITS


def fmt_money(amount: Decimal | float | None, currency: str) -> str:
    """Money: "1,500 Stars", "1 Star", "49.00 EUR", "−49.00 EUR"; "–" when undefined."""
    if amount is None or (isinstance(amount, float) and finite(amount) is None):
        return DASH
    text = signed(f"{amount:,.{money_digits(currency)}f}")
    names = CURRENCY_NAMES_ONE if text == "1" else CURRENCY_NAMES
    return f"{text} {names.get(currency.upper(), currency)}"


def fmt_totals(totals: Mapping[str, Decimal | float], separator: str = ", ") -> str:
    """Totals per currency, by currency code: "98.00 EUR, 1,500 Stars"; "nothing" when empty."""
    if not totals:
        return "nothing"
    return separator.join(fmt_money(amount, currency) for currency, amount in sorted(totals.items()))


def fmt_day(day: date) -> str:
    """A day as people write it: "Mon 4 Mar 2024"."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def fmt_weekday_iso(day: date) -> str:
    """A day as reports show it, sortable: "Mon 2024-03-04"."""
    return f"{day:%a} {day.isoformat()}"


def fmt_ago(days: int | None) -> str:
    """How long ago: "today", "1 day ago", "12 days ago"; "never" when None."""
    if days is None:
        return "never"
    if days == 0:
        return "today"
    return f"{plural(days, 'day')} ago"
