"""Checkout checks, sales and refunds: ledger first, access once, against a real database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.core.payments import sign_payload
from bot.core.ports import AccessResult
from bot.core.sales import check_checkout, record_refund, record_sale, refuse_payment
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ingest import IngestStore
from storage.models import Purchase, Refund
from tests.conftest import COMMUNITY
from tests.helpers.fake_actions import NOW, SECRET, Bot, FakeActions, running_bot, two_course_settings

pytestmark = pytest.mark.storage

ANN = "1001"


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    async with running_bot(store) as running:
        yield running


def stars_sale(
    user: str = ANN, course: str = "py-async", charge: str = "tg-charge-1", amount: int = 500
) -> PurchaseEvent:
    return PurchaseEvent(
        platform=Platform.TELEGRAM,
        community=COMMUNITY,
        charge_id=charge,
        member=MemberRef(user, "Ann"),
        course_id=course,
        amount=amount,
        currency="XTR",
        occurred_at=NOW,
        source=PurchaseSource.TELEGRAM_STARS,
        provider_charge_id="prov-1",
    )


def rows(bot: Bot) -> tuple[int, int]:
    with bot.engine.connect() as conn:
        purchases = conn.execute(select(func.count()).select_from(Purchase)).scalar_one()
        refunds = conn.execute(select(func.count()).select_from(Refund)).scalar_one()
    return purchases, refunds


async def check(bot: Bot, payload: str, *, amount: int = 500, currency: str = "XTR", user: str = ANN) -> str | None:
    return await check_checkout(
        bot.dispatcher, platform="telegram", user_id=user, payload=payload, amount=amount, currency=currency
    )


async def test_checkout_of_a_fresh_invoice_is_accepted(bot: Bot) -> None:
    assert await check(bot, sign_payload(SECRET, "py-async", ANN, 500)) is None


async def test_checkout_rejects_wrong_price_forgery_retirement_and_ownership(bot: Bot) -> None:
    good = sign_payload(SECRET, "py-async", ANN, 500)
    wrong_price = await check(bot, good, amount=5)
    assert wrong_price is not None and "price of Async Python has changed" in wrong_price
    assert "has changed" in (await check(bot, sign_payload(SECRET, "py-async", ANN, 5), amount=5) or "")
    assert "has changed" in (await check(bot, good, currency="EUR") or "")
    forged = sign_payload("attacker's secret", "py-async", ANN, 5)
    assert "not valid" in (await check(bot, forged, amount=5) or "")
    assert "another member" in (await check(bot, good, user="2002") or "")
    retired = sign_payload(SECRET, "old-course", ANN, 500)
    assert "no longer for sale" in (await check(bot, retired) or "")
    await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    assert "already own Async Python" in (await check(bot, good) or "")


async def test_checkout_without_a_secret_is_refused_politely(store: IngestStore) -> None:
    async with running_bot(store, secret=None) as bot:
        reason = await check(bot, sign_payload(SECRET, "py-async", ANN, 500))
    assert reason is not None and "not set up" in reason


async def test_a_replayed_sale_is_stored_and_granted_once(bot: Bot) -> None:
    first = await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    again = await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    assert first.created and not again.created
    assert rows(bot) == (1, 0)
    assert bot.actions.grants == [(ANN, "py-async")]
    assert "Invite: https://t.me/+x" in first.reply.text.plain()
    assert "already recorded" in again.reply.text.plain()
    assert first.reply.private


async def test_a_payment_delivered_twice_at_once_is_granted_once(bot: Bot) -> None:
    first, second = await asyncio.gather(*(record_sale(bot.dispatcher, stars_sale(), bot.actions) for _ in range(2)))
    assert sorted([first.created, second.created]) == [False, True]
    assert bot.actions.grants == [(ANN, "py-async")]


async def test_a_redelivered_payment_finishes_a_grant_a_crash_interrupted(bot: Bot) -> None:
    # The bot recorded the payment and stopped before giving access (power cut): the platform delivers it again.
    await bot.writer.record_purchase(stars_sale())
    assert bot.actions.grants == []
    replay = await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    assert not replay.created and replay.access is not None and replay.access.ok
    assert bot.actions.grants == [(ANN, "py-async")]
    assert "Invite: https://t.me/+x" in replay.reply.text.plain()
    assert rows(bot) == (1, 0)
    # Once granted, further deliveries change nothing.
    again = await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    assert "already recorded" in again.reply.text.plain()
    assert bot.actions.grants == [(ANN, "py-async")]


async def test_a_redelivered_payment_of_a_refunded_purchase_grants_nothing(bot: Bot) -> None:
    await bot.writer.record_purchase(stars_sale())
    await bot.writer.record_refund(RefundEvent(Platform.TELEGRAM, COMMUNITY, "tg-charge-1", NOW + timedelta(days=1)))
    replay = await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    assert "already recorded" in replay.reply.text.plain()
    assert bot.actions.grants == []


async def test_a_sale_whose_access_fails_is_kept_and_reported(bot: Bot, caplog: pytest.LogCaptureFixture) -> None:
    actions = FakeActions(grant_result=AccessResult(ok=False, problem="make the bot an admin of the course chat"))
    outcome = await record_sale(bot.dispatcher, stars_sale(), actions)
    assert outcome.created and outcome.access is not None and not outcome.access.ok
    assert rows(bot) == (1, 0)
    assert "admins have been told" in outcome.reply.text.plain()
    assert any("make the bot an admin of the course chat" in r.getMessage() for r in caplog.records)


async def test_a_sale_of_a_course_missing_from_the_catalog_stores_nothing(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await record_sale(bot.dispatcher, stars_sale(course="cobol"), bot.actions)
    assert not outcome.created and outcome.course is None
    assert rows(bot) == (0, 0) and bot.actions.grants == []
    assert "an admin will sort it out" in outcome.reply.text.plain()
    assert "tg-charge-1" in outcome.reply.text.plain()
    assert any(r.levelname == "ERROR" and "not in the catalog" in r.getMessage() for r in caplog.records)


async def test_a_sale_of_a_retired_course_is_recorded_without_access(store: IngestStore) -> None:
    async with running_bot(store) as bot:
        pass  # puts both courses in the catalog
    retired = two_course_settings()
    retired = dataclasses.replace(retired, courses=retired.courses[1:])
    async with running_bot(store, settings=retired) as bot:
        outcome = await record_sale(bot.dispatcher, stars_sale(), bot.actions)
        assert outcome.created and outcome.course is None and outcome.access is None
        assert bot.actions.grants == []
        assert "An admin will give you access" in outcome.reply.text.plain()


async def test_refund_revokes_once_and_keeps_access_from_another_purchase(bot: Bot) -> None:
    await record_sale(bot.dispatcher, stars_sale(), bot.actions)
    refund = RefundEvent(Platform.TELEGRAM, COMMUNITY, "tg-charge-1", NOW + timedelta(hours=1))
    first = await record_refund(bot.dispatcher, refund, None, bot.actions)  # the buyer comes from the ledger
    again = await record_refund(bot.dispatcher, refund, None, bot.actions)
    assert first.created and not again.created
    assert rows(bot) == (1, 1)
    assert bot.actions.revokes == [(ANN, "py-async")]
    assert "was refunded" in first.reply.text.plain()

    # Bought twice (paid in Stars, then also granted by an admin): refunding one leaves access from the other.
    await record_sale(bot.dispatcher, stars_sale(charge="c2"), bot.actions)
    grant = dataclasses.replace(stars_sale(charge="c3"), source=PurchaseSource.GRANT, amount=0)
    await record_sale(bot.dispatcher, grant, bot.actions)
    kept = await record_refund(
        bot.dispatcher, RefundEvent(Platform.TELEGRAM, COMMUNITY, "c2", NOW), MemberRef(ANN), bot.actions
    )
    assert kept.access is not None and "another purchase" in kept.access.detail
    assert bot.actions.revokes == [(ANN, "py-async")]


async def test_refund_of_an_unknown_charge_stores_nothing(bot: Bot) -> None:
    outcome = await record_refund(
        bot.dispatcher, RefundEvent(Platform.TELEGRAM, COMMUNITY, "nope", NOW), MemberRef(ANN), bot.actions
    )
    assert not outcome.created and rows(bot) == (0, 0) and bot.actions.revokes == []


# --- money the bot gives back ----------------------------------------------------------------------------------


def refund_rows(bot: Bot) -> list[tuple[str, str | None]]:
    with bot.engine.connect() as conn:
        found = conn.execute(
            select(Purchase.charge_id, Refund.reason)
            .join(Refund, Refund.purchase_id == Purchase.id)
            .order_by(Refund.id)
        ).all()
    return [(r[0], r[1]) for r in found]


async def test_a_second_payment_for_an_owned_course_is_refunded_recorded_and_told_once(bot: Bot) -> None:
    # Two invoices were checked out before either was paid; both payments arrive.
    first = await record_sale(bot.dispatcher, stars_sale(charge="c1"), bot.actions)
    second = await record_sale(bot.dispatcher, stars_sale(charge="c2"), bot.actions)
    assert first.created and bot.actions.grants == [(ANN, "py-async")]
    assert bot.actions.refunds == [(ANN, "c2")]
    assert refund_rows(bot) == [("c2", "paid twice: the member already owned the course")]
    assert second.created and second.access is None
    told = second.reply.text.plain()
    assert "You already own Async Python, so this payment of 500 Stars was refunded to you automatically." in told
    # Redeliveries of either payment: nothing is refunded, granted or said again.
    for charge in ("c2", "c1", "c2"):
        again = await record_sale(bot.dispatcher, stars_sale(charge=charge), bot.actions)
        assert not again.created
    assert bot.actions.refunds == [(ANN, "c2")] and bot.actions.grants == [(ANN, "py-async")]
    assert rows(bot) == (2, 1) and bot.actions.revokes == []


async def test_two_payments_racing_refund_exactly_the_later_one(bot: Bot) -> None:
    outcomes = await asyncio.gather(
        record_sale(bot.dispatcher, stars_sale(charge="r1"), bot.actions),
        record_sale(bot.dispatcher, stars_sale(charge="r2"), bot.actions),
    )
    assert all(o.created for o in outcomes)
    assert len(bot.actions.refunds) == 1 and len(bot.actions.grants) == 1
    assert rows(bot) == (2, 1)


async def test_a_double_payment_whose_refund_failed_is_refunded_on_redelivery(bot: Bot) -> None:
    await record_sale(bot.dispatcher, stars_sale(charge="c1"), bot.actions)
    failing = FakeActions(refund_error=RuntimeError("Telegram is down"))
    outcome = await record_sale(bot.dispatcher, stars_sale(charge="c2"), failing)
    assert "could not refund it automatically" in outcome.reply.text.plain()
    assert refund_rows(bot) == [] and failing.grants == []
    # Telegram delivers the payment again (it was not confirmed): this time the refund goes through, once.
    retried = await record_sale(bot.dispatcher, stars_sale(charge="c2"), bot.actions)
    assert bot.actions.refunds == [(ANN, "c2")] and [c for c, _ in refund_rows(bot)] == ["c2"]
    assert retried.created and "refunded to you automatically" in retried.reply.text.plain()
    # Telegram reports a refund it already made (the bot stopped between refunding and recording it).
    await record_sale(
        bot.dispatcher, stars_sale(charge="c3"), FakeActions(refund_error=RuntimeError("CHARGE_ALREADY_REFUNDED"))
    )
    assert [c for c, _ in refund_rows(bot)] == ["c2", "c3"]


async def test_a_payment_by_someone_else_is_refused_and_refunded_once(bot: Bot) -> None:
    kwargs = {
        "charge_id": "stx-wrong",
        "payer": MemberRef("2002"),
        "amount": 500,
        "currency": "XTR",
        "received_at": NOW,
        "problem": "the invoice was made for another member, not for the payer",
        "refund": True,
    }
    refused = await refuse_payment(bot.dispatcher, bot.actions, **kwargs)  # type: ignore[arg-type]
    assert refused is not None and refused.refunded
    assert bot.actions.refunds == [("2002", "stx-wrong")] and bot.actions.grants == []
    assert "your 500 Stars were refunded. Nothing was bought." in refused.buyer.text.plain()
    assert "refused and refunded" in refused.owners.plain() and "user 2002" in refused.owners.plain()
    assert rows(bot) == (0, 0)  # no purchase: nobody got the course
    assert await refuse_payment(bot.dispatcher, bot.actions, **kwargs) is None  # type: ignore[arg-type]
    assert bot.actions.refunds == [("2002", "stx-wrong")]
