"""Outside-checkout storage: webhook events stored once (also by two processes at once), one-time claim codes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from storage.checkout import (
    attach_claim,
    claim_by_code,
    create_claim,
    finish_webhook_event,
    hash_code,
    redeem_claim,
    release_webhook_event,
    take_webhook_event,
    void_claim,
    webhook_event_handled,
)
from storage.deletion import delete_member_data, find_member_id
from storage.engine import make_engine, writing
from storage.ingest import IngestStore
from storage.models import CheckoutClaim, WebhookEvent
from tests.conftest import COMMUNITY, T0, Events

pytestmark = pytest.mark.storage


def _take(engine: Engine, community_id: int, event_id: str = "evt_1", *, at: datetime = T0) -> str:
    return take_webhook_event(
        engine, community_id, provider="stripe", event_id=event_id, event_type="checkout.session.completed", now=at
    )


def _claim(engine: Engine, community_id: int, *, event_id: str = "evt_1", code: str = "ABCD-EFGH-JK") -> bool:
    assert _take(engine, community_id, event_id) == "taken"
    return create_claim(
        engine,
        community_id,
        provider="stripe",
        event_id=event_id,
        session_id="cs_1",
        code_hash=hash_code(code),
        charge_id="pi_1",
        course_key="py-async",
        amount=4900,
        currency="EUR",
        paid_at=T0,
        expires_at=T0 + timedelta(days=30),
        received_at=T0,
    )


def test_an_event_is_applied_once(store: IngestStore, engine: Engine) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    assert _take(engine, cid) == "taken"
    # While the first delivery is applying it, another is told to come back later.
    assert _take(engine, cid, at=T0 + timedelta(seconds=5)) == "busy"
    assert not webhook_event_handled(engine, "stripe", "evt_1")
    finish_webhook_event(engine, "stripe", "evt_1", at=T0 + timedelta(seconds=1))
    assert webhook_event_handled(engine, "stripe", "evt_1")
    assert _take(engine, cid, at=T0 + timedelta(days=3)) == "handled"
    # Another provider's ids are its own.
    assert take_webhook_event(engine, cid, provider="checkout", event_id="evt_1", event_type="x", now=T0) == "taken"


def test_a_failed_delivery_gives_the_event_back_and_a_crashed_one_is_taken_over(
    store: IngestStore, engine: Engine
) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    assert _take(engine, cid, "evt_failed") == "taken"
    release_webhook_event(engine, "stripe", "evt_failed")  # applying it failed: the next delivery applies it
    assert _take(engine, cid, "evt_failed", at=T0 + timedelta(seconds=1)) == "taken"
    # A delivery that died without finishing or releasing: its lease goes stale and the next delivery takes over.
    assert _take(engine, cid, "evt_crashed") == "taken"
    assert _take(engine, cid, "evt_crashed", at=T0 + timedelta(seconds=30)) == "busy"
    assert _take(engine, cid, "evt_crashed", at=T0 + timedelta(minutes=3)) == "taken"
    assert _take(engine, cid, "evt_crashed", at=T0 + timedelta(minutes=3, seconds=1)) == "busy"
    # Releasing or finishing never touches an event that was applied.
    finish_webhook_event(engine, "stripe", "evt_crashed", at=T0 + timedelta(minutes=4))
    release_webhook_event(engine, "stripe", "evt_crashed")
    assert webhook_event_handled(engine, "stripe", "evt_crashed")


def test_two_processes_taking_one_event_apply_it_once(store: IngestStore, db_url: str) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    engines = [make_engine(db_url) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[str] = []

    def deliver(engine: Engine) -> None:
        start.wait()
        results.append(_take(engine, cid))

    threads = [threading.Thread(target=deliver, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engines[0].connect() as conn:
        events = conn.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()
    for e in engines:
        e.dispose()
    assert sorted(results) == ["busy", "taken"]
    assert events == 1


def test_a_claim_marks_its_event_handled_and_is_made_once(store: IngestStore, engine: Engine) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    assert _claim(engine, cid)
    assert webhook_event_handled(engine, "stripe", "evt_1")
    # Another event of the same checkout (async_payment_succeeded after completed) makes no second code.
    assert not _claim(engine, cid, event_id="evt_2", code="ZZZZ-ZZZZ-ZZ")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CheckoutClaim)).scalar_one() == 1


def test_a_code_is_redeemed_once_before_it_expires(store: IngestStore, engine: Engine) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    assert _claim(engine, cid)
    assert redeem_claim(engine, cid, hash_code("nope"), T0) is None
    assert redeem_claim(engine, cid, hash_code("abcd efgh jk"), T0 + timedelta(days=31)) is None  # expired
    taken = redeem_claim(engine, cid, hash_code("abcd-efgh-jk"), T0)
    assert taken is not None and taken.course_key == "py-async" and taken.amount == 4900
    assert redeem_claim(engine, cid, hash_code("ABCDEFGHJK"), T0) is None  # used


def test_a_refund_voids_an_unclaimed_code(store: IngestStore, engine: Engine) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    assert _claim(engine, cid)
    assert void_claim(engine, cid, "stripe", "pi_1", T0)
    assert not void_claim(engine, cid, "stripe", "pi_1", T0)
    assert redeem_claim(engine, cid, hash_code("ABCD-EFGH-JK"), T0) is None


def test_forgetting_the_member_deletes_their_claim(store: IngestStore, engine: Engine, ev: Events) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    store.write_batch([ev.message("alice", at=T0)])
    assert _claim(engine, cid)
    claim = redeem_claim(engine, cid, hash_code("ABCD-EFGH-JK"), T0)
    assert claim is not None
    attach_claim(engine, claim.id, cid, ev.platform.value, "alice")
    with writing(engine).begin() as conn:
        member_id = find_member_id(conn, cid, ev.platform.value, "alice")
        assert member_id is not None
        report = delete_member_data(conn, member_id)
    assert report.deleted.get("checkout_claims") == 1
    assert claim_by_code(engine, cid, hash_code("ABCD-EFGH-JK")) is None
