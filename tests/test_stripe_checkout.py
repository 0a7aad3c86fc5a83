"""Card payments through Stripe and the generic checkout webhook, end to end.

``cohortbot``'s real app runs with the real Telegram and Discord adapters against the fakes, the real ``stripe``
library against a fake Stripe API on 127.0.0.1, and the one web server on a real port (the dashboard off): /buy
answers with the Checkout Session's link, Stripe's signed webhook records the sale once and gives access, a forged
or replayed webhook changes nothing, a refund takes access away, a website buyer claims with a code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
from sqlalchemy import Engine, text

from bot.adapters import build_adapters
from bot.app import App, build_app
from bot.config import Secrets, parse_settings
from bot.core.payments import verify_reference
from storage.engine import make_engine
from storage.migrate import upgrade
from tests.adapter_discord.conftest import CARA_ID, PY_ROLE, make_guild
from tests.adapter_discord.conftest import settings_dict as discord_settings
from tests.adapter_telegram.conftest import config as telegram_config
from tests.fakes import telegram_payloads as p
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.stripe_api import API_KEY, WEBHOOK_SECRET, FakeStripe, sign
from tests.fakes.telegram_bot_api import FakeBotApi

SECRET = "test-signing-secret-0123456789abcdef"
PRICE = "price_1PyAsync"
RUST_PRICE = "price_1Rust"


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


@asynccontextmanager
async def running(document: dict[str, Any], stripe: FakeStripe) -> AsyncIterator[tuple[App, str]]:
    port = free_port()
    document |= {
        "web": {"port": port},
        "stripe": {"enabled": True, "api_base_url": stripe.base_url},
        "checkout": {"enabled": True},
    }
    settings = parse_settings(document)
    engine = make_engine(settings.storage.url)
    upgrade(engine)
    secrets = Secrets(
        telegram_token=_token(document, "telegram"),
        discord_token=_token(document, "discord"),
        signing_secret=SECRET,
        stripe_api_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
    )
    app = build_app(settings, secrets=secrets, adapters=build_adapters, engine=engine)
    await app.start(schedule=False)
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await app.stop()


_TOKENS: dict[str, str] = {}


def _token(document: dict[str, Any], platform: str) -> str | None:
    return _TOKENS.get(platform) if document.get(platform, {}).get("enabled") else None


async def post_stripe(http: aiohttp.ClientSession, base: str, body: str, signature: str | None = None) -> int:
    headers = {"Stripe-Signature": signature if signature is not None else sign(body)}
    async with http.post(f"{base}/webhooks/stripe", data=body, headers=headers) as response:
        return response.status


def telegram_document(tmp_path: Path, fake: FakeBotApi) -> dict[str, Any]:
    document = telegram_config(fake.base_url, tmp_path / "shop.db")
    document["courses"] = [
        {
            "id": "py-async",
            "title": "Async Python",
            "stripe_price_id": PRICE,
            "telegram_chat_id": p.COURSE_CHAT,
        }
    ]
    _TOKENS["telegram"] = fake.token
    return document


def button_url(call_params: dict[str, Any]) -> str:
    markup = call_params["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return str(markup["inline_keyboard"][0][0]["url"])


async def test_telegram_buy_pay_replay_forge_refund(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        FakeStripe({PRICE: (4900, "eur")}) as stripe,
        running(telegram_document(tmp_path, fake), stripe) as (app, base),
        aiohttp.ClientSession() as http,
    ):
        engine = app.engine
        await fake.add_update(p.private_message(p.ALICE, "/buy py-async"))
        (answer,) = await fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        (session_id,) = stripe.sessions
        assert button_url(answer.params) == f"https://checkout.stripe.test/c/pay/{session_id}"
        created = stripe.requests[0][2]
        assert created["line_items[0][price]"] == PRICE
        assert created["success_url"].endswith("/checkout/success?session_id={CHECKOUT_SESSION_ID}")
        # The session is bound to Alice and the course by a signed reference.
        reference = verify_reference(SECRET, created["client_reference_id"])
        assert (reference.platform, reference.user_id, reference.course_id) == ("telegram", str(p.ALICE), "py-async")

        paid = stripe.completed(session_id)
        # Forged: signed with another secret, or the body altered after signing. Refused, nothing stored.
        assert await post_stripe(http, base, paid, sign(paid, "whsec_attacker")) == 400
        assert await post_stripe(http, base, paid.replace("4900", "1"), sign(paid)) == 400
        assert await post_stripe(http, base, paid, "") == 400
        assert count(engine, "select count(*) from purchases") == 0
        assert count(engine, "select count(*) from webhook_events") == 0

        assert await post_stripe(http, base, paid) == 200
        await fake.wait_for("createChatInviteLink")
        rows = _purchases(engine)
        assert rows == [
            (stripe.sessions[session_id]["payment_intent"], str(p.ALICE), "py-async", "stripe", 4900, "EUR")
        ]
        # The receipt goes to Alice privately.
        await fake.wait_for("sendMessage", lambda c: "purchase of" in str(c.params.get("text")))

        # Replayed (a redelivery, or an attacker resending a captured request): acknowledged, nothing more.
        assert await post_stripe(http, base, paid) == 200
        assert len(_purchases(engine)) == 1
        assert len(fake.calls_to("createChatInviteLink")) == 1

        # Other event types are acknowledged and ignored (an invoice that bills no subscription too).
        assert await post_stripe(http, base, stripe.other("customer.created")) == 200
        assert await post_stripe(http, base, stripe.other("invoice.paid")) == 200
        assert len(_purchases(engine)) == 1

        refund = stripe.refunded(session_id)
        assert await post_stripe(http, base, refund) == 200
        await fake.wait_for("banChatMember")
        assert count(engine, "select count(*) from refunds") == 1
        assert await post_stripe(http, base, refund) == 200  # replayed refund: nothing more
        assert count(engine, "select count(*) from refunds") == 1
        assert len(fake.calls_to("banChatMember")) == 1


async def test_two_deliveries_of_one_event_at_once_store_it_once(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        FakeStripe({PRICE: (4900, "eur")}) as stripe,
        running(telegram_document(tmp_path, fake), stripe) as (app, base),
        aiohttp.ClientSession() as http,
    ):
        await fake.add_update(p.private_message(p.BOB, "/buy py-async"))
        await fake.wait_for("sendMessage", lambda c: "reply_markup" in c.params)
        (session_id,) = stripe.sessions
        paid = stripe.completed(session_id)
        statuses = await asyncio.gather(*(post_stripe(http, base, paid) for _ in range(4)))
        assert statuses == [200, 200, 200, 200]
        assert count(app.engine, "select count(*) from purchases") == 1
        assert count(app.engine, "select count(*) from webhook_events") == 1
        await fake.wait_for("createChatInviteLink")
        await asyncio.sleep(0.2)
        assert len(fake.calls_to("createChatInviteLink")) == 1


def signed(body: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Cohortbot-Signature": f"sha256={digest}", "Content-Type": "application/json"}


async def test_generic_checkout_webhook(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        FakeStripe({PRICE: (4900, "eur")}) as stripe,
        running(telegram_document(tmp_path, fake), stripe) as (app, base),
        aiohttp.ClientSession() as http,
    ):
        url = f"{base}/webhooks/checkout"
        purchase = {
            "id": "gumroad-evt-1",
            "type": "purchase",
            "order_id": "order-77",
            "course_id": "py-async",
            "amount": 4900,
            "currency": "EUR",
            "buyer": {"platform": "telegram", "user_id": str(p.CAROL)},
        }
        raw, headers = signed(purchase, "not-the-secret")
        async with http.post(url, data=raw, headers=headers) as forged:
            assert forged.status == 400
        raw, headers = signed(purchase)
        async with http.post(url, data=raw.replace(b"4900", b"49"), headers=headers) as altered:
            assert altered.status == 400
        assert count(app.engine, "select count(*) from purchases") == 0

        async with http.post(url, data=raw, headers=headers) as ok:
            assert ok.status == 200
            assert (await ok.json())["duplicate"] is False
        await fake.wait_for("createChatInviteLink")
        async with http.post(url, data=raw, headers=headers) as replay:
            assert (await replay.json())["duplicate"] is True
        assert _purchases(app.engine) == [("order-77", str(p.CAROL), "py-async", "checkout", 4900, "EUR")]

        bad = purchase | {"id": "gumroad-evt-2", "amount": "lots"}
        raw_bad, headers_bad = signed(bad)
        async with http.post(url, data=raw_bad, headers=headers_bad) as rejected:
            assert rejected.status == 422
            assert "amount" in (await rejected.json())["error"]

        refund = {"id": "gumroad-evt-3", "type": "refund", "order_id": "order-77"}
        raw, headers = signed(refund)
        async with http.post(url, data=raw, headers=headers) as refunded:
            assert refunded.status == 200
        await fake.wait_for("banChatMember")
        assert count(app.engine, "select count(*) from refunds") == 1

        # A buyer known only by e-mail: the answer carries a claim code to pass on; the bot attaches it.
        by_mail = {
            "id": "gumroad-evt-4",
            "type": "purchase",
            "order_id": "order-78",
            "course_id": "py-async",
            "amount": 4900,
            "currency": "EUR",
            "buyer": {"email": "dana@example.org"},
        }
        raw, headers = signed(by_mail)
        async with http.post(url, data=raw, headers=headers) as answered:
            code = (await answered.json())["claim_code"]
        assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code)
        await fake.add_update(p.private_message(p.BOB, f"/claim {code.lower()}"))
        await fake.wait_for("createChatInviteLink", count=2)
        assert ("order-78", str(p.BOB), "py-async", "checkout", 4900, "EUR") in _purchases(app.engine)
        await fake.add_update(p.private_message(p.CAROL, f"/claim {code}"))
        await fake.wait_for("sendMessage", lambda c: "already used" in str(c.params.get("text")))


def _purchases(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT p.charge_id, u.platform_user_id, c.course_key, p.source, p.amount, p.currency "
                    "FROM purchases p JOIN courses c ON c.id = p.course_id "
                    "LEFT JOIN members u ON u.id = p.member_id ORDER BY p.id"
                )
            )
        ]


def discord_document(tmp_path: Path, fake: FakeDiscord) -> dict[str, Any]:
    document = discord_settings(fake, tmp_path / "shop.db")
    document["courses"][0] = {
        "id": "py-async",
        "title": "Async Python",
        "stripe_price_id": PRICE,
        "discord_role_id": int(PY_ROLE),
    }
    document["courses"][1]["stripe_price_id"] = RUST_PRICE
    _TOKENS["discord"] = "fake-discord-token"
    return document


async def test_discord_buy_and_a_website_buyer_claims_with_a_code(tmp_path: Path) -> None:
    async with (
        FakeDiscord([make_guild()], token="fake-discord-token") as fake,
        FakeStripe({PRICE: (4900, "eur"), RUST_PRICE: (2900, "eur")}) as stripe,
        running(discord_document(tmp_path, fake), stripe) as (app, base),
        aiohttp.ClientSession() as http,
    ):
        token = await fake.slash(CARA_ID, "buy", {"course": "py-async"})
        await fake.wait_for(lambda: stripe.sessions)
        (session_id,) = stripe.sessions
        link = f"https://checkout.stripe.test/c/pay/{session_id}"
        # The answer (or its follow-up, when the bot deferred it) carries a link button to the session.
        await fake.wait_for(lambda: any(link in json.dumps(c.json) for c in fake.responses(token)))

        # Bought on the website (a Payment Link): no chat account is known, so the success page shows a code.
        website = stripe.website_session(PRICE)
        async with http.get(f"{base}/checkout/success", params={"session_id": website}) as early:
            assert "reload" in await early.text()  # the webhook has not arrived yet
        assert await post_stripe(http, base, stripe.completed(website)) == 200
        assert count(app.engine, "select count(*) from purchases") == 0
        async with http.get(f"{base}/checkout/success", params={"session_id": website}) as page:
            assert page.status == 200
            assert page.headers["Cache-Control"] == "no-store"
            found = re.search(r"/claim ([A-Z2-9]{5}-[A-Z2-9]{5})", await page.text())
        assert found is not None
        claim = await fake.slash(CARA_ID, "claim", {"code": found.group(1)})
        await fake.wait_responses(claim)
        await fake.wait_for_call("PUT", rf"/guilds/\d+/members/{CARA_ID}/roles/{PY_ROLE}")
        rows = _purchases(app.engine)
        assert rows == [(stripe.sessions[website]["payment_intent"], CARA_ID, "py-async", "stripe", 4900, "EUR")]
        async with http.get(f"{base}/checkout/success", params={"session_id": website}) as used:
            assert "Already claimed" in await used.text()
        # No dashboard here: its pages are not served, only the webhooks and checkout pages.
        async with http.get(f"{base}/") as home:
            assert home.status == 404


async def test_buy_says_so_when_stripe_refuses_the_checkout(tmp_path: Path) -> None:
    async with (
        FakeBotApi() as fake,
        FakeStripe({}) as stripe,  # the configured price does not exist in this Stripe account
        running(telegram_document(tmp_path, fake), stripe) as (_app, _base),
    ):
        await fake.add_update(p.private_message(p.ALICE, "/buy py-async"))
        (answer,) = await fake.wait_for("sendMessage", lambda c: "card payments" in str(c.params.get("text")))
        assert "not available right now" in answer.params["text"]
        assert "reply_markup" not in answer.params
        assert stripe.sessions == {}
