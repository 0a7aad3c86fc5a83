"""Stripe, through the official ``stripe`` library: Checkout Sessions for ``/buy`` and webhook verification.

The only module that imports ``stripe``. Its HTTP calls are blocking, so they run in a worker thread and never
hold up the event loop. The API key and the webhook signing secret come from the environment
(``COHORTBOT_STRIPE_API_KEY``, ``COHORTBOT_STRIPE_WEBHOOK_SECRET``) and are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import stripe

from bot.core.checkout import COURSE_METADATA_KEY, REFERENCE_METADATA_KEY, CheckoutUnavailable
from bot.web.links import base_url

if TYPE_CHECKING:
    from stripe.params.checkout import SessionCreateParams

    from bot.config import CourseSettings, Settings

log = logging.getLogger(__name__)

SUCCESS_PATH: Final = "/checkout/success"
CANCEL_PATH: Final = "/checkout/cancel"
# Stripe fills in the session id, so the success page can show the claim code of exactly that checkout.
SESSION_PLACEHOLDER: Final = "{CHECKOUT_SESSION_ID}"


class InvalidStripeEvent(Exception):
    """A webhook body that is not signed with the endpoint's secret (forged, altered, too old) or not an event."""


class StripeCheckout:
    """Creates Checkout Sessions and checks webhooks for one Stripe account.

    Args:
        settings: The configuration (``[stripe]``, ``[web] public_url``, the courses).
        api_key: ``COHORTBOT_STRIPE_API_KEY``.
        webhook_secret: ``COHORTBOT_STRIPE_WEBHOOK_SECRET``.
    """

    def __init__(self, settings: Settings, api_key: str, webhook_secret: str) -> None:
        self._settings = settings
        self._webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": settings.stripe.api_base_url.rstrip("/")},
            max_network_retries=2,  # Stripe's idempotency keys make its retries safe
        )

    def __repr__(self) -> str:
        return "StripeCheckout(api_key='***', webhook_secret='***')"

    def success_url(self) -> str:
        """Where Stripe sends the buyer after paying: ``[stripe] success_url``, else the bot's own page."""
        configured = self._settings.stripe.success_url
        return configured or f"{base_url(self._settings)}{SUCCESS_PATH}?session_id={SESSION_PLACEHOLDER}"

    def cancel_url(self) -> str:
        """Where Stripe sends a buyer who gave up."""
        return self._settings.stripe.cancel_url or f"{base_url(self._settings)}{CANCEL_PATH}"

    async def create(self, course: CourseSettings, reference: str) -> str:
        """Create a Checkout Session for ``course`` bound to the signed ``reference``; return its URL.

        Raises:
            CheckoutUnavailable: Stripe refused (say an unknown price) or could not be reached.
        """
        if course.stripe_price_id is None:
            raise CheckoutUnavailable(f"course {course.id!r} has no stripe_price_id")
        metadata = {COURSE_METADATA_KEY: course.id}
        params: SessionCreateParams = {
            "line_items": [{"price": course.stripe_price_id, "quantity": 1}],
            "client_reference_id": reference,
            "metadata": metadata,
            "success_url": self.success_url(),
            "cancel_url": self.cancel_url(),
        }
        if course.billing == "monthly":
            # A recurring Price: Stripe bills every period. The reference rides on the subscription, so every
            # invoice it pays names the member (its parent's subscription_details.metadata).
            params["mode"] = "subscription"
            params["subscription_data"] = {"metadata": {**metadata, REFERENCE_METADATA_KEY: reference}}
        else:
            params["mode"] = "payment"
            params["payment_intent_data"] = {"metadata": metadata}
        try:
            session = await asyncio.to_thread(self._client.v1.checkout.sessions.create, params)
        except stripe.StripeError as exc:
            raise CheckoutUnavailable(f"Stripe refused the checkout: {exc.user_message or exc}") from exc
        url = session.url
        if not url:
            raise CheckoutUnavailable("Stripe returned a checkout session without a URL")
        return str(url)

    def construct_event(self, payload: bytes, signature: str | None) -> stripe.Event:
        """Verify a webhook body's ``Stripe-Signature`` and parse it.

        Raises:
            InvalidStripeEvent: Not signed with this endpoint's secret (or too old to be a live delivery), or not JSON.
        """
        try:
            event: stripe.Event = stripe.Webhook.construct_event(payload, signature, self._webhook_secret)
        except (stripe.SignatureVerificationError, ValueError) as exc:
            raise InvalidStripeEvent(str(exc)) from exc
        return event

    async def session_course(self, session: Mapping[str, Any]) -> str | None:
        """The course a paid session bought: our metadata (``/buy``, or set on a Payment Link), else its price.

        Returns:
            The course id, or None when no configured course matches.
        """
        metadata = session.get("metadata") or {}
        course_id = metadata.get(COURSE_METADATA_KEY)
        if course_id:
            return str(course_id)
        by_price = {c.stripe_price_id: c.id for c in self._settings.courses if c.stripe_price_id}
        try:
            items = await asyncio.to_thread(self._client.v1.checkout.sessions.line_items.list, str(session["id"]))
        except stripe.StripeError as exc:
            log.error("could not read the line items of Stripe checkout %s: %s", session.get("id"), exc)
            return None
        for item in items.data:
            price_id = item.price.id if item.price is not None else None
            if price_id is not None and price_id in by_price:
                return by_price[price_id]
        return None

    async def set_cancelled(self, subscription_ref: str, *, cancelled: bool) -> None:
        """Cancel a subscription at the end of its paid period (``cancelled``), or take that back.

        Raises:
            CheckoutUnavailable: Stripe refused or could not be reached; nothing changed.
        """
        try:
            await asyncio.to_thread(
                self._client.v1.subscriptions.update, subscription_ref, {"cancel_at_period_end": cancelled}
            )
        except stripe.StripeError as exc:
            raise CheckoutUnavailable(f"Stripe refused: {exc.user_message or exc}") from exc

    async def cancel_now(self, subscription_ref: str) -> None:
        """End a subscription now: no further invoice (Stripe then sends ``customer.subscription.deleted``).

        Raises:
            CheckoutUnavailable: Stripe refused or could not be reached.
        """
        try:
            await asyncio.to_thread(self._client.v1.subscriptions.cancel, subscription_ref)
        except stripe.StripeError as exc:
            raise CheckoutUnavailable(f"Stripe refused: {exc.user_message or exc}") from exc

    async def invoice_payment_intent(self, invoice: Mapping[str, Any]) -> str | None:
        """The PaymentIntent that paid an invoice: the id a refund's ``charge.refunded`` names.

        Webhook payloads of older API versions carry it as ``payment_intent``; newer ones list the invoice's payments
        only on request, so they are asked for.

        Returns:
            The PaymentIntent id, or None for an invoice paid without one (a zero amount, a credit balance).

        Raises:
            CheckoutUnavailable: Stripe could not be asked; the webhook fails and Stripe delivers it again.
        """
        legacy = invoice.get("payment_intent")
        if isinstance(legacy, str) and legacy:
            return legacy
        if not invoice.get("amount_paid"):
            return None
        try:
            payments = await asyncio.to_thread(
                self._client.v1.invoice_payments.list, {"invoice": str(invoice["id"]), "status": "paid"}
            )
        except stripe.StripeError as exc:
            raise CheckoutUnavailable(f"could not read the payments of invoice {invoice.get('id')}: {exc}") from exc
        for payment in payments.data:
            intent = payment.payment.payment_intent if payment.payment is not None else None
            if intent:
                return intent if isinstance(intent, str) else str(intent.id)
        return None
