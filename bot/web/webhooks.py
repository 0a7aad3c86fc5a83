"""Payment webhooks on the one web server: ``POST /webhooks/stripe``, ``POST /webhooks/checkout``, the checkout pages.

Both webhooks check a signature over the raw body before anything else (a forged request gets 400 and changes
nothing), then hand the event to :class:`~bot.core.checkout.CheckoutDesk`, which applies it once by its event id.
The answer is 2xx only after the effect and the event are stored; any failure answers 500, so the provider
delivers again (a redelivery of what was stored is acknowledged and ignored).

``GET /checkout/success`` is where Stripe sends a buyer after paying: a buyer who paid on the website (no chat
account known) finds the one-time code to send to the bot with ``/claim``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from bot.core.checkout import (
    CHAT_PLATFORMS,
    COURSE_METADATA_KEY,
    REFERENCE_METADATA_KEY,
    CheckoutDesk,
    Handled,
    Paid,
    PaidPeriod,
    claim_code,
)
from bot.core.payments import CheckoutReference, PaymentError, verify_reference
from bot.web.context import CONTEXT
from storage.checkout import claim_by_session

if TYPE_CHECKING:
    from bot.stripe_checkout import StripeCheckout

log = logging.getLogger(__name__)

STRIPE_PATH: Final = "/webhooks/stripe"
CHECKOUT_PATH: Final = "/webhooks/checkout"
SIGNATURE_HEADER: Final = "X-Cohortbot-Signature"
_PAID_EVENTS: Final = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})


@dataclass(frozen=True)
class PaymentWebhooks:
    """What the payment routes need.

    Attributes:
        desk: Applies paid and refunded checkouts.
        stripe: The Stripe account (``[stripe] enabled`` with its keys); None: ``/webhooks/stripe`` answers 404.
        checkout_secret: ``COHORTBOT_SECRET`` when ``[checkout] enabled``; None: ``/webhooks/checkout`` answers 404.
    """

    desk: CheckoutDesk
    stripe: StripeCheckout | None = None
    checkout_secret: str | None = None


PAYMENTS: web.AppKey[PaymentWebhooks] = web.AppKey("cohortbot_payments", PaymentWebhooks)


def add_webhook_routes(app: web.Application, payments: PaymentWebhooks) -> None:
    """Serve the payment webhooks and the checkout pages on ``app`` (no dashboard login: they check signatures)."""
    app[PAYMENTS] = payments
    app.router.add_post(STRIPE_PATH, stripe_webhook)
    app.router.add_post(CHECKOUT_PATH, checkout_webhook)
    app.router.add_get("/checkout/success", success_page)
    app.router.add_get("/checkout/cancel", cancel_page)


def _ok(handled: Handled, **extra: Any) -> web.Response:
    if handled.busy:
        # Another delivery (another process) is applying this event now: nothing was done here. A non-2xx answer
        # makes the provider deliver it again later, when it is handled and acknowledged.
        return web.json_response({"received": False, "busy": True}, status=409, headers={"Retry-After": "60"})
    body: dict[str, Any] = {"received": True, "duplicate": handled.duplicate, **extra}
    if handled.problem:
        body["problem"] = handled.problem
    return web.json_response(body)


async def stripe_webhook(request: web.Request) -> web.Response:
    """``POST /webhooks/stripe``: a Stripe event, verified with ``COHORTBOT_STRIPE_WEBHOOK_SECRET``."""
    payments = request.app[PAYMENTS]
    stripe_account = payments.stripe
    if stripe_account is None:
        raise web.HTTPNotFound()
    body = await request.read()
    try:
        event = stripe_account.construct_event(body, request.headers.get("Stripe-Signature"))
    except Exception as exc:
        log.warning("refused a Stripe webhook: %s", exc)
        return web.json_response({"error": "invalid signature"}, status=400)
    desk = payments.desk
    event_id, event_type = str(event.id), str(event.type)
    # Plain data from here on (the library's objects are not dicts, and only a few fields matter).
    obj: dict[str, Any] = event.data.object.to_dict()
    occurred_at = datetime.fromtimestamp(int(event.created), UTC)
    if event_type in _PAID_EVENTS:
        if obj.get("mode") == "subscription":
            # Its invoice.paid gives access: a subscription made by /buy carries the member's reference.
            if not obj.get("client_reference_id"):
                log.warning(
                    "Stripe subscription %s was started outside the chat (no /buy reference): nothing recorded; "
                    "subscriptions are sold with /buy so they are bound to a chat account, record it with /grant",
                    obj.get("subscription"),
                )
            return _ok(await desk.acknowledge("stripe", event_id, event_type))
        if obj.get("payment_status") == "unpaid":
            # A delayed payment method: Stripe sends checkout.session.async_payment_succeeded when it clears.
            return _ok(await desk.acknowledge("stripe", event_id, event_type))
        return _ok(await _stripe_paid(desk, stripe_account, event_id, event_type, obj, occurred_at))
    if event_type == "charge.refunded":
        if not obj.get("refunded"):
            log.warning(
                "Stripe charge %s was partly refunded; the ledger records full refunds only: record it by hand",
                obj.get("id"),
            )
            return _ok(await desk.acknowledge("stripe", event_id, event_type))
        charge_id = str(obj.get("payment_intent") or obj.get("id"))
        return _ok(
            await desk.refunded(
                provider="stripe", event_id=event_id, event_type=event_type, charge_id=charge_id, at=occurred_at
            )
        )
    if event_type == "invoice.paid":
        period = await _stripe_period(desk, stripe_account, event_id, event_type, obj)
        if period is None:
            return _ok(await desk.acknowledge("stripe", event_id, event_type))
        return _ok(await desk.period_paid(period))
    if event_type == "customer.subscription.updated":
        cancelling = bool(obj.get("cancel_at_period_end")) or obj.get("cancel_at") is not None
        return _ok(
            await desk.subscription_changed(
                provider="stripe",
                event_id=event_id,
                event_type=event_type,
                subscription_ref=str(obj.get("id")),
                cancelled_at=_stamp(obj.get("canceled_at")) or occurred_at if cancelling else None,
            )
        )
    if event_type == "customer.subscription.deleted":
        return _ok(
            await desk.subscription_ended(
                provider="stripe",
                event_id=event_id,
                event_type=event_type,
                subscription_ref=str(obj.get("id")),
                at=_stamp(obj.get("ended_at")) or occurred_at,
            )
        )
    return _ok(await desk.acknowledge("stripe", event_id, event_type))


def _stamp(value: object) -> datetime | None:
    """A Stripe timestamp (seconds since the epoch) as a UTC time; None when absent."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value), UTC)
    return None


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The subscription an invoice bills and that subscription's metadata, in both API shapes.

    Since API version 2025-03-31 both sit under ``parent.subscription_details``; before, ``subscription`` and
    ``subscription_details.metadata`` sat on the invoice itself.
    """
    details = (invoice.get("parent") or {}).get("subscription_details") or invoice.get("subscription_details") or {}
    subscription = details.get("subscription") or invoice.get("subscription")
    if isinstance(subscription, dict):  # expanded
        subscription = subscription.get("id")
    metadata = details.get("metadata") or {}
    return (str(subscription) if subscription else None), dict(metadata)


def _invoice_period(invoice: dict[str, Any], subscription: str) -> tuple[datetime, datetime] | None:
    """The service period an invoice pays for: its subscription line's period.

    The invoice's own ``period_start``/``period_end`` is the previous period for a renewal, so it is not used.
    """
    lines = ((invoice.get("lines") or {}).get("data")) or []
    periods = [
        (_stamp(line["period"].get("start")), _stamp(line["period"].get("end")))
        for line in lines
        if isinstance(line, dict) and isinstance(line.get("period"), dict)
    ]
    known = [(start, end) for start, end in periods if start is not None and end is not None]
    if not known:
        log.error("Stripe invoice %s of subscription %s has no line with a period", invoice.get("id"), subscription)
        return None
    return max(known, key=lambda period: period[1])


async def _stripe_period(
    desk: CheckoutDesk, stripe_account: StripeCheckout, event_id: str, event_type: str, invoice: dict[str, Any]
) -> PaidPeriod | None:
    subscription, metadata = _invoice_subscription(invoice)
    if subscription is None:
        return None  # a one-off invoice: not a course cohortbot sells this way
    period = _invoice_period(invoice, subscription)
    if period is None:
        return None
    buyer: CheckoutReference | None = None
    reference = metadata.get(REFERENCE_METADATA_KEY)
    if reference:
        try:
            buyer = verify_reference(desk.deps.signing_secret or "", str(reference))
        except PaymentError as exc:
            log.warning("Stripe subscription %s carries a reference that does not verify: %s", subscription, exc)
    invoice_id = str(invoice.get("id"))
    charge_id = await stripe_account.invoice_payment_intent(invoice) or invoice_id
    return PaidPeriod(
        provider="stripe",
        event_id=event_id,
        event_type=event_type,
        subscription_ref=subscription,
        charge_id=charge_id,
        invoice_id=invoice_id,
        course_id=metadata.get(COURSE_METADATA_KEY),
        amount=int(invoice.get("amount_paid") or 0),
        currency=str(invoice.get("currency") or "").upper(),
        starts_at=period[0],
        ends_at=period[1],
        buyer=buyer,
    )


async def _stripe_paid(
    desk: CheckoutDesk,
    stripe_account: StripeCheckout,
    event_id: str,
    event_type: str,
    session: dict[str, Any],
    at: datetime,
) -> Handled:
    session_id = str(session.get("id"))
    buyer: CheckoutReference | None = None
    reference = session.get("client_reference_id")
    if reference:
        try:
            buyer = verify_reference(desk.deps.signing_secret or "", str(reference))
        except PaymentError as exc:
            # Paid all the same: the buyer gets a claim code instead of automatic access.
            log.warning("Stripe checkout %s carries a reference that does not verify: %s", session_id, exc)
    course_id = buyer.course_id if buyer is not None else await stripe_account.session_course(session)
    if course_id is None:
        log.error(
            "Stripe checkout %s matches no course (no cohortbot_course metadata, no price in [[courses]]): "
            "nothing recorded; record it with /grant or refund it in Stripe",
            session_id,
        )
        return await desk.acknowledge("stripe", event_id, event_type)
    currency = str(session.get("currency") or "").upper()
    return await desk.paid(
        Paid(
            provider="stripe",
            event_id=event_id,
            event_type=event_type,
            session_id=session_id,
            charge_id=str(session.get("payment_intent") or session_id),
            course_id=course_id,
            amount=int(session.get("amount_total") or 0),
            currency=currency,
            occurred_at=at,
            buyer=buyer,
        )
    )


class _BadEvent(Exception):
    """A generic checkout event that does not follow the documented format."""


def checkout_signature(secret: str, body: bytes) -> str:
    """The ``X-Cohortbot-Signature`` value for a body: ``sha256=`` and the hex HMAC-SHA256 keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise _BadEvent(f'"{key}" must be a non-empty string')
    return str(value).strip()


