"""Commerce metrics on a hand-built ledger; expectations are computed by hand in the comments."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from analytics.commerce import arc_elasticity, commerce_summary, course_sales, revenue_weeks
from analytics.frames import PURCHASES_COLUMNS, empty_frame
from analytics.results import CourseSales, PricePoint
from tests.analytics_frames import member_days, members

BERLIN = ZoneInfo("Europe/Berlin")  # UTC+1 until 2024-03-31
AS_OF = date(2024, 3, 27)  # Wednesday of W13. W10 = 03-04..03-10, W11 = 03-11..03-17, W12 = 03-18..03-24


def purchases(*rows: tuple[int | None, str, float, str, str, str | None]) -> pd.DataFrame:
    """Rows of (member_id or None if forgotten, course, amount, currency, purchased_at UTC, refunded_at UTC)."""
    if not rows:
        return empty_frame(PURCHASES_COLUMNS)
    return pd.DataFrame(
        {
            "purchase_id": range(1, len(rows) + 1),
            "member_id": pd.array([r[0] for r in rows], dtype="Int64"),
            "course": [r[1] for r in rows],
            "title": [r[1].upper() for r in rows],
            "amount": [r[2] for r in rows],
            "currency": [r[3] for r in rows],
            "purchased_at": pd.to_datetime([r[4] for r in rows], utc=True),
            "refunded_at": pd.to_datetime([r[5] for r in rows], utc=True),
        }
    )


MEMBERS = members(
    (1, "2024-03-01 10:00", None),  # W09
    (2, "2024-03-05 10:00", None),  # W10
    (3, "2024-03-06 10:00", None),  # W10, never buys
    (4, "2024-03-12 10:00", None),  # W11, never buys
    (5, "2024-02-01 10:00", "2024-03-20 10:00"),  # left after buying: still a converted member
    (6, "2024-01-05 10:00", None),
)
LEDGER = purchases(
    (1, "py", 100.0, "EUR", "2024-03-04 09:00", None),  # W10
    (2, "py", 100.0, "EUR", "2024-03-10 23:30", "2024-03-19 10:00"),  # Monday 00:30 in Berlin: W11; refund W12
    (5, "py", 60.0, "EUR", "2024-03-12 10:00", None),  # W11
    (None, "py", 60.0, "EUR", "2024-03-20 10:00", None),  # a forgotten member, W12
    (2, "sql", 500.0, "XTR", "2024-03-26 10:00", None),  # W13
    (6, "sql", 500.0, "XTR", "2024-01-10 10:00", None),  # 2024-W02
    (1, "py", 100.0, "EUR", "2024-03-28 10:00", None),  # after as_of: not known yet
    (5, "sql", 500.0, "XTR", "2024-02-10 10:00", "2024-03-30 10:00"),  # W06; the refund is after as_of
)
ACTIVITY = member_days(
    (5, "2024-03-01", 1, 0, 0, 0),  # 20 days after buying on 02-10: retained
    (6, "2024-01-10", 1, 0, 0, 0),  # the purchase day itself does not count
    (6, "2024-02-15", 1, 0, 0, 0),  # 36 days after buying on 01-10: too late
)


def _courses() -> dict[str, CourseSales]:
    return {c.course: c for c in course_sales(LEDGER, timezone=BERLIN, as_of=AS_OF)}


def test_course_sales_net_of_refunds_and_the_r_model() -> None:
    py = _courses()["py"]
    # 4 sales (100, 100 refunded, 60, 60), buyers 1, 2, 5 and one forgotten member.
    assert (py.title, py.currency, py.sales, py.buyers, py.refunds) == ("PY", "EUR", 4, 4, 1)
    assert (py.gross, py.refunded, py.net) == (320.0, 100.0, 220.0)
    assert py.refund_rate == 0.25
    # P = 220 / 4 = 55; T = weeks W10, W11, W12 = 3; N = 4 sales / 3 weeks; R = P × N × T = 220 = net
    assert py.price == 55.0
    assert py.sale_weeks == 3
    assert py.sales_per_sale_week == pytest.approx(4 / 3)
    assert py.price is not None and py.sales_per_sale_week is not None
    assert py.price * py.sales_per_sale_week * py.sale_weeks == pytest.approx(py.net)


def test_a_refund_after_as_of_is_not_known_yet() -> None:
    sql = _courses()["sql"]
    # 3 sales of 500 stars (W02, W06, W13); the refund of 03-30 is after as_of.
    assert (sql.currency, sql.sales, sql.buyers, sql.refunds, sql.net) == ("XTR", 3, 3, 0, 1500.0)
    assert (sql.price, sql.sales_per_sale_week, sql.sale_weeks) == (500.0, 1.0, 3)
    assert sql.price_points == ()  # one price only
    assert sql.arc_elasticity is None


def test_two_prices_sold_equally_have_zero_elasticity() -> None:
    py = _courses()["py"]
    # 60: 2 sales in 2 weeks (Q = 1); 100: 2 sales in 2 weeks (Q = 1): equal quantities, E = 0.
    assert py.price_points == (PricePoint(60.0, 2), PricePoint(100.0, 2))
    assert py.arc_elasticity == 0.0


def test_arc_elasticity_between_the_two_most_sold_prices() -> None:
    ledger = purchases(
        *[(i, "go", 50.0, "EUR", f"2024-03-0{d} 10:00", None) for i, d in enumerate((4, 5, 6), start=1)],  # W10
        *[(i, "go", 50.0, "EUR", f"2024-03-1{d} 10:00", None) for i, d in enumerate((1, 2, 3), start=4)],  # W11
        (7, "go", 100.0, "EUR", "2024-03-18 10:00", None),  # W12
        (8, "go", 100.0, "EUR", "2024-03-25 10:00", None),  # W13
        (9, "go", 80.0, "EUR", "2024-03-19 10:00", None),  # the third price point: not compared
    )
    (go,) = course_sales(ledger, timezone=BERLIN, as_of=AS_OF)
    assert go.price_points == (PricePoint(50.0, 6), PricePoint(100.0, 2), PricePoint(80.0, 1))
    # Q(50) = 6 sales / 2 weeks = 3; Q(100) = 2 / 2 = 1.
    # E = ((1 - 3) / ((1 + 3) / 2)) / ((100 - 50) / ((100 + 50) / 2)) = (-1) / (2 / 3) = -1.5
    assert go.arc_elasticity == pytest.approx(-1.5)
    assert arc_elasticity(50.0, 3.0, 100.0, 1.0) == pytest.approx(-1.5)
    assert arc_elasticity(100.0, 1.0, 50.0, 3.0) == pytest.approx(-1.5)  # symmetric
    assert arc_elasticity(50.0, 3.0, 50.0, 1.0) is None


def test_revenue_weeks_book_refunds_in_the_week_they_happen() -> None:
    weeks = revenue_weeks(LEDGER, timezone=BERLIN, start=date(2024, 3, 4), as_of=AS_OF)
    table = {(w.week, w.currency): (w.gross, w.refunded, w.net) for w in weeks}
    assert [(w.week, w.currency) for w in weeks] == [
        (week, currency) for week in ("2024-W10", "2024-W11", "2024-W12", "2024-W13") for currency in ("EUR", "XTR")
    ]
    # EUR: W10 100 (the Sunday-night purchase is W11 in Berlin); W11 100 + 60; W12 60 sold, 100 refunded;
    # W13 nothing known (the 03-28 purchase is after as_of).
    assert table[("2024-W10", "EUR")] == (100.0, 0.0, 100.0)
    assert table[("2024-W11", "EUR")] == (160.0, 0.0, 160.0)
    assert table[("2024-W12", "EUR")] == (60.0, 100.0, -40.0)
    assert table[("2024-W13", "EUR")] == (0.0, 0.0, 0.0)
    assert table[("2024-W12", "XTR")] == (0.0, 0.0, 0.0)
    assert table[("2024-W13", "XTR")] == (500.0, 0.0, 500.0)
    assert weeks[0].start == date(2024, 3, 4)


def test_commerce_summary_conversion_timing_and_retention() -> None:
    summary = commerce_summary(LEDGER, MEMBERS, ACTIVITY, timezone=BERLIN, start=date(2024, 3, 4), as_of=AS_OF)
    # Members by as_of: 6 (5 left, but was a member); buyers among them: 1, 2, 5, 6 (the forgotten one is not).
    assert (summary.members, summary.buyers) == (6, 4)
    assert summary.conversion == pytest.approx(4 / 6)
    # Join cohorts from W10: W10 = {2, 3}, 2 bought; W11 = {4}, nobody bought. Member 1 joined in W09.
    assert [(c.cohort, c.size, c.buyers, c.conversion) for c in summary.cohort_conversion] == [
        ("2024-W10", 2, 1, 0.5),
        ("2024-W11", 1, 0, 0.0),
    ]
    # Days from join to first purchase: 1: 03-01 -> 03-04 = 3; 2: 03-05 -> 03-11 = 6; 5: 02-01 -> 02-10 = 9;
    # 6: 01-05 -> 01-10 = 5. Median of 3, 5, 6, 9 = 5.5.
    assert summary.median_days_to_first_purchase == 5.5
    # First purchases at least 30 days before as_of: 5 (02-10) and 6 (01-10). 5 was active on 03-01 (day 20);
    # 6 only on the purchase day and on day 36. 1 / 2.
    assert summary.buyer_retention_30d == 0.5
    # 7 purchases known by as_of, 1 refunded.
    assert summary.refund_rate == pytest.approx(1 / 7)
    assert [c.course for c in summary.courses] == ["py", "sql"]
    assert len(summary.revenue_weeks) == 8


def test_commerce_of_a_community_without_sales() -> None:
    summary = commerce_summary(
        purchases(), MEMBERS, member_days(), timezone=BERLIN, start=date(2024, 3, 4), as_of=AS_OF
    )
    assert (summary.courses, summary.revenue_weeks, summary.buyers, summary.members) == ((), (), 0, 6)
    assert summary.conversion == 0.0
    assert summary.median_days_to_first_purchase is None
    assert summary.buyer_retention_30d is None
    assert summary.refund_rate is None
    empty = commerce_summary(
        purchases(), members(), member_days(), timezone=BERLIN, start=date(2024, 3, 4), as_of=AS_OF
    )
    assert (empty.members, empty.conversion, empty.cohort_conversion) == (0, None, ())
