"""Outside checkouts (Stripe, the generic signed webhook): what a paid or refunded checkout does.

The web side (``bot/web/webhooks.py``) checks the provider's signature and turns the request into a call here;
this module records the sale through the ledger's purchase path (``bot.core.sales.record_sale``: committed
first, access given once) and a refund through its refund path (access revoked once). Each provider event is
applied once by its id (``storage.checkout``): a replay or a redelivery is acknowledged and changes nothing.

A checkout that names a member (a signed reference from ``/buy``) is granted at once. One that names nobody
(bought on the website) becomes a one-time claim code: the success page shows it, and ``/claim CODE`` on either
platform attaches the purchase to the member who sends it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from analytics.formatting import fmt_day
from bot.core.alerts import SaleAlert
from bot.core.markup import bold, code, rich
from bot.core.payments import CheckoutReference
from bot.core.ports import AccessResult, CapabilityError, PlatformActions
from bot.core.replies import OutgoingMessage, Reply
from bot.core.sales import SalesDeps, alert, find_course, receive_refund, record_sale
from storage.checkout import (
    CLAIM_CODE_ALPHABET,
    EventState,
    attach_claim,
    claim_by_code,
    create_claim,
    finish_webhook_event,
    hash_code,
    redeem_claim,
    release_webhook_event,
    take_webhook_event,
    void_claim,
)
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ledger import purchase_by_charge
from storage.subscriptions import (
    SubscriptionRecord,
    billed_subscription,
    end_period_purchases_at,
    end_subscription_at,
    set_cancelled,
    subscription_of_charge,
)

if TYPE_CHECKING:
    from bot.config import CourseSettings

log = logging.getLogger(__name__)

CLAIM_LIFETIME: Final = timedelta(days=30)
_CLAIM_DOMAIN: Final = b"cohortbot-claim-code-v1\x00"
_CLAIM_LENGTH: Final = 10  # 50 bits; one-time, expiring, and only shown to whoever holds the checkout session
# Stripe metadata: the course a checkout sells, and (on a subscription made by /buy) the member's signed reference.
COURSE_METADATA_KEY: Final = "cohortbot_course"
REFERENCE_METADATA_KEY: Final = "cohortbot_reference"
# The chat platforms a checkout can be attached to (a card buyer is a member of one of them).
CHAT_PLATFORMS: Final = (Platform.TELEGRAM.value, Platform.DISCORD.value)


class CheckoutSessions(Protocol):
    """Creates a hosted card checkout for a member (Stripe Checkout); implemented in ``bot/stripe_checkout.py``."""

    async def create(self, course: CourseSettings, reference: str) -> str:
        """Create a checkout for ``course`` carrying the signed ``reference``; return the URL to pay at.

        Raises:
            CheckoutUnavailable: The provider refused or could not be reached.
        """
        ...

    async def set_cancelled(self, subscription_ref: str, *, cancelled: bool) -> None:
        """Stop a card subscription's renewals at the end of the paid period (``cancelled``), or resume them.

        Raises:
            CheckoutUnavailable: The provider refused or could not be reached; nothing changed.
        """
        ...

    async def cancel_now(self, subscription_ref: str) -> None:
        """End a card subscription now (its last payment was refunded): no further charge.

        Raises:
            CheckoutUnavailable: The provider refused or could not be reached.
        """
        ...


class CheckoutUnavailable(Exception):
    """The card checkout could not be created (the provider refused or is unreachable); the message says why."""


def claim_code(secret: str, provider: str, session_id: str) -> str:
    """The claim code of a checkout session: derived from it with the secret, so only its hash is ever stored.

    Returns:
        Ten letters and digits as ``XXXXX-XXXXX`` (no 0/O or 1/I).
    """
    digest = hmac.new(secret.encode(), _CLAIM_DOMAIN + f"{provider}:{session_id}".encode(), hashlib.sha256).digest()
    # 32 characters divide 256, so every character is equally likely.
    raw = "".join(CLAIM_CODE_ALPHABET[b % len(CLAIM_CODE_ALPHABET)] for b in digest[:_CLAIM_LENGTH])
    return f"{raw[:5]}-{raw[5:]}"


@dataclass(frozen=True, slots=True)
class Paid:
    """A paid checkout as the provider reported it.

    Attributes:
        provider: ``"stripe"`` or ``"checkout"``.
        event_id: The provider's event id (the idempotency key).
        event_type: The provider's event type, as stored.
        session_id: The checkout session (Stripe) or order id: the success page looks the claim up by it.
        charge_id: The id a later refund names (Stripe's PaymentIntent id, the order id).
        course_id: The course bought.
        amount: In the currency's minor units.
        currency: ISO code, upper case.
        occurred_at: When it was paid.
        buyer: The member it was made for (a verified reference), or None for a buyer without a chat account.
    """

    provider: str
    event_id: str
    event_type: str
    session_id: str
    charge_id: str
    course_id: str
    amount: int
    currency: str
    occurred_at: datetime
    buyer: CheckoutReference | None


@dataclass(frozen=True, slots=True)
class Handled:
    """What handling a webhook event did.

    Attributes:
        duplicate: The event was handled before; nothing changed.
        busy: Another delivery (maybe in another process) is applying the event right now; nothing changed here, and
            the provider should deliver it again later.
        claim_code: The code the buyer sends with ``/claim`` (a buyer without a chat account), if one was made.
        problem: Why nothing could be applied (unknown course): logged for the owners, the event is acknowledged.
    """

    duplicate: bool = False
    busy: bool = False
    claim_code: str | None = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class PaidPeriod:
    """One paid period of a card subscription (Stripe's ``invoice.paid``).

    Attributes:
        provider: ``"stripe"``.
        event_id: The provider's event id (the idempotency key).
        event_type: The provider's event type, as stored.
        subscription_ref: The provider's subscription id; renewals name the same one.
        charge_id: The id a refund names (Stripe's PaymentIntent id; the invoice id for an invoice paid without one).
        invoice_id: The provider's invoice id.
        course_id: The course, from the subscription's metadata (None when the subscription was not made by /buy).
        amount: In the currency's minor units.
        currency: ISO code, upper case.
        starts_at: When the paid period starts.
        ends_at: When it ends (access lasts until then).
        buyer: The member it is for (a verified reference from /buy), when the subscription carries one.
    """

    provider: str
    event_id: str
    event_type: str
    subscription_ref: str
    charge_id: str
    invoice_id: str
    course_id: str | None
    amount: int
    currency: str
    starts_at: datetime
    ends_at: datetime
    buyer: CheckoutReference | None


class _NoPlatform:
    """Stands in for a platform that is not running here: the sale is recorded, access waits for an admin."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    async def grant_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        return AccessResult(ok=False, problem=f"the {self.platform.value} bot is not running in this process")

    async def revoke_access(self, member: MemberRef, course: CourseSettings) -> AccessResult:
        return AccessResult(ok=False, problem=f"the {self.platform.value} bot is not running in this process")

    async def refund_payment(self, member: MemberRef, charge_id: str) -> None:
        raise CapabilityError("card payments are refunded in the checkout provider")


Notify = Callable[[OutgoingMessage], Awaitable[None]]
# Runs the subscriptions job now (removal from the course chat or role, the come-back message), once a card
# subscription ended before its paid time ran out.
SubscriptionsNow = Callable[[], Awaitable[object]]


class CheckoutDesk:
    """Applies outside-checkout events to the ledger and to access, once each.

    Args:
        deps: The dispatcher (settings, database, writer, secret, locks, clock).
        actions: The running platforms' capabilities by platform name (``"telegram"``, ``"discord"``).
        notify: Sends a receipt or notice privately to a member (the app routes it to the right adapter).
        billing: The card provider (Stripe), to stop a refunded subscription's renewals; None when not configured.
        subscriptions_now: Runs the subscriptions job at once (a card subscription ended early); None: the job's
            next scheduled run removes the member.
    """

    def __init__(
        self,
        deps: SalesDeps,
        actions: Mapping[str, PlatformActions],
        notify: Notify | None = None,
        *,
        billing: CheckoutSessions | None = None,
        subscriptions_now: SubscriptionsNow | None = None,
    ) -> None:
        self.deps = deps
        self._actions = actions
        self._notify = notify
        self._billing = billing
        self._subscriptions_now = subscriptions_now

    def actions_for(self, platform: str) -> PlatformActions:
        """The platform's capabilities; a stand-in that grants nothing when it is not running here."""
        found = self._actions.get(platform)
        return found if found is not None else _NoPlatform(Platform(platform))

    async def _tell(self, platform: str, user_id: str, reply: Reply) -> None:
        if self._notify is None:
            return
        try:
            await self._notify(OutgoingMessage(platform=platform, target=user_id, reply=reply, direct=True))
        except Exception as exc:  # the sale is recorded either way; the member sees it in /courses
            log.warning("could not tell %s user %s about their checkout: %s", platform, user_id, exc)

    @asynccontextmanager
    async def _once(self, provider: str, event_id: str, event_type: str) -> AsyncIterator[EventState]:
        """Apply an event at most once, across deliveries and processes.

        Yields ``"taken"`` when this delivery applies it (then it is marked handled when the block ends, or given
        back when the block fails, so the provider's next delivery applies it), ``"handled"`` for an event applied
        before, ``"busy"`` while another process is applying it.
        """
        engine = self.deps.engine
        # In this process, deliveries of one event queue up here: the later ones find it handled.
        async with self.deps.sale_locks(f"{provider}-event:{event_id}"):
            state: EventState = await asyncio.to_thread(
                take_webhook_event,
                engine,
                self.deps.community_id,
                provider=provider,
                event_id=event_id,
                event_type=event_type,
                now=self.deps.clock.now(),
            )
            if state != "taken":
                if state == "busy":
                    log.info(
                        "%s event %s is being applied by another delivery; asking for a later one",
                        provider,
                        event_id,
                    )
                yield state
                return
            try:
                yield state
            except BaseException:
                await asyncio.to_thread(release_webhook_event, engine, provider, event_id)
                raise
            await asyncio.to_thread(finish_webhook_event, engine, provider, event_id, at=self.deps.clock.now())

    @staticmethod
    def _skipped(state: EventState) -> Handled:
        return Handled(duplicate=state == "handled", busy=state == "busy")

    async def acknowledge(self, provider: str, event_id: str, event_type: str) -> Handled:
        """An event type cohortbot does not act on: stored once, so its replays are recognised too."""
        async with self._once(provider, event_id, event_type) as state:
            if state != "taken":
                return self._skipped(state)
            log.info("%s event %s (%s) acknowledged and ignored", provider, event_id, event_type)
        return Handled()

    async def paid(self, paid: Paid) -> Handled:
        """A checkout was paid: record the sale and give access, or make a claim code for a buyer without an account.

        The event is taken first (so a concurrent delivery, in this process or another, applies nothing), then the
        purchase is committed (unique by charge id) and access given, and only then is the event marked handled,
        all before the caller answers the provider.
        """
        async with self._once(paid.provider, paid.event_id, paid.event_type) as state:
            if state != "taken":
                return self._skipped(state)
            course = find_course(self.deps.settings, paid.course_id)
            if course is None:
                problem = f"course {paid.course_id!r} is not in [[courses]]"
                log.error(
                    "%s checkout %s (charge %s) paid for %s: nothing was recorded; add the course and record it "
                    "with /grant, or refund it in the provider",
                    paid.provider,
                    paid.session_id,
                    paid.charge_id,
                    problem,
                )
                return Handled(problem=problem)
            if paid.buyer is None:
                return await self._make_claim(paid)
            buyer = paid.buyer
            event = self._purchase(paid, buyer.platform, buyer.user_id)
            outcome = await record_sale(self.deps, event, self.actions_for(buyer.platform))
        if outcome.created or outcome.access is not None or outcome.problem:
            await self._tell(buyer.platform, buyer.user_id, outcome.reply)
        return Handled()

    async def period_paid(self, period: PaidPeriod) -> Handled:
        """A card subscription's period was paid: the first one subscribes the member, later ones renew.

        The member is the one the subscription was made for (its signed reference from /buy) or, for a renewal, the
        one it is stored for. A subscription cohortbot does not know and that names nobody (started on the website)
        is acknowledged and logged: an admin records it with /grant.
        """
        async with self._once(period.provider, period.event_id, period.event_type) as state:
            if state != "taken":
                return self._skipped(state)
            known = await self._billed(period.provider, period.subscription_ref)
            if known is not None:
                platform, user_id, course_id = known.platform, known.member_user_id, known.course_key
            elif period.buyer is not None:
                platform, user_id = period.buyer.platform, period.buyer.user_id
                course_id = period.buyer.course_id
            else:
                problem = f"subscription {period.subscription_ref} names no member (it was not started with /buy)"
                log.warning(
                    "%s invoice %s paid for %s: nothing recorded; ask the buyer to subscribe with /buy in the chat, "
                    "or record it with /grant",
                    period.provider,
                    period.invoice_id,
                    problem,
                )
                return Handled(problem=problem)
            if find_course(self.deps.settings, course_id) is None:
                problem = f"course {course_id!r} is not in [[courses]]"
                log.error(
                    "%s subscription %s renewed (invoice %s) for %s: nothing recorded; add the course back, or "
                    "cancel and refund it in the provider",
                    period.provider,
                    period.subscription_ref,
                    period.invoice_id,
                    problem,
                )
                return Handled(problem=problem)
            event = PurchaseEvent(
                platform=Platform(platform),
                community=self.deps.settings.community.name,
                charge_id=period.charge_id,
                member=MemberRef(user_id),
                course_id=course_id,
                amount=period.amount,
                currency=period.currency,
                occurred_at=period.starts_at,
                source=PurchaseSource.STRIPE,
                provider_charge_id=period.invoice_id,
                access_ends_at=period.ends_at,
                subscription_ref=period.subscription_ref,
            )
            outcome = await record_sale(self.deps, event, self.actions_for(platform))
        if outcome.created or outcome.access is not None or outcome.problem:
            await self._tell(platform, user_id, outcome.reply)
        return Handled()

    async def _billed(self, provider: str, subscription_ref: str) -> SubscriptionRecord | None:
        return await asyncio.to_thread(
            billed_subscription, self.deps.engine, self.deps.community_id, provider, subscription_ref
        )

    async def subscription_changed(
        self,
        *,
        provider: str,
        event_id: str,
        event_type: str,
        subscription_ref: str,
        cancelled_at: datetime | None,
    ) -> Handled:
        """The member cancelled a card subscription (no more renewals; access lasts the paid time), or resumed it."""
        async with self._once(provider, event_id, event_type) as state:
            if state != "taken":
                return self._skipped(state)
            engine, community_id = self.deps.engine, self.deps.community_id
            record = await self._billed(provider, subscription_ref)
            if record is None:
                return Handled()
            changed = await asyncio.to_thread(
                set_cancelled, engine, community_id, record.platform, subscription_ref, cancelled_at
            )
            if changed:
                until = fmt_day(record.ends_at.astimezone(self.deps.settings.community.tz).date())
                await alert(
                    self.deps,
                    SaleAlert(
                        "cancellation" if cancelled_at is not None else "resumed",
                        record.platform,
                        MemberRef(record.member_user_id),
                        record.title,
                        note=f"paid until {until}",
                    ),
                )
        return Handled()

    async def subscription_ended(
        self, *, provider: str, event_id: str, event_type: str, subscription_ref: str, at: datetime
    ) -> Handled:
        """A card subscription ended (cancelled and run out, unpaid, or ended by the owner): access ends at ``at``.

        The subscription and its periods' purchases end then, so the daily access check never gives access
        back; the subscriptions job removes the member (once) and tells them how to come back.
        """
        async with self._once(provider, event_id, event_type) as state:
            if state != "taken":
                return self._skipped(state)
            engine, community_id = self.deps.engine, self.deps.community_id
            record = await self._billed(provider, subscription_ref)
            if record is None:
                log.info("%s subscription %s ended; cohortbot never recorded it", provider, subscription_ref)
                return Handled()
            await asyncio.to_thread(end_subscription_at, engine, community_id, record.platform, subscription_ref, at)
            # No renewal comes any more: the subscriptions job removes the member now, without a renewal's grace.
            await asyncio.to_thread(set_cancelled, engine, community_id, record.platform, subscription_ref, at)
            await asyncio.to_thread(
                end_period_purchases_at, engine, community_id, record.platform, subscription_ref, at
            )
            log.info(
                "%s subscription %s of %s user %s to %r ended at %s",
                provider,
                subscription_ref,
                record.platform,
                record.member_user_id,
                record.course_key,
                at.isoformat(),
            )
        if self._subscriptions_now is not None and at <= self.deps.clock.now():
            try:
                await self._subscriptions_now()
            except Exception:  # the scheduled run removes the member anyway
                log.exception(
                    "running the subscriptions job after %s subscription %s ended",
                    provider,
                    subscription_ref,
                )
        return Handled()

    def _purchase(self, paid: Paid, platform: str, user_id: str) -> PurchaseEvent:
        return PurchaseEvent(
            platform=Platform(platform),
            community=self.deps.settings.community.name,
            charge_id=paid.charge_id,
            member=MemberRef(user_id),
            course_id=paid.course_id,
            amount=paid.amount,
            currency=paid.currency,
            occurred_at=paid.occurred_at,
            source=PurchaseSource.STRIPE if paid.provider == "stripe" else PurchaseSource.CHECKOUT,
            provider_charge_id=paid.session_id,
        )

    async def _make_claim(self, paid: Paid) -> Handled:
        secret = self.deps.signing_secret or ""
        code_text = claim_code(secret, paid.provider, paid.session_id)
        now = self.deps.clock.now()
        created = await asyncio.to_thread(
            create_claim,
            self.deps.engine,
            self.deps.community_id,
            provider=paid.provider,
            event_id=paid.event_id,
            session_id=paid.session_id,
            code_hash=hash_code(code_text),
            charge_id=paid.charge_id,
            course_key=paid.course_id,
            amount=paid.amount,
            currency=paid.currency,
            paid_at=paid.occurred_at,
            expires_at=now + CLAIM_LIFETIME,
            received_at=now,
        )
        if not created:
            return Handled(duplicate=True, claim_code=code_text)
        log.info("%s checkout %s paid without a chat account: claim code issued", paid.provider, paid.session_id)
        return Handled(claim_code=code_text)

    async def refunded(self, *, provider: str, event_id: str, event_type: str, charge_id: str, at: datetime) -> Handled:
        """A checkout's payment was refunded: record the refund and take access away, once.

        A refunded card subscription payment also ends the subscription in the provider, so the member is not
        charged again for access they no longer have.
        """
        notice: tuple[str, str, Reply] | None = None
        problem: str | None = None
        async with self._once(provider, event_id, event_type) as state:
            if state != "taken":
                return self._skipped(state)
            engine, community_id = self.deps.engine, self.deps.community_id
            if await asyncio.to_thread(void_claim, engine, community_id, provider, charge_id, at):
                log.info(
                    "%s charge %s refunded before anyone claimed it: its claim code no longer works",
                    provider,
                    charge_id,
                )
                return Handled()
            for platform in CHAT_PLATFORMS:
                purchase = await asyncio.to_thread(purchase_by_charge, engine, community_id, platform, charge_id)
                if purchase is None:
                    continue
                refund = RefundEvent(
                    platform=Platform(platform),
                    community=self.deps.settings.community.name,
                    charge_id=charge_id,
                    occurred_at=at,
                    reason=f"refunded in {provider}",
                )
                reply = await receive_refund(self.deps, refund, None, self.actions_for(platform))
                if reply is not None and purchase.member_user_id is not None:
                    notice = (platform, purchase.member_user_id, reply)
                await self._stop_refunded_subscription(platform, charge_id)
                break
            else:
                problem = f"no purchase with charge {charge_id} is recorded"
                log.warning("%s refund of charge %s: %s; nothing to revoke", provider, charge_id, problem)
        if notice is not None:
            await self._tell(*notice)
        return Handled(problem=problem)

    async def _stop_refunded_subscription(self, platform: str, charge_id: str) -> None:
        subscription = await asyncio.to_thread(
            subscription_of_charge, self.deps.engine, self.deps.community_id, platform, charge_id
        )
        if subscription is None or subscription.provider is None or subscription.ended_at is not None:
            return
        if self._billing is None:
            log.error(
                "refunded a payment of %s subscription %s, but %s is not configured here: cancel it there by hand",
                subscription.provider,
                subscription.subscription_ref,
                subscription.provider,
            )
            return
        try:
            await self._billing.cancel_now(subscription.subscription_ref)
        except CheckoutUnavailable as exc:  # the refund stands; the owners must stop the renewals by hand
            log.error(
                "refunded a payment of %s subscription %s, but cancelling it failed (%s): cancel it there by hand",
                subscription.provider,
                subscription.subscription_ref,
                exc,
            )

    async def claim(self, platform: Platform, member: MemberRef, code_text: str, actions: PlatformActions) -> Reply:
        """``/claim CODE``: attach a paid checkout to the member who sends its code, and give access.

        Returns:
            The receipt, or why the code does not work (unknown, used, expired, refunded).
        """
        engine, community_id, now = self.deps.engine, self.deps.community_id, self.deps.clock.now()
        code_hash = hash_code(code_text)
        claim = await asyncio.to_thread(redeem_claim, engine, community_id, code_hash, now)
        if claim is None:
            known = await asyncio.to_thread(claim_by_code, engine, community_id, code_hash)
            if known is None:
                why = "This code is not valid. Check it on the page you saw after paying and send it again."
            elif known.refunded_at is not None:
                why = "This payment was refunded, so there is nothing to claim."
            elif known.claimed_at is not None:
                why = "This code was already used. Send /courses to see what you own."
            else:
                why = "This code has expired. Write to an admin with your payment receipt; they will sort it out."
            return Reply.say(why, private=True)
        paid = Paid(
            provider=claim.provider,
            event_id="",
            event_type="claim",
            session_id=claim.session_id,
            charge_id=claim.charge_id,
            course_id=claim.course_key,
            amount=claim.amount,
            currency=claim.currency,
            occurred_at=claim.paid_at,
            buyer=None,
        )
        outcome = await record_sale(self.deps, self._purchase(paid, platform.value, member.user_id), actions)
        await asyncio.to_thread(attach_claim, engine, claim.id, community_id, platform.value, member.user_id)
        log.info(
            "%s checkout %s claimed by %s user %s", claim.provider, claim.session_id, platform.value, member.user_id
        )
        if outcome.created or outcome.access is not None:
            return outcome.reply
        return Reply(
            rich(["This payment (", code(claim.charge_id), ") is already recorded for ", bold("you"), "."]), True
        )
