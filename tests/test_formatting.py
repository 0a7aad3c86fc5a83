"""One way to write a figure (analytics.formatting): the wording every output shares."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

from analytics.formatting import (
    fmt_ago,
    fmt_change,
    fmt_day,
    fmt_money,
    fmt_number,
    fmt_pct,
    fmt_totals,
    fmt_weekday_iso,
    plural,
)
from analytics.privacy import MEMBERS, OWNERS


def test_a_change_is_signed_with_its_share_and_no_move_is_no_change() -> None:
    assert fmt_change(24, 26) == "+2, +8%"
    assert fmt_change(38, 41, digits=1) == "+3, +7.9%"  # the reports' precision
    assert fmt_change(6, 5, digits=1) == "−1, −16.7%"  # the minus sign, not a hyphen
    assert fmt_change(0, 3) == "+3"  # no share of zero
    assert fmt_change(7, 7) == fmt_change(0, 0) == "no change"


def test_a_change_of_small_groups_is_hidden_from_members_only() -> None:
    assert fmt_change(2, 3, audience=MEMBERS) == "–"
    assert fmt_change(2, 3, audience=OWNERS) == "+1, +50%"


def test_money_names_stars_and_keeps_codes_of_other_currencies() -> None:
    assert fmt_money(Decimal(1500), "XTR") == "1,500 Stars"
    assert fmt_money(4500.0, "XTR") == "4,500 Stars"  # the reports' floats read the same
    assert fmt_money(Decimal("-49"), "EUR") == "−49.00 EUR"
    assert fmt_money(1500.0, "JPY") == "1,500 JPY"  # no minor unit
    assert fmt_money(None, "EUR") == fmt_money(math.nan, "EUR") == "–"
    assert fmt_totals({"XTR": Decimal(500), "EUR": Decimal(98)}) == "98.00 EUR, 500 Stars"
    assert fmt_totals({}) == "nothing"


def test_undefined_values_are_a_dash() -> None:
    assert fmt_pct(None) == fmt_pct(math.inf) == fmt_number(math.nan) == "–"
    assert fmt_pct(-0.035, 1) == "−3.5%"
    assert fmt_number(1234.567) == "1,234.57"


def test_days_in_chat_and_in_reports() -> None:
    assert fmt_day(date(2024, 3, 4)) == "Mon 4 Mar 2024"
    assert fmt_weekday_iso(date(2024, 3, 4)) == "Mon 2024-03-04"


def test_a_count_agrees_with_its_word() -> None:
    assert [plural(n, "message") for n in (0, 1, 2, 1234)] == [
        "0 messages",
        "1 message",
        "2 messages",
        "1,234 messages",
    ]
    assert plural(1, "person", "people") == "1 person" and plural(3, "person", "people") == "3 people"
    assert plural(1, "active day") == "1 active day" and plural(7, "active day") == "7 active days"
    # A verb that agrees with a count shown elsewhere: "Your 1 purchase stays", "Your 2 purchases stay".
    assert [plural(n, "stays", "stay", with_count=False) for n in (1, 2)] == ["stays", "stay"]
    assert [fmt_money(Decimal(n), "XTR") for n in (1, 2)] == ["1 Star", "2 Stars"]
    assert [fmt_ago(d) for d in (None, 0, 1, 12)] == ["never", "today", "1 day ago", "12 days ago"]
