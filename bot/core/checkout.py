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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Protocol

from bot.core.markup import bold, code, rich
from bot.core.payments import CheckoutReference
from bot.core.ports import AccessResult, CapabilityError, PlatformActions
from bot.core.replies import OutgoingMessage, Reply
from bot.core.sales import SalesDeps, find_course, receive_refund, record_sale
from storage.checkout import (
    CLAIM_CODE_ALPHABET,
    attach_claim,
    claim_by_code,
    create_claim,
    hash_code,
    record_webhook_event,
    redeem_claim,
    void_claim,
    webhook_event_seen,
)
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ledger import purchase_by_charge

if TYPE_CHECKING:
    from bot.config import CourseSettings

log = logging.getLogger(__name__)

CLAIM_LIFETIME: Final = timedelta(days=30)
_CLAIM_DOMAIN: Final = b"cohortbot-claim-code-v1\x00"
_CLAIM_LENGTH: Final = 10  # 50 bits; one-time, expiring, and only shown to whoever holds the checkout session
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
        claim_code: The code the buyer sends with ``/claim`` (a buyer without a chat account), if one was made.
        problem: Why nothing could be applied (unknown course): logged for the owners, the event is acknowledged.
    """

    duplicate: bool = False
    claim_code: str | None = None
    problem: str | None = None


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


class CheckoutDesk:
    """Applies outside-checkout events to the ledger and to access, once each.

    Args:
        deps: The dispatcher (settings, database, writer, secret, locks, clock).
        actions: The running platforms' capabilities by platform name (``"telegram"``, ``"discord"``).
        notify: Sends a receipt or notice privately to a member (the app routes it to the right adapter).
    """

    def __init__(self, deps: SalesDeps, actions: Mapping[str, PlatformActions], notify: Notify | None = None) -> None:
        self.deps = deps
        self._actions = actions
        self._notify = notify

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

    async def _seen(self, provider: str, event_id: str) -> bool:
        return await asyncio.to_thread(webhook_event_seen, self.deps.engine, provider, event_id)

    async def _store(self, provider: str, event_id: str, event_type: str) -> None:
        stored = await asyncio.to_thread(
            record_webhook_event,
            self.deps.engine,
            self.deps.community_id,
            provider=provider,
            event_id=event_id,
            event_type=event_type,
            at=self.deps.clock.now(),
        )
        if not stored:
            log.info("%s event %s was stored by another delivery meanwhile", provider, event_id)

    async def acknowledge(self, provider: str, event_id: str, event_type: str) -> Handled:
        """An event type cohortbot does not act on: stored once, so its replays are recognised too."""
        if await self._seen(provider, event_id):
            return Handled(duplicate=True)
        log.info("%s event %s (%s) acknowledged and ignored", provider, event_id, event_type)
        await self._store(provider, event_id, event_type)
        return Handled()

    async def paid(self, paid: Paid) -> Handled:
        """A checkout was paid: record the sale and give access, or make a claim code for a buyer without an account.

        The purchase is committed (unique by charge id, so a concurrent delivery in another process stores it
        once) before the event is stored, and both before the caller answers the provider.
        """
        async with self.deps.sale_locks(f"{paid.provider}-event:{paid.event_id}"):
            if await self._seen(paid.provider, paid.event_id):
                return Handled(duplicate=True)
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
                await self._store(paid.provider, paid.event_id, paid.event_type)
                return Handled(problem=problem)
            if paid.buyer is None:
                return await self._make_claim(paid)
            buyer = paid.buyer
            event = self._purchase(paid, buyer.platform, buyer.user_id)
            outcome = await record_sale(self.deps, event, self.actions_for(buyer.platform))
            await self._store(paid.provider, paid.event_id, paid.event_type)
        if outcome.created or outcome.access is not None or outcome.problem:
            await self._tell(buyer.platform, buyer.user_id, outcome.reply)
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
            event_type=paid.event_type,
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
        """A checkout's payment was refunded: record the refund and take access away, once."""
        async with self.deps.sale_locks(f"{provider}-event:{event_id}"):
            if await self._seen(provider, event_id):
                return Handled(duplicate=True)
            engine, community_id = self.deps.engine, self.deps.community_id
            if await asyncio.to_thread(void_claim, engine, community_id, provider, charge_id, at):
                log.info(
                    "%s charge %s refunded before anyone claimed it: its claim code no longer works",
                    provider,
                    charge_id,
                )
                await self._store(provider, event_id, event_type)
                return Handled()
            notice: tuple[str, str, Reply] | None = None
            problem: str | None = None
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
                break
            else:
                problem = f"no purchase with charge {charge_id} is recorded"
                log.warning("%s refund of charge %s: %s; nothing to revoke", provider, charge_id, problem)
            await self._store(provider, event_id, event_type)
        if notice is not None:
            await self._tell(*notice)
        return Handled(problem=problem)

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
