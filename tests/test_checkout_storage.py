"""Outside-checkout storage: webhook events stored once (also by two processes at once), one-time claim codes."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from storage.checkout import (
    attach_claim,
    claim_by_code,
    create_claim,
    hash_code,
    record_webhook_event,
    redeem_claim,
    void_claim,
    webhook_event_seen,
)
from storage.deletion import delete_member_data, find_member_id
from storage.engine import make_engine, writing
from storage.ingest import IngestStore
from storage.models import CheckoutClaim, WebhookEvent
from tests.conftest import COMMUNITY, T0, Events

pytestmark = pytest.mark.storage


def _claim(engine: Engine, community_id: int, *, event_id: str = "evt_1", code: str = "ABCD-EFGH-JK") -> bool:
    return create_claim(
        engine,
        community_id,
        provider="stripe",
        event_id=event_id,
        event_type="checkout.session.completed",
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


def test_an_event_is_stored_once(store: IngestStore, engine: Engine) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    assert not webhook_event_seen(engine, "stripe", "evt_1")
    assert record_webhook_event(engine, cid, provider="stripe", event_id="evt_1", event_type="x", at=T0)
    assert not record_webhook_event(engine, cid, provider="stripe", event_id="evt_1", event_type="x", at=T0)
    # Another provider's ids are its own.
    assert record_webhook_event(engine, cid, provider="checkout", event_id="evt_1", event_type="x", at=T0)
    assert webhook_event_seen(engine, "stripe", "evt_1")


def test_two_processes_storing_one_event_store_it_once(store: IngestStore, db_url: str) -> None:
    cid = store.register_community(COMMUNITY, "UTC")
    engines = [make_engine(db_url) for _ in range(2)]
    start = threading.Barrier(2)
    results: list[bool] = []

    def deliver(engine: Engine) -> None:
        start.wait()
        results.append(_claim(engine, cid))

    threads = [threading.Thread(target=deliver, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engines[0].connect() as conn:
        events = conn.execute(select(func.count()).select_from(WebhookEvent)).scalar_one()
        claims = conn.execute(select(func.count()).select_from(CheckoutClaim)).scalar_one()
    for e in engines:
        e.dispose()
    assert sorted(results) == [False, True]
    assert (events, claims) == (1, 1)


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
