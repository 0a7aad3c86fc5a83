"""Monthly courses paid by card: Stripe subscriptions, end to end.

The real app with the real Telegram adapter against the fake Bot API, the real ``stripe`` library against the fake
Stripe API, Stripe's signed webhooks on the one web server: ``/buy`` makes a subscription checkout bound to the
member; each ``invoice.paid`` pays a month (the first gives access, a renewal extends it, a replay changes nothing);
``/subscriptions`` cancels through Stripe; ``customer.subscription.deleted`` takes access away once; a refunded
month revokes access and stops the subscription in Stripe; two bot processes receiving the same event apply it once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Engine, select, text

from bot.adapters import build_adapters
from bot.app import App, build_app
from bot.config import Secrets, parse_settings
from bot.core.payments import sign_reference, verify_reference
from storage.engine import make_engine
from storage.migrate import upgrade
from storage.models import Member, Subscription
from tests.fakes import telegram_payloads as p
from tests.fakes.stripe_api import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.test_stripe_checkout import (
    PRICE,
    SECRET,
    _no_proxy,  # noqa: F401  (the autouse fixture: loopback never goes through a proxy)
    count,
    free_port,
    post_stripe,
    running,
    telegram_document,
)


def monthly_document(tmp_path: Path, fake: FakeBotApi) -> dict[str, Any]:
    document = telegram_document(tmp_path, fake)
    document["courses"][0]["billing"] = "monthly"
    return document


def subscription_row(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                Subscription.subscription_ref,
                Subscription.provider,
                Subscription.platform,
                Member.platform_user_id,
                Subscription.ends_at,
                Subscription.cancelled_at,
                Subscription.ended_at,
            ).join(Member, Member.id == Subscription.member_id)
        ).one()
    return dict(row._mapping)


def sent_texts(fake: FakeBotApi) -> list[str]:
    return [str(c.params.get("text")) for c in fake.calls_to("sendMessage")]


async def subscribe(fake: FakeBotApi, stripe: FakeStripe, user: int) -> str:
    """``/buy py-async`` as ``user``; returns the Checkout Session Stripe made."""
    before = set(stripe.sessions)
    await fake.add_update(p.private_message(user, "/buy py-async"))
    await fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params and "Subscribe" in str(c.params))
    (session_id,) = set(stripe.sessions) - before
    return session_id


async def test_a_card_subscription_from_buy_to_its_end(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        FakeStripe({PRICE: (1500, "eur")}) as stripe,
        running(monthly_document(tmp_path, fake), stripe) as (app, base),
        aiohttp.ClientSession() as http,
    ):
        engine = app.engine
        session_id = await subscribe(fake, stripe, p.ALICE)
        created = stripe.requests[0][2]
        assert created["mode"] == "subscription"
        assert "payment_intent_data[metadata][cohortbot_course]" not in created  # not allowed in subscription mode
        # The subscription itself carries the member's signed reference: every invoice it pays names Alice.
        reference = verify_reference(SECRET, created["subscription_data[metadata][cohortbot_reference]"])
        assert (reference.platform, reference.user_id, reference.course_id) == ("telegram", str(p.ALICE), "py-async")

        start = int(datetime.now(UTC).timestamp())
        completed, first = stripe.subscribed(session_id, start=start)
        assert await post_stripe(http, base, completed) == 200
        assert count(engine, "select count(*) from purchases") == 0  # the invoice gives access, not the session
        assert await post_stripe(http, base, first) == 200
        await fake.wait_for("createChatInviteLink")
        (subscription_id,) = stripe.subscriptions
        (invoice,) = stripe.invoices.values()
        row = subscription_row(engine)
        assert (row["subscription_ref"], row["provider"], row["platform"], row["platform_user_id"]) == (
            subscription_id,
            "stripe",
            "telegram",
            str(p.ALICE),
        )
        assert row["ends_at"] == datetime.fromtimestamp(start + 30 * 86_400, UTC)
        with engine.connect() as conn:
            purchase = conn.execute(text("select charge_id, amount, currency, source from purchases")).one()
        # The charge id is the PaymentIntent a refund will name (read from the invoice's payments).
        assert tuple(purchase) == (invoice["_payment_intent"], 1500, "EUR", "stripe")
        await fake.wait_for("sendMessage", lambda c: "renews every month" in str(c.params.get("text")))

        # A replay of the same month changes nothing.
        assert await post_stripe(http, base, first) == 200
        assert count(engine, "select count(*) from subscription_periods") == 1

        # Next month: paid-until moves on, one more purchase, no second invite link.
        renewal = stripe.renewal(subscription_id)
        assert await post_stripe(http, base, renewal) == 200
        await fake.wait_for("sendMessage", lambda c: "is renewed until" in str(c.params.get("text")))
        assert subscription_row(engine)["ends_at"] == datetime.fromtimestamp(start + 60 * 86_400, UTC)
        assert count(engine, "select count(*) from purchases") == 2
        assert count(engine, "select count(*) from subscription_periods") == 2
        assert len(fake.calls_to("createChatInviteLink")) == 1

        # Alice lists and cancels it: the bot asks Stripe to stop at the end of the paid period.
        await fake.add_update(p.private_message(p.ALICE, "/subscriptions"))
        (listing,) = await fake.wait_for("sendMessage", lambda c: "Your subscriptions" in str(c.params.get("text")))
        assert "Cancel Async Python" in json.dumps(listing.params.get("reply_markup"))
        await fake.add_update(p.private_message(p.ALICE, "/subscriptions cancel py-async"))
        await fake.wait_for("sendMessage", lambda c: "nothing more will be charged" in str(c.params.get("text")))
        update = [r for r in stripe.requests if r[1] == f"/v1/subscriptions/{subscription_id}"]
        assert [r[2] for r in update] == [{"cancel_at_period_end": "true"}]
        assert subscription_row(engine)["cancelled_at"] is not None
        # Stripe then confirms the cancellation: already recorded, nothing changes.
        assert await post_stripe(http, base, stripe.subscription_updated(subscription_id)) == 200
        assert subscription_row(engine)["cancelled_at"] is not None

        # The subscription ends (here: the owner ended it today in the Dashboard): Alice is removed once and told
        # how to come back; the daily access check never lets her back in.
        ended = stripe.subscription_deleted(subscription_id)
        assert await post_stripe(http, base, ended) == 200
        await fake.wait_for("banChatMember")
        await fake.wait_for("sendMessage", lambda c: "Want to come back?" in str(c.params.get("text")))
        row = subscription_row(engine)
        assert row["ended_at"] is not None and row["ends_at"] <= datetime.now(UTC)
        assert await post_stripe(http, base, ended) == 200  # replayed: nothing more
        await app.scheduler.run("reconcile")
        await app.scheduler.run("subscriptions")
        assert len(fake.calls_to("banChatMember")) == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1
        assert sum("Want to come back?" in t for t in sent_texts(fake)) == 1


async def test_a_refunded_month_revokes_access_and_stops_the_subscription(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        # An account whose webhooks use an API version from before 2025-03-31: the invoice names its
        # PaymentIntent and subscription itself.
        FakeStripe({PRICE: (1500, "eur")}, legacy_invoices=True) as stripe,
        running(monthly_document(tmp_path, fake), stripe) as (app, base),
        aiohttp.ClientSession() as http,
    ):
        engine = app.engine
        session_id = await subscribe(fake, stripe, p.BOB)
        _completed, first = stripe.subscribed(session_id)
        assert await post_stripe(http, base, first) == 200
        await fake.wait_for("createChatInviteLink")
        assert not [r for r in stripe.requests if r[1] == "/v1/invoice_payments"]  # nothing to ask Stripe
        (subscription_id,) = stripe.subscriptions
        (invoice_id,) = stripe.invoices

        assert await post_stripe(http, base, stripe.invoice_refunded(invoice_id)) == 200
        await fake.wait_for("banChatMember")
        assert count(engine, "select count(*) from refunds") == 1
        # The refund ends the subscription now, and Stripe is told to stop charging Bob.
        assert ("DELETE", f"/v1/subscriptions/{subscription_id}", {}) in stripe.requests
        assert subscription_row(engine)["ends_at"] <= datetime.now(UTC)
        assert await post_stripe(http, base, stripe.subscription_deleted(subscription_id)) == 200
        await app.scheduler.run("subscriptions")
        await app.scheduler.run("reconcile")
        assert len(fake.calls_to("banChatMember")) == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1

        # A subscription started on the website names no member: acknowledged, nothing recorded, no claim code
        # that would give open-ended access.
        website = stripe.website_session(PRICE)
        stripe.sessions[website]["mode"] = "subscription"
        completed, paid = stripe.subscribed(website)
        assert await post_stripe(http, base, completed) == 200
        assert await post_stripe(http, base, paid) == 200
        assert count(engine, "select count(*) from subscriptions") == 1
        assert count(engine, "select count(*) from checkout_claims") == 0
        assert count(engine, "select count(*) from purchases") == 1


@asynccontextmanager
async def two_bots(document: dict[str, Any], stripe: FakeStripe, token: str) -> AsyncIterator[list[tuple[App, str]]]:
    """Two bot processes' apps on one database, each with its own web server (a deployment behind a balancer)."""
    async with AsyncExitStack() as stack:
        bots: list[tuple[App, str]] = []
        for _ in range(2):
            port = free_port()
            settings = parse_settings(
                document
                | {
                    "web": {"port": port},
                    "stripe": {"enabled": True, "api_base_url": stripe.base_url},
                }
            )
            engine = make_engine(settings.storage.url)
            upgrade(engine)
            secrets = Secrets(
                telegram_token=token,
                signing_secret=SECRET,
                stripe_api_key=API_KEY,
                stripe_webhook_secret=WEBHOOK_SECRET,
            )
            app = build_app(settings, secrets=secrets, adapters=build_adapters, engine=engine)
            await app.start(schedule=False)
            stack.push_async_callback(app.stop)
            bots.append((app, f"http://127.0.0.1:{port}"))
        yield bots


