"""Subscriptions in storage, on SQLite and PostgreSQL: a renewal delivered twice extends once, an old period never
shortens access, reminders and removals are claimed once, and forgetting a member removes their subscriptions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from storage.catalog import CourseRecord, sync_courses
from storage.deletion import delete_member_data, find_member_id
from storage.engine import writing
from storage.errors import UnknownCourseError
from storage.ingest import IngestStore
from storage.models import Subscription, SubscriptionPeriod
from storage.subscriptions import (
    due_reminders,
    end_subscription_at,
    expired,
    mark_comeback_sent,
    mark_ended,
    mark_reminded,
    member_subscriptions,
    record_period,
    set_cancelled,
    subscription_by_ref,
    subscription_of_charge,
)
from tests.conftest import COMMUNITY, T0

DAYS_30 = timedelta(days=30)


def seed(store: IngestStore, engine: Engine) -> int:
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord("club", "Review club", price_stars=250)])
    return community_id


def pay(engine: Engine, community_id: int, charge: str, start_day: int, *, user: str = "4242") -> object:
    start = T0 + timedelta(days=start_day)
    return record_period(
        engine,
        community_id,
        platform="telegram",
        user_id=user,
        course_key="club",
        charge_id=charge,
        starts_at=start,
        ends_at=start + DAYS_30,
    )


@pytest.mark.storage
def test_first_payment_starts_a_subscription_and_each_renewal_extends_it_once(
    engine: Engine, store: IngestStore
) -> None:
    community_id = seed(store, engine)
    first = record_period(
        engine,
        community_id,
        platform="telegram",
        user_id="4242",
        course_key="club",
        charge_id="ch-1",
        starts_at=T0,
        ends_at=T0 + DAYS_30,
    )
    assert (first.created, first.renewal) == (True, False)
    assert first.subscription.subscription_ref == "ch-1"  # what editUserStarSubscription is called with
    assert first.subscription.ends_at == T0 + DAYS_30

    renewal = pay(engine, community_id, "ch-2", 30)
    again = pay(engine, community_id, "ch-2", 30)  # the same renewal delivered twice
    assert (renewal.created, renewal.renewal) == (True, True)  # type: ignore[attr-defined]
    assert again.created is False  # type: ignore[attr-defined]
    (stored,) = member_subscriptions(engine, community_id, "telegram", "4242")
    assert stored.ends_at == T0 + 2 * DAYS_30
    assert stored.started_at == T0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SubscriptionPeriod)).scalar_one() == 2

    # An older period delivered late is stored, but never moves the end back.
    late = pay(engine, community_id, "ch-0", -30)
    assert late.created is True  # type: ignore[attr-defined]
    assert member_subscriptions(engine, community_id, "telegram", "4242")[0].ends_at == T0 + 2 * DAYS_30


@pytest.mark.storage
def test_an_unknown_course_stores_nothing(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    with pytest.raises(UnknownCourseError):
        record_period(
            engine,
            community_id,
            platform="telegram",
            user_id="4242",
            course_key="nope",
            charge_id="ch-1",
            starts_at=T0,
            ends_at=T0 + DAYS_30,
        )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Subscription)).scalar_one() == 0


@pytest.mark.storage
def test_reminder_is_due_once_per_period_and_not_after_cancelling(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    sub = pay(engine, community_id, "ch-1", 0).subscription  # type: ignore[attr-defined]
    window = timedelta(days=3)
    assert due_reminders(engine, community_id, "telegram", now=T0 + timedelta(days=20), within=window) == []
    soon = T0 + timedelta(days=28)
    assert [s.id for s in due_reminders(engine, community_id, "telegram", now=soon, within=window)] == [sub.id]
    assert mark_reminded(engine, sub.id, sub.ends_at) is True
    assert mark_reminded(engine, sub.id, sub.ends_at) is False  # a second process: already claimed
    assert due_reminders(engine, community_id, "telegram", now=soon, within=window) == []

    pay(engine, community_id, "ch-2", 30)  # renewed: the next period is reminded again
    later = T0 + timedelta(days=58)
    assert len(due_reminders(engine, community_id, "telegram", now=later, within=window)) == 1
    assert set_cancelled(engine, community_id, "telegram", "ch-1", later) is True
    assert set_cancelled(engine, community_id, "telegram", "ch-1", later) is False
    assert due_reminders(engine, community_id, "telegram", now=later, within=window) == []
    assert subscription_by_ref(engine, community_id, "telegram", "ch-1").cancelled_at == later  # type: ignore[union-attr]
    assert set_cancelled(engine, community_id, "telegram", "ch-1", None) is True  # resumed
    assert len(due_reminders(engine, community_id, "telegram", now=later, within=window)) == 1


@pytest.mark.storage
def test_expiry_is_claimed_once_and_a_comeback_renewal_reopens_it(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    sub = pay(engine, community_id, "ch-1", 0).subscription  # type: ignore[attr-defined]
    assert expired(engine, community_id, "telegram", now=T0 + timedelta(days=29)) == []
    after = T0 + timedelta(days=31)
    assert [s.id for s in expired(engine, community_id, "telegram", now=after)] == [sub.id]
    assert mark_ended(engine, sub.id, at=after) is True
    assert mark_ended(engine, sub.id, at=after) is False
    assert expired(engine, community_id, "telegram", now=after) == []
    assert mark_comeback_sent(engine, sub.id, at=after) is True
    assert mark_comeback_sent(engine, sub.id, at=after) is False
    (ended,) = member_subscriptions(engine, community_id, "telegram", "4242")
    assert not ended.active(after) and ended.ended_at == after

    pay(engine, community_id, "ch-2", 40)  # paid again: access is back, and a later ending is told again
    (back,) = member_subscriptions(engine, community_id, "telegram", "4242")
    assert back.active(T0 + timedelta(days=41)) and back.ended_at is None and back.comeback_sent_at is None


@pytest.mark.storage
def test_a_platform_can_end_a_subscription_early(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    record_period(
        engine,
        community_id,
        platform="discord",
        user_id="77",
        course_key="club",
        charge_id="ent-1",
        subscription_ref="ent-1",
        starts_at=T0,
        ends_at=T0 + DAYS_30,
    )
    cut = T0 + timedelta(days=10)
    assert end_subscription_at(engine, community_id, "discord", "ent-1", cut) is True
    assert end_subscription_at(engine, community_id, "discord", "ent-1", cut) is False
    assert [s.subscription_ref for s in expired(engine, community_id, "discord", now=cut)] == ["ent-1"]


@pytest.mark.storage
def test_forgetting_a_member_removes_their_subscriptions(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    pay(engine, community_id, "ch-1", 0)
    pay(engine, community_id, "ch-2", 30)
    pay(engine, community_id, "other", 0, user="5151")
    with writing(engine).begin() as conn:
        member_id = find_member_id(conn, community_id, "telegram", "4242")
        assert member_id is not None
        report = delete_member_data(conn, member_id)
    assert report.deleted["subscriptions"] == 1 and report.deleted["subscription_periods"] == 2
    assert member_subscriptions(engine, community_id, "telegram", "4242") == []
    assert len(member_subscriptions(engine, community_id, "telegram", "5151")) == 1


@pytest.mark.storage
def test_a_renewal_on_time_keeps_access_and_one_after_an_early_end_lets_the_member_back(
    engine: Engine, store: IngestStore
) -> None:
    community_id = seed(store, engine)
    pay(engine, community_id, "ch-1", 0)
    on_time = pay(engine, community_id, "ch-2", 30)  # charged as the first period ends
    assert on_time.was_ended is False  # type: ignore[attr-defined]
    assert subscription_of_charge(engine, community_id, "telegram", "ch-2").subscription_ref == "ch-1"  # type: ignore[union-attr]
    assert subscription_of_charge(engine, community_id, "telegram", "nope") is None
    end_subscription_at(engine, community_id, "telegram", "ch-1", T0 + timedelta(days=35))  # refunded early
    late = pay(engine, community_id, "ch-3", 60)
    assert late.was_ended is True  # type: ignore[attr-defined]
    assert late.subscription.ends_at == T0 + timedelta(days=90)  # type: ignore[attr-defined]
