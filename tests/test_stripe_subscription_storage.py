"""Card (Stripe) subscriptions in storage, on SQLite and PostgreSQL: found by Stripe's id, a renewal's grace before
removal, and an early end that shortens every period's access without lengthening an ended one."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from storage.catalog import CourseRecord, sync_courses
from storage.events import PurchaseSource
from storage.ingest import IngestStore
from storage.ledger import live_purchase
from storage.subscriptions import (
    billed_subscription,
    end_period_purchases_at,
    end_subscription_at,
    expired,
    record_period,
    set_cancelled,
)
from tests.conftest import COMMUNITY, T0, Events

pytestmark = pytest.mark.storage
MONTH = timedelta(days=30)


def pay_month(store: IngestStore, engine: Engine, ev: Events, community_id: int, month: int, user: str = "ada") -> None:
    """One paid month of Stripe subscription ``sub_1``: its purchase in the ledger and its period."""
    start = T0 + month * MONTH
    purchase = replace(
        ev.purchase(user, "club", charge=f"pi_{month}", at=start, amount=1500),
        currency="EUR",
        source=PurchaseSource.STRIPE,
        access_ends_at=start + MONTH,
    )
    store.record_purchase(purchase)
    record_period(
        engine,
        community_id,
        platform=ev.platform.value,
        user_id=user,
        course_key="club",
        charge_id=f"pi_{month}",
        starts_at=start,
        ends_at=start + MONTH,
        subscription_ref="sub_1",
        provider="stripe",
    )


def seed(store: IngestStore, engine: Engine) -> int:
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord("club", "Review club")])
    return community_id


def test_a_card_subscription_is_found_by_stripes_id_only(store: IngestStore, engine: Engine, ev: Events) -> None:
    community_id = seed(store, engine)
    pay_month(store, engine, ev, community_id, 0)
    found = billed_subscription(engine, community_id, "stripe", "sub_1")
    assert found is not None and found.provider == "stripe" and found.member_user_id == "ada"
    assert billed_subscription(engine, community_id, "stripe", "sub_2") is None
    assert billed_subscription(engine, community_id, "paypal", "sub_1") is None


def test_a_renewal_has_a_day_of_grace_unless_the_subscription_was_cancelled(
    store: IngestStore, engine: Engine, ev: Events
) -> None:
    community_id = seed(store, engine)
    pay_month(store, engine, ev, community_id, 0)
    platform = ev.platform.value
    # Stripe charges the renewal about an hour after the period ends: the member is not removed meanwhile.
    assert expired(engine, community_id, platform, now=T0 + MONTH + timedelta(hours=1)) == []
    (late,) = expired(engine, community_id, platform, now=T0 + MONTH + timedelta(days=1))
    assert late.subscription_ref == "sub_1"
    # Cancelled: no renewal is coming, so access ends exactly when the paid time does.
    set_cancelled(engine, community_id, platform, "sub_1", T0 + timedelta(days=3))
    (cancelled,) = expired(engine, community_id, platform, now=T0 + MONTH)
    assert cancelled.subscription_ref == "sub_1"


def test_an_early_end_shortens_every_running_period_and_no_ended_one(
    store: IngestStore, engine: Engine, ev: Events
) -> None:
    community_id = seed(store, engine)
    platform = ev.platform.value
    for month in range(3):  # months 0 and 1 are over at day 70; month 2 runs to day 90
        pay_month(store, engine, ev, community_id, month)
    ended_at = T0 + timedelta(days=70)
    assert end_subscription_at(engine, community_id, platform, "sub_1", ended_at)
    # Only the running month moves: months 0 and 1 ended before, and a later end would re-open them.
    assert end_period_purchases_at(engine, community_id, platform, "sub_1", ended_at) == 1
    assert live_purchase(engine, community_id, platform, "ada", "club", now=ended_at) is None
    assert live_purchase(engine, community_id, platform, "ada", "club", now=T0 + timedelta(days=45)) is not None
