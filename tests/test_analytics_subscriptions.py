"""Subscription figures as an owner reads them, on SQLite and PostgreSQL: active subscriptions, MRR per currency,
new and churned per week, renewal rate, revenue per member by join month, refund rate per course.

The rows are written through the real paths (the ledger's purchase and refund, ``storage.subscriptions``), as a
payment handler writes them, and the figures are read from the report's JSON and text. The expected numbers are
worked out by hand below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import Engine

from analytics.frames import SUBSCRIPTION_PERIODS_COLUMNS
from analytics.render import render_json, render_text
from analytics.subscriptions import subscription_summary
from bot.reporting import ReportRequest, build_community_report
from storage.catalog import CourseRecord, sync_courses
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ingest import IngestStore
from storage.subscriptions import end_subscription_at, record_period
from tests.conftest import COMMUNITY, Events

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
AS_OF = date(2024, 5, 8)  # a Wednesday: the report's end is 2024-05-09 00:00 UTC


@dataclass(frozen=True)
class Paid:
    """One paid period: who, which course, when, how long and for how much."""

    user: str
    course: str
    charge: str
    day: int  # days after T0
    days: int  # length
    amount: int  # minor units (whole Stars)
    currency: str
    is_test: bool = False


def pay(store: IngestStore, engine: Engine, community_id: int, p: Paid) -> None:
    """A subscription payment as the payment handler records it: the purchase first, then the period."""
    starts = T0 + timedelta(days=p.day)
    store.record_purchase(
        PurchaseEvent(
            platform=Platform.TELEGRAM,
            community=COMMUNITY,
            charge_id=p.charge,
            member=MemberRef(p.user),
            course_id=p.course,
            amount=p.amount,
            currency=p.currency,
            occurred_at=starts,
            source=PurchaseSource.TELEGRAM_STARS,
            is_test=p.is_test,
        )
    )
    record_period(
        engine,
        community_id,
        platform="telegram",
        user_id=p.user,
        course_key=p.course,
        charge_id=p.charge,
        starts_at=starts,
        ends_at=starts + timedelta(days=p.days),
    )


def build(engine: Engine) -> IngestStore:
    """The community of the worked example.

    - ``ann`` subscribes to the Stars club on day 0 and renews on days 30 and 60: active on the report day.
    - ``bob`` subscribes on day 1 and never renews: access ends on 2024-04-04 (W14), a churn.
    - ``cat`` pays 12.00 EUR for 31-day periods of the pro course on days 2, 33 and 64: active, one calendar month.
    - ``dan``'s payment is a test purchase: neither revenue nor a subscriber.
    - ``eve`` joins in April, subscribes on day 40 (2024-04-13) and is refunded the next day, which ends her
      access then (2024-04-14, a Sunday, W15): a churn and a refund.
    """
    store = IngestStore(engine)
    cid = store.register_community(COMMUNITY, "UTC")
    sync_courses(
        engine,
        cid,
        [
            CourseRecord("club", "Review club", price_stars=250),
            CourseRecord("pro", "Pro mentoring", price=Decimal("12.00"), currency="EUR"),
        ],
    )
    ev = Events(Platform.TELEGRAM)
    march = datetime(2024, 3, 1, 12, tzinfo=UTC)
    store.write_batch(
        [ev.join(user, at=march) for user in ("ann", "bob", "cat", "dan")]
        + [ev.join("eve", at=datetime(2024, 4, 10, 12, tzinfo=UTC))]
    )
    for p in (
        Paid("ann", "club", "a1", 0, 30, 250, "XTR"),
        Paid("ann", "club", "a2", 30, 30, 250, "XTR"),
        Paid("ann", "club", "a3", 60, 30, 250, "XTR"),
        Paid("bob", "club", "b1", 1, 30, 250, "XTR"),
        Paid("cat", "pro", "c1", 2, 31, 1200, "EUR"),
        Paid("cat", "pro", "c2", 33, 31, 1200, "EUR"),
        Paid("cat", "pro", "c3", 64, 31, 1200, "EUR"),
        Paid("dan", "club", "d1", 3, 30, 250, "XTR", is_test=True),
        Paid("eve", "club", "e1", 40, 30, 250, "XTR"),
    ):
        pay(store, engine, cid, p)
    refund_at = T0 + timedelta(days=41)
    store.record_refund(RefundEvent(Platform.TELEGRAM, COMMUNITY, "e1", refund_at))
    assert end_subscription_at(engine, cid, "telegram", "e1", refund_at)
    return store


def report_json(engine: Engine, as_of: date = AS_OF) -> dict[str, object]:
    report, _ = build_community_report(
        engine, ReportRequest(COMMUNITY, as_of=as_of), now=datetime(2024, 6, 1, tzinfo=UTC)
    )
    data = json.loads(render_json(report))
    assert isinstance(data, dict)
    return data


@pytest.mark.storage
def test_subscription_figures_in_the_report_json(engine: Engine) -> None:
    build(engine)
    data = report_json(engine)
    subs = data["subscriptions"]
    assert isinstance(subs, dict)
    # ann and cat are paid up past the report day; bob ran out, eve was refunded, dan's payment was a test.
    assert (subs["active"], subs["subscribers"]) == (2, 2)
    # cat's 31-day period is one calendar month: 12.00 EUR as is, not 12 × 30/31.
    assert subs["mrr"] == [{"currency": "EUR", "amount": 12.0}, {"currency": "XTR", "amount": 250.0}]
    # Periods whose access ended in the range and whose renewal is decided: a1, a2, b1, c1, c2, e1; renewed: 4.
    assert (subs["renewed"], subs["renewals_due"], subs["renewal_rate"]) == (4, 6, 0.6667)
    weeks = {w["week"]: w for w in subs["weeks"]}  # type: ignore[union-attr,index]
    assert len(weeks) == 12
    assert (weeks["2024-W10"]["new"], weeks["2024-W10"]["churned"], weeks["2024-W10"]["active"]) == (3, 0, 3)
    assert (weeks["2024-W14"]["new"], weeks["2024-W14"]["churned"], weeks["2024-W14"]["active"]) == (0, 1, 2)
    assert (weeks["2024-W15"]["new"], weeks["2024-W15"]["churned"], weeks["2024-W15"]["active"]) == (1, 1, 2)
    assert sum(w["new"] for w in weeks.values()) == 4  # type: ignore[misc]
    assert sum(w["churned"] for w in weeks.values()) == 2  # type: ignore[misc]
    courses = {c["course"]: c for c in subs["courses"]}  # type: ignore[union-attr,index]
    assert (courses["club"]["active"], courses["club"]["new"], courses["club"]["churned"]) == (1, 3, 2)
    assert (courses["club"]["renewals_due"], courses["club"]["renewal_rate"]) == (4, 0.5)
    assert (courses["pro"]["active"], courses["pro"]["renewals_due"], courses["pro"]["renewal_rate"]) == (1, 2, 1.0)


@pytest.mark.storage
def test_refund_rate_per_course_and_revenue_per_member_by_join_month(engine: Engine) -> None:
    build(engine)
    commerce = report_json(engine)["commerce"]
    assert isinstance(commerce, dict)
    rates = {c["course"]: (c["sales"], c["refunds"], c["refund_rate"]) for c in commerce["courses"]}
    # The test payment is no sale; eve's is the club's one refund.
    assert rates == {"club": (5, 1, 0.2), "pro": (3, 0, 0.0)}
    ltv = {(c["cohort"], c["currency"]): c for c in commerce["ltv_cohorts"]}
    assert set(ltv) == {("2024-03", "EUR"), ("2024-03", "XTR"), ("2024-04", "EUR"), ("2024-04", "XTR")}
    march_xtr = ltv[("2024-03", "XTR")]  # ann 750 + bob 250 over 4 March joiners (dan bought nothing real)
    assert (march_xtr["members"], march_xtr["buyers"], march_xtr["net"], march_xtr["per_member"]) == (
        4,
        2,
        1000.0,
        250.0,
    )
    march_eur = ltv[("2024-03", "EUR")]  # cat's 3 × 12.00 EUR
    assert (march_eur["buyers"], march_eur["net"], march_eur["per_member"]) == (1, 36.0, 9.0)
    april_xtr = ltv[("2024-04", "XTR")]  # eve bought and got her money back
    assert (april_xtr["members"], april_xtr["buyers"], april_xtr["net"], april_xtr["per_member"]) == (1, 1, 0.0, 0.0)


@pytest.mark.storage
def test_a_back_dated_report_sees_the_subscriptions_as_they_were(engine: Engine) -> None:
    build(engine)
    # On Sunday 2024-03-31 everyone but the test buyer is within their first paid month; eve has not come yet.
    subs = report_json(engine, date(2024, 3, 31))["subscriptions"]
    assert isinstance(subs, dict)
    assert (subs["active"], subs["subscribers"]) == (3, 3)
    assert subs["mrr"] == [{"currency": "EUR", "amount": 12.0}, {"currency": "XTR", "amount": 500.0}]
    assert (subs["renewals_due"], subs["renewal_rate"]) == (0, None)


@pytest.mark.storage
def test_the_terminal_report_shows_the_subscriptions(engine: Engine) -> None:
    build(engine)
    report, _ = build_community_report(
        engine, ReportRequest(COMMUNITY, as_of=AS_OF), now=datetime(2024, 6, 1, tzinfo=UTC)
    )
    text = render_text(report)
    section = text[text.index("SUBSCRIPTIONS") :]
    assert "Active subscriptions 2 (2 members)" in section
    assert "MRR 12.00 EUR · 250 Stars" in section
    assert "renewal rate 66.7% (4 of 6 renewed)" in section
    assert "Review club" in section and "50.0%" in section
    assert "Net revenue per member by join month" in text


@pytest.mark.storage
def test_a_community_without_subscriptions_has_none(engine: Engine) -> None:
    store = IngestStore(engine)
    store.register_community(COMMUNITY, "UTC")
    store.write_batch([Events(Platform.TELEGRAM).join("ann", at=T0)])
    data = report_json(engine)
    assert data["subscriptions"] is None


def periods_frame(rows: list[tuple[int, int, datetime, timedelta, float, str]]) -> pd.DataFrame:
    """Hand-built paid periods: (subscription, member, start, length, amount, currency), paid up to the last end."""
    frame = pd.DataFrame(
        {
            "subscription_id": [r[0] for r in rows],
            "member_id": [r[1] for r in rows],
            "course": "club",
            "title": "Review club",
            "starts_at": pd.to_datetime([r[2] for r in rows], utc=True),
            "ends_at": pd.to_datetime([r[2] + r[3] for r in rows], utc=True),
            "amount": [r[4] for r in rows],
            "currency": [r[5] for r in rows],
            "refunded_at": pd.to_datetime([None] * len(rows), utc=True),
        }
    )
    frame["paid_until"] = frame.groupby("subscription_id")["ends_at"].transform("max")
    return frame[list(SUBSCRIPTION_PERIODS_COLUMNS)]


def test_a_renewal_a_day_late_still_counts_a_minute_more_does_not_and_a_weekly_plan_is_scaled() -> None:
    day = timedelta(days=1)
    start = datetime(2024, 3, 4, 9, tzinfo=UTC)
    frame = periods_frame(
        [
            # Renewed exactly one day after access ended: within the grace, a renewal.
            (1, 1, start, 30 * day, 250.0, "XTR"),
            (1, 1, start + 31 * day, 30 * day, 250.0, "XTR"),
            # One day and one minute late: access ended (a churn), and the member came back.
            (2, 2, start, 30 * day, 250.0, "XTR"),
            (2, 2, start + 31 * day + timedelta(minutes=1), 30 * day, 250.0, "XTR"),
            # A weekly plan of 10 Stars: 10 × 30 / 7 a month.
            (3, 3, start + 50 * day, 7 * day, 10.0, "XTR"),
        ]
    )
    summary = subscription_summary(frame, timezone=ZoneInfo("UTC"), start=date(2024, 3, 4), as_of=date(2024, 4, 25))
    assert summary is not None
    assert (summary.renewals_due, summary.renewed) == (2, 1)
    assert sum(w.churned for w in summary.weeks) == 1
    assert summary.active == 3
    assert summary.mrr == (("XTR", pytest.approx(250 + 250 + 10 * 30 / 7)),)
