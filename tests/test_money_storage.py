"""The ledger behind the money rules, on SQLite and PostgreSQL: test purchases are never revenue, access that ended
is no longer owned, payments that bought nothing are stored once; and the config switch for test entitlements."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from bot.config import ConfigError, parse_settings
from storage.catalog import CourseRecord, sync_courses
from storage.events import Platform
from storage.ingest import IngestStore
from storage.ledger import (
    course_access,
    ledger,
    live_purchase,
    mark_unmatched_refunded,
    record_unmatched_payment,
    unmatched_payment,
)
from storage.models import Member, UnmatchedPayment
from storage.report_frames import purchases
from storage.writer import EventWriter
from tests.conftest import COMMUNITY, T0, Events


def seed(store: IngestStore, engine: Engine) -> int:
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord("py-async", "Async Python", price_stars=500)])
    ev = Events(Platform.DISCORD)
    store.record_purchase(ev.purchase("paid", charge="real"))
    store.record_purchase(replace(ev.purchase("tester", charge="test"), is_test=True, amount=0))
    store.record_purchase(replace(ev.purchase("lapsed", charge="ended"), access_ends_at=T0 + timedelta(days=30)))
    return community_id


@pytest.mark.storage
def test_test_purchases_are_never_revenue_and_ended_access_is_not_owned(engine: Engine, store: IngestStore) -> None:
    community_id = seed(store, engine)
    assert [r.charge_id for r in ledger(engine, community_id)] == ["real", "ended"]
    assert [r.charge_id for r in ledger(engine, community_id, include_test=True)] == ["real", "test", "ended"]
    with engine.connect() as conn:
        frame = purchases(conn, community_id, T0 + timedelta(days=365))
    assert len(frame) == 2 and frame["amount"].sum() == 1000  # what the revenue analytics see
    # Access: before its end the lapsed purchase is owned; after it, not, and the daily check removes it.
    before, after = T0 + timedelta(days=29), T0 + timedelta(days=31)
    assert live_purchase(engine, community_id, "discord", "lapsed", "py-async", now=before) is not None
    assert live_purchase(engine, community_id, "discord", "lapsed", "py-async", now=after) is None
    owners = course_access(engine, community_id, "discord", now=after)["py-async"]
    assert (owners.owners, owners.refunded) == (frozenset({"paid"}), frozenset({"lapsed", "tester"}))
    with_tests = course_access(engine, community_id, "discord", now=before, include_test=True)["py-async"]
    assert with_tests.owners == frozenset({"paid", "tester", "lapsed"})


@pytest.mark.storage
def test_a_payment_that_bought_nothing_is_stored_once_and_refunded_once(engine: Engine, store: IngestStore) -> None:
    community_id = store.community_id(COMMUNITY)
    kwargs = {
        "platform": "telegram",
        "charge_id": "stx-1",
        "payer_user_id": "4242",
        "amount": 75,
        "currency": "XTR",
        "received_at": T0,
        "problem": "not a cohortbot invoice payload",
    }
    first = record_unmatched_payment(engine, community_id, **kwargs)  # type: ignore[arg-type]
    again = record_unmatched_payment(engine, community_id, **kwargs)  # type: ignore[arg-type]
    assert first.created and not again.created and first.id == again.id
    assert (again.payer_user_id, again.amount, again.refunded_at) == ("4242", 75, None)
    assert mark_unmatched_refunded(engine, first.id, at=T0, by_user_id="9000")
    assert not mark_unmatched_refunded(engine, first.id, at=T0 + timedelta(hours=1))
    stored = unmatched_payment(engine, community_id, "telegram", "stx-1")
    assert stored is not None and stored.refunded_at == T0
    with engine.connect() as conn:
        refunded_by = conn.execute(select(UnmatchedPayment.refunded_by_member_id)).scalar_one()
        admin = conn.execute(select(Member.id).where(Member.platform_user_id == "9000")).scalar_one()
    assert refunded_by == admin


@pytest.mark.storage
async def test_forgetting_the_payer_keeps_the_payment_without_their_account(engine: Engine, store: IngestStore) -> None:
    community_id = store.community_id(COMMUNITY)
    record_unmatched_payment(
        engine,
        community_id,
        platform="telegram",
        charge_id="stx-2",
        payer_user_id="4343",
        amount=10,
        currency="XTR",
        received_at=T0,
        problem="the invoice was made for another member, not for the payer",
    )
    writer = EventWriter(store, flush_interval=0.01)
    await writer.start()
    try:
        report = await writer.forget_member(COMMUNITY, "telegram", "4343")
    finally:
        await writer.stop()
    assert report is not None and report.detached.get("unmatched_payments") == 1
    stored = unmatched_payment(engine, community_id, "telegram", "stx-2")
    assert stored is not None and stored.payer_user_id is None


def test_grant_test_entitlements_is_a_documented_switch() -> None:
    base = {"discord": {"enabled": False}}
    assert parse_settings(base).discord.grant_test_entitlements is False
    assert parse_settings({"discord": {"grant_test_entitlements": True}}).discord.grant_test_entitlements is True
    with pytest.raises(ConfigError) as caught:
        parse_settings({"discord": {"grant_test_entitlements": "yes"}})
    assert caught.value.errors[0].startswith("[discord] grant_test_entitlements: expected true or false")