async def checkout_webhook(request: web.Request) -> web.Response:
    """``POST /webhooks/checkout``: the generic signed webhook (see docs/payments.md for the JSON)."""
    payments = request.app[PAYMENTS]
    secret = payments.checkout_secret
    if not secret:
        raise web.HTTPNotFound()
    body = await request.read()
    sent = request.headers.get(SIGNATURE_HEADER, "")
    if not hmac.compare_digest(sent.encode(), checkout_signature(secret, body).encode()):
        log.warning("refused a checkout webhook: the %s header does not match the body", SIGNATURE_HEADER)
        return web.json_response({"error": "invalid signature"}, status=400)
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise _BadEvent("the body must be a JSON object")
        return await _checkout_event(payments.desk, data)
    except (ValueError, _BadEvent) as exc:
        # Signed but malformed: the sender must fix it; nothing was stored, so a fixed retry goes through.
        log.warning("refused a checkout webhook: %s", exc)
        return web.json_response({"error": str(exc)}, status=422)


async def _checkout_event(desk: CheckoutDesk, data: dict[str, Any]) -> web.Response:
    event_id = _text(data, "id")
    event_type = _text(data, "type")
    order_id = _text(data, "order_id")
    assert event_id is not None and event_type is not None and order_id is not None
    occurred_text = _text(data, "occurred_at", required=False)
    at = desk.deps.clock.now()
    if occurred_text is not None:
        at = datetime.fromisoformat(occurred_text.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise _BadEvent('"occurred_at" needs a time zone, e.g. 2026-12-05T09:00:00Z')
    if event_type == "refund":
        handled = await desk.refunded(
            provider="checkout", event_id=event_id, event_type=event_type, charge_id=order_id, at=at
        )
        return _ok(handled)
    if event_type != "purchase":
        raise _BadEvent('"type" must be "purchase" or "refund"')
    course_id = _text(data, "course_id")
    currency = _text(data, "currency")
    amount = data.get("amount")
    assert course_id is not None and currency is not None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise _BadEvent('"amount" must be a whole number of minor units (cents), at least 0')
    if len(currency) != 3 or not currency.isalpha():
        raise _BadEvent('"currency" must be a 3-letter ISO code such as "EUR"')
    buyer_data = data.get("buyer") or {}
    if not isinstance(buyer_data, dict):
        raise _BadEvent('"buyer" must be an object')
    buyer: CheckoutReference | None = None
    if buyer_data.get("platform") is not None or buyer_data.get("user_id") is not None:
        platform = _text(buyer_data, "platform")
        user_id = _text(buyer_data, "user_id")
        assert platform is not None and user_id is not None
        if platform not in CHAT_PLATFORMS:
            raise _BadEvent(f'"buyer.platform" must be one of {", ".join(CHAT_PLATFORMS)}')
        buyer = CheckoutReference(platform, user_id, course_id)
    handled = await desk.paid(
        Paid(
            provider="checkout",
            event_id=event_id,
            event_type=event_type,
            session_id=order_id,
            charge_id=order_id,
            course_id=course_id,
            amount=amount,
            currency=currency.upper(),
            occurred_at=at,
            buyer=buyer,
        )
    )
    # A buyer without a chat account: the checkout passes the code on (its thank-you page or e-mail).
    return _ok(handled, claim_code=handled.claim_code) if handled.claim_code else _ok(handled)


def _page(title: str, body: str) -> web.Response:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;"
        "line-height:1.5;color:#1d2330}code{background:#eef;padding:.1rem .3rem;font-size:1.3rem}</style>"
        f"</head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    # The page may carry a claim code: nobody may keep a copy.
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def success_page(request: web.Request) -> web.Response:
    """``GET /checkout/success?session_id=...``: thanks, and the claim code for a buyer without a chat account."""
    ctx = request.app[CONTEXT]
    payments = request.app[PAYMENTS]
    session_id = request.query.get("session_id", "")
    community = escape(ctx.settings.community.name)
    claim = None
    if session_id and payments.desk.deps.signing_secret:
        claim = await asyncio.to_thread(claim_by_session, ctx.engine, ctx.community_id, "stripe", session_id)
    if claim is None:
        return _page(
            "Thank you for your payment",
            f"<p>If you started from the {community} chat, your access arrives there in a moment.</p>"
            "<p>If you bought here on the website, your claim code appears on this page as soon as the payment "
            "is confirmed: reload it in a few seconds.</p>",
        )
    if claim.claimed_at is not None:
        return _page("Already claimed", "<p>This purchase is attached to a chat account. Send /courses to the bot.</p>")
    if claim.refunded_at is not None:
        return _page("Refunded", "<p>This payment was refunded, so there is nothing to claim.</p>")
    code_text = claim_code(payments.desk.deps.signing_secret or "", "stripe", session_id)
    return _page(
        "Thank you for your payment",
        f"<p>To get access, send this to the {community} bot on Telegram or Discord:</p>"
        f"<p><code>/claim {escape(code_text)}</code></p>"
        f"<p>The code works once, until {escape(claim.expires_at.date().isoformat())}. Keep it private.</p>",
    )


async def cancel_page(request: web.Request) -> web.Response:
    """``GET /checkout/cancel``: the buyer gave up; nothing was charged."""
    return _page("Payment cancelled", "<p>Nothing was charged. Send /buy to the bot whenever you like.</p>")
