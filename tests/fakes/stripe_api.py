"""A fake Stripe API on 127.0.0.1 for the real ``stripe`` library, and webhook events signed like Stripe signs them.

Serves what cohortbot calls: ``POST /v1/checkout/sessions`` (form-encoded, as the library sends it),
``GET /v1/checkout/sessions/{id}/line_items``, ``GET /v1/invoice_payments`` and ``POST``/``DELETE
/v1/subscriptions/{id}``. :meth:`FakeStripe.completed` and :meth:`FakeStripe.refunded` build the events Stripe would
send when the buyer pays or the owner refunds; :meth:`FakeStripe.subscribed`, :meth:`FakeStripe.renewal`,
:meth:`FakeStripe.subscription_updated` and :meth:`FakeStripe.subscription_deleted` those of a subscription's life;
:func:`sign` makes the ``Stripe-Signature``
header (``t=<unix time>,v1=<HMAC-SHA256 of "t.body">``) with the endpoint's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_KEY = "sk_test_fake_cohortbot"
WEBHOOK_SECRET = "whsec_test_fake_cohortbot"


def sign(body: str, secret: str = WEBHOOK_SECRET, *, at: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``body``."""
    timestamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class FakeStripe:
    """The fake API. ``prices`` maps a Price id to (amount in cents, currency); others are "No such price"."""

    prices: dict[str, tuple[int, str]]
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Older API versions put the PaymentIntent on the invoice; newer ones list it only through /v1/invoice_payments.
    legacy_invoices: bool = False
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeStripe:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions/{id}/line_items", self._line_items)
        app.router.add_get("/v1/invoice_payments", self._invoice_payments)
        app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        app.router.add_delete("/v1/subscriptions/{id}", self._cancel_subscription)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _next(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids)}"

    @staticmethod
    def _error(message: str, status: int = 400) -> web.Response:
        return web.json_response({"error": {"type": "invalid_request_error", "message": message}}, status=status)

    async def _create_session(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._error("Invalid API Key provided", 401)
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.requests.append(("POST", request.path, form))
        price = form.get("line_items[0][price]", "")
        if price not in self.prices:
            return self._error(f"No such price: '{price}'")
        amount, currency = self.prices[price]
        session_id = self._next("cs")
        metadata = {k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")}
        prefix = "subscription_data[metadata]["
        subscription_metadata = {k[len(prefix) : -1]: v for k, v in form.items() if k.startswith(prefix)}
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
            "client_reference_id": form.get("client_reference_id"),
            "metadata": metadata,
            "amount_total": amount,
            "currency": currency,
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "_price": price,
            "_subscription_metadata": subscription_metadata,
        }
        self.sessions[session_id] = session
        return web.json_response({k: v for k, v in session.items() if not k.startswith("_")})

    async def _line_items(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["id"])
        if session is None:
            return self._error("No such checkout session", 404)
        price = session["_price"]
        item = {"id": self._next("li"), "object": "item", "quantity": 1, "price": {"id": price, "object": "price"}}
        return web.json_response({"object": "list", "data": [item], "has_more": False, "url": request.path})

    def website_session(self, price: str, metadata: dict[str, str] | None = None) -> str:
        """A session made outside cohortbot (a Payment Link on the website): no reference to a chat account."""
        amount, currency = self.prices[price]
        session_id = self._next("cs")
        self.sessions[session_id] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "client_reference_id": None,
            "metadata": metadata or {},
            "amount_total": amount,
            "currency": currency,
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "_price": price,
            "_subscription_metadata": {},
        }
        return session_id

    def _event(self, event_type: str, obj: dict[str, Any]) -> str:
        event = {
            "id": self._next("evt"),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
            "data": {"object": obj},
        }
        return json.dumps(event)

    def completed(self, session_id: str) -> str:
        """The ``checkout.session.completed`` event body of a paid session (it gets its PaymentIntent now)."""
        session = self.sessions[session_id]
        session.update(payment_intent=session.get("payment_intent") or self._next("pi"))
        session.update(payment_status="paid", status="complete")
        return self._event("checkout.session.completed", {k: v for k, v in session.items() if not k.startswith("_")})

    def refunded(self, session_id: str, *, full: bool = True) -> str:
        """The ``charge.refunded`` event body for a paid session's charge."""
        session = self.sessions[session_id]
        charge = {
            "id": self._next("ch"),
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": session["amount_total"] if full else 1,
            "currency": session["currency"],
            "payment_intent": session["payment_intent"],
            "refunded": full,
        }
        return self._event("charge.refunded", charge)

    def other(self, event_type: str) -> str:
        """An event of a type cohortbot does not act on."""
        return self._event(event_type, {"id": self._next("obj"), "object": "thing"})

    # --- subscriptions (a session made with mode=subscription and a recurring price) -------------------------

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {API_KEY}"

    async def _invoice_payments(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error("Invalid API Key provided", 401)
        self.requests.append(("GET", request.path, dict(request.query)))
        invoice = self.invoices.get(request.query.get("invoice", ""))
        data = []
        if invoice is not None and invoice.get("_payment_intent"):
            data.append(
                {
                    "id": self._next("inpay"),
                    "object": "invoice_payment",
                    "invoice": invoice["id"],
                    "status": "paid",
                    "payment": {"type": "payment_intent", "payment_intent": invoice["_payment_intent"]},
                }
            )
        return web.json_response({"object": "list", "data": data, "has_more": False, "url": request.path})

    async def _update_subscription(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error("Invalid API Key provided", 401)
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.requests.append(("POST", request.path, form))
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return self._error(f"No such subscription: '{request.match_info['id']}'", 404)
        if "cancel_at_period_end" in form:
            subscription["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        return web.json_response(subscription)

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return self._error("Invalid API Key provided", 401)
        self.requests.append(("DELETE", request.path, {}))
        subscription = self.subscriptions.get(request.match_info["id"])
        if subscription is None:
            return self._error(f"No such subscription: '{request.match_info['id']}'", 404)
        subscription.update(status="canceled", ended_at=int(time.time()), canceled_at=int(time.time()))
        return web.json_response(subscription)

    def subscribed(self, session_id: str, *, start: int | None = None) -> tuple[str, str]:
        """The buyer paid a subscription session: (``checkout.session.completed``, the first ``invoice.paid``).

        The subscription's first period starts at ``start`` (unix seconds; now by default) and lasts a month.
        """
        session = self.sessions[session_id]
        subscription_id = self._next("sub")
        begins = int(time.time()) if start is None else start
        self.subscriptions[subscription_id] = {
            "id": subscription_id,
            "object": "subscription",
            "status": "active",
            "cancel_at_period_end": False,
            "cancel_at": None,
            "canceled_at": None,
            "ended_at": None,
            "metadata": dict(session["_subscription_metadata"]),
            "_session": session_id,
            "_period_end": begins,
        }
        invoice = self.renewal(subscription_id)
        invoice_id = json.loads(invoice)["data"]["object"]["id"]
        session.update(subscription=subscription_id, invoice=invoice_id, payment_status="paid", status="complete")
        completed = self._event(
            "checkout.session.completed", {k: v for k, v in session.items() if not k.startswith("_")}
        )
        return completed, invoice

    def renewal(self, subscription_id: str) -> str:
        """The ``invoice.paid`` event of the subscription's next month (the first one for a new subscription)."""
        subscription = self.subscriptions[subscription_id]
        session = self.sessions[subscription["_session"]]
        amount, currency = self.prices[session["_price"]]
        start = subscription["_period_end"]
        end = start + 30 * 86_400
        subscription["_period_end"] = end
        invoice_id, intent = self._next("in"), self._next("pi")
        invoice: dict[str, Any] = {
            "id": invoice_id,
            "object": "invoice",
            "amount_paid": amount,
            "currency": currency,
            "status": "paid",
            "billing_reason": "subscription_create"
            if len(self.invoices_of(subscription_id)) == 0
            else "subscription_cycle",
            # The invoice's own period is the one before (it bills in arrears); its line carries the paid period.
            "period_start": start - 30 * 86_400,
            "period_end": start,
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": self._next("il"),
                        "object": "line_item",
                        "amount": amount,
                        "currency": currency,
                        "period": {"start": start, "end": end},
                    }
                ],
            },
        }
        details = {"subscription": subscription_id, "metadata": dict(subscription["metadata"])}
        if self.legacy_invoices:
            invoice |= {"subscription": subscription_id, "subscription_details": details, "payment_intent": intent}
        else:
            invoice["parent"] = {"type": "subscription_details", "subscription_details": details}
        self.invoices[invoice_id] = invoice | {"_payment_intent": intent, "_subscription": subscription_id}
        return self._event("invoice.paid", invoice)

    def invoices_of(self, subscription_id: str) -> list[dict[str, Any]]:
        """The subscription's paid invoices, oldest first."""
        return [i for i in self.invoices.values() if i["_subscription"] == subscription_id]

    def invoice_refunded(self, invoice_id: str) -> str:
        """The ``charge.refunded`` event for an invoice's payment (the owner refunded it in the Dashboard)."""
        invoice = self.invoices[invoice_id]
        charge = {
            "id": self._next("ch"),
            "object": "charge",
            "amount": invoice["amount_paid"],
            "amount_refunded": invoice["amount_paid"],
            "currency": invoice["currency"],
            "payment_intent": invoice["_payment_intent"],
            "refunded": True,
        }
        return self._event("charge.refunded", charge)

    def subscription_updated(self, subscription_id: str) -> str:
        """The ``customer.subscription.updated`` event of the subscription as it is now."""
        subscription = self.subscriptions[subscription_id]
        if subscription["cancel_at_period_end"] and subscription["canceled_at"] is None:
            subscription["canceled_at"] = int(time.time())
        if not subscription["cancel_at_period_end"]:
            subscription["canceled_at"] = None
        return self._event(
            "customer.subscription.updated", {k: v for k, v in subscription.items() if not k.startswith("_")}
        )

    def subscription_deleted(self, subscription_id: str, *, at: int | None = None) -> str:
        """The ``customer.subscription.deleted`` event: the subscription ended at ``at`` (now by default)."""
        subscription = self.subscriptions[subscription_id]
        ended = int(time.time()) if at is None else at
        subscription.update(status="canceled", ended_at=ended, canceled_at=subscription["canceled_at"] or ended)
        return self._event(
            "customer.subscription.deleted", {k: v for k, v in subscription.items() if not k.startswith("_")}
        )
