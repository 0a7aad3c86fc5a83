"""The report's read of subscriptions: every paid period with its amount, for ``analytics.subscriptions``.

A paid period is also a purchase in the ledger (same platform and charge id), so its amount, currency and refund
come from that purchase. Periods whose purchase is a test purchase moved no money and are left out; a period with
no purchase at all (none is expected) keeps its dates and counts for access, with no amount. The read works on
whatever rows the subscription tables hold, whichever platform or checkout wrote them.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, and_, or_, select

from analytics.frames import SUBSCRIPTION_PERIODS_COLUMNS
from storage.models import Course, Purchase, Refund, Subscription, SubscriptionPeriod


def _utc(values: list[datetime | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="object"), utc=True)


def subscription_periods(conn: Connection, community_id: int, end: datetime) -> pd.DataFrame:
    """The paid periods of the community's subscriptions that started before ``end`` (SUBSCRIPTION_PERIODS_COLUMNS).

    Args:
        conn: A connection.
        community_id: The community.
        end: The instant after the report day; refunds from then on are not known yet.

    Returns:
        One row per period, ordered by subscription and start; amounts in major units (Stars are whole).
    """
    period, sub = SubscriptionPeriod, Subscription
    rows = conn.execute(
        select(
            period.subscription_id,
            sub.member_id,
            Course.course_key,
            Course.title,
            period.starts_at,
            period.ends_at,
            sub.ends_at,
            Purchase.amount,
            Purchase.currency,
            Refund.refunded_at,
        )
        .join(sub, sub.id == period.subscription_id)
        .join(Course, Course.id == sub.course_id)
        .outerjoin(
            Purchase,
            and_(
                Purchase.community_id == community_id,
                Purchase.platform == period.platform,
                Purchase.charge_id == period.charge_id,
            ),
        )
        .outerjoin(Refund, Refund.purchase_id == Purchase.id)
        .where(
            sub.community_id == community_id,
            period.starts_at < end,
            # A test purchase (a Discord test-mode entitlement) is never revenue, nor a subscriber.
            or_(Purchase.id.is_(None), Purchase.is_test.is_(False)),
        )
        .order_by(period.subscription_id, period.starts_at, period.id)
    ).all()
    return pd.DataFrame(
        {
            "subscription_id": pd.Series([r[0] for r in rows], dtype="int64"),
            "member_id": pd.Series([r[1] for r in rows], dtype="Int64"),
            "course": pd.Series([r[2] for r in rows], dtype="object"),
            "title": pd.Series([r[3] for r in rows], dtype="object"),
            "starts_at": _utc([r[4] for r in rows]),
            "ends_at": _utc([r[5] for r in rows]),
            "paid_until": _utc([r[6] for r in rows]),
            # Stars have no minor unit; every other currency is stored in cents.
            "amount": pd.Series(
                [None if r[7] is None else (r[7] if r[8] == "XTR" else r[7] / 100) for r in rows], dtype="float64"
            ),
            "currency": pd.Series([r[8] for r in rows], dtype="object"),
            "refunded_at": _utc([r[9] if r[9] is not None and r[9] < end else None for r in rows]),
        },
        columns=list(SUBSCRIPTION_PERIODS_COLUMNS),
    )