async def test_two_bot_processes_receiving_one_invoice_apply_it_once(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        FakeStripe({PRICE: (1500, "eur")}) as stripe,
        aiohttp.ClientSession() as http,
    ):
        document = monthly_document(tmp_path, fake)
        async with two_bots(document, stripe, fake.token) as bots:
            (first_app, first_base), (_second_app, second_base) = bots
            # The session /buy would make for Alice (made here directly: both bots poll the same fake Bot API).
            session_id = stripe.website_session(PRICE)
            reference = sign_reference(SECRET, "telegram", str(p.ALICE), "py-async")
            stripe.sessions[session_id] |= {"mode": "subscription", "client_reference_id": reference}
            stripe.sessions[session_id]["_subscription_metadata"] = {
                "cohortbot_course": "py-async",
                "cohortbot_reference": reference,
            }
            _completed, paid = stripe.subscribed(session_id)
            statuses = await asyncio.gather(
                *(post_stripe(http, base, paid) for base in (first_base, second_base, first_base, second_base))
            )
            # Whoever took the event applies it; a delivery to the other process meanwhile is asked to come back.
            assert set(statuses) <= {200, 409} and 200 in statuses
            await fake.wait_for("createChatInviteLink")
            engine = first_app.engine
            assert count(engine, "select count(*) from purchases") == 1
            assert count(engine, "select count(*) from subscription_periods") == 1
            assert count(engine, "select count(*) from webhook_events where handled_at is not null") == 1
            # Stripe's retry of a refused delivery is acknowledged: it was applied.
            assert await post_stripe(http, second_base, paid) == 200
            await asyncio.sleep(0.2)
            assert len(fake.calls_to("createChatInviteLink")) == 1
            assert count(engine, "select count(*) from purchases") == 1
