"""A fake Stripe API on 127.0.0.1 for the real ``stripe`` library, and webhook events signed like Stripe signs them.

Serves what cohortbot calls: ``POST /v1/checkout/sessions`` (form-encoded, as the library sends it) and
``GET /v1/checkout/sessions/{id}/line_items``. :meth:`FakeStripe.completed` and :meth:`FakeStripe.refunded` build
the events Stripe would send when the buyer pays or the owner refunds; :func:`sign` makes the ``Stripe-Signature``
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
