"""Selling courses: checking a checkout before the charge, recording a sale or refund, granting and revoking access.

The order is always ledger first, platform second: a purchase is committed (``EventWriter.record_purchase``)
before the buyer is given access, and access is given only when the purchase was newly recorded, so a payment
delivered twice (a retried webhook, a replayed update) is stored once and grants once. Problems an admin must fix
(a bot without the permission to add roles, a course missing from the config) are logged at ERROR with what to do;
the buyer is told that an admin will sort it out.

Money the bot cannot turn into a sale goes back where the platform lets the bot return it (Telegram Stars): a
second payment for a course the buyer already owns (two invoices checked out before either was paid) is refunded
and recorded as a refund; a payment whose payer is not the member the invoice was signed for is refused and
refunded. A payment that matches no course is kept as an unmatched payment, and the owners are told how to
refund it (``/refund charge <id>``). Each of these happens once, however often the payment is delivered.

Adapters call these from their payment handlers (Telegram ``pre_checkout_query``/``successful_payment``/
``refunded_payment``, Discord entitlements); ``/grant`` and ``/refund`` call them too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol

from analytics.formatting import fmt_day, fmt_money, plural
from bot.config import BILLING_PERIOD_DAYS
from bot.core.alerts import AlertKind, SaleAlert, SaleAlerts
from bot.core.locks import KeyedLocks
from bot.core.markup import Rich, Span, bold, code, rich
from bot.core.payments import PaymentError, verify_payload
from bot.core.ports import AccessResult, PlatformActions, SubscriptionActions
from bot.core.replies import Reply
from storage.errors import UnknownCourseError, UnknownPurchaseError
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ledger import (
    access_granted,
    earlier_live_purchase,
    end_access,
    live_purchase,
    mark_access_granted,
    mark_unmatched_refunded,
    purchase_by_charge,
    record_unmatched_payment,
    unmatched_payment,
)
from storage.subscriptions import (
    PeriodOutcome,
    end_subscription_at,
    record_period,
    set_cancelled,
    subscription_of_charge,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.clock import Clock
    from bot.config import CourseSettings, Settings
    from storage.writer import EventWriter

log = logging.getLogger(__name__)

STARS = "XTR"
# The answer to a checkout that could not be checked (a bug, the database away): refused, so nobody pays for nothing.
CHECKOUT_FAILED = "Something went wrong on our side and you were not charged. Please try again in a minute."


class SalesDeps(Protocol):
    """What selling needs: a :class:`~bot.core.dispatcher.Dispatcher` has it, and so has a ``CommandContext``."""

    @property
    def settings(self) -> Settings:
        """The configuration (courses)."""
        ...

    @property
    def engine(self) -> Engine:
        """The database."""
        ...

    @property
    def writer(self) -> EventWriter:
        """The event writer (the ledger)."""
        ...

    @property
    def community_id(self) -> int:
        """The community's database id."""
        ...

    @property
    def signing_secret(self) -> str | None:
        """``COHORTBOT_SECRET``, which signs invoice payloads."""
        ...

    @property
    def sale_locks(self) -> KeyedLocks:
        """One lock per payment, so a payment delivered twice at once is granted once."""
        ...

    @property
    def clock(self) -> Clock:
        """The current time (whether an entitlement's access has ended)."""
        ...

    @property
    def alerts(self) -> SaleAlerts | None:
        """Where the owners hear about sales, renewals, refunds and failed grants (``[sales]``); None: nowhere."""
        ...


async def alert(dispatcher: SalesDeps, sale_alert: SaleAlert) -> None:
    """Post one sale alert to the owners' alert chat and channel, if configured (never to members)."""
    sink = dispatcher.alerts
    if sink is not None and sink.enabled:
        await sink.post(sale_alert)


def is_subscription_payment(event: PurchaseEvent, course: CourseSettings | None) -> bool:
    """Whether a payment is one period of a monthly course (a Telegram Stars or a Stripe subscription payment)."""
    return (
        course is not None
        and course.billing == "monthly"
        and event.access_ends_at is not None
        and (event.platform is Platform.TELEGRAM or event.source is PurchaseSource.STRIPE)
        and event.source is not PurchaseSource.GRANT  # an admin's grant of one period renews nothing
    )


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    """What recording a sale or refund did.

    Attributes:
        created: The purchase (or refund) was newly recorded; False for a replay or when nothing could be stored.
        course: The configured course, when it still is configured.
        access: The result of granting (sale) or revoking (refund) access; None when it was not attempted.
        reply: What to tell the buyer (the receipt, or the refund notice).
        problem: Nothing could be stored and an admin must look (the buyer is told so, however often it comes).
    """

    created: bool
    course: CourseSettings | None
    access: AccessResult | None
    reply: Reply
    problem: bool = False


def find_course(settings: Settings, course_id: str) -> CourseSettings | None:
    """The configured course with this id (courses removed from the config are no longer sold)."""
    for course in settings.courses:
        if course.id == course_id:
            return course
    return None


async def check_checkout(
    dispatcher: SalesDeps, *, platform: str, user_id: str, payload: str, amount: int, currency: str
) -> str | None:
    """Decide whether a checkout may be charged (Telegram ``pre_checkout_query``; answer within 10 s).

    Args:
        dispatcher: The dispatcher (settings, database, signing secret), or a command's context.
        platform: The platform of the buyer.
        user_id: The buyer's platform user id.
        payload: The invoice payload the platform sent back.
        amount: The amount about to be charged.
        currency: Its currency (``XTR`` for Telegram Stars).

    Returns:
        None when the charge may go ahead; otherwise the reason to show the buyer (the charge is refused).
    """
    secret = dispatcher.signing_secret
    if not secret:
        log.error("a checkout arrived but COHORTBOT_SECRET is not set: set it to sell courses in Telegram")
        return "Sales are not set up right now. Please try again later; the admins have been told."
    try:
        signed = verify_payload(secret, payload)
    except PaymentError as exc:
        log.warning("refused a checkout by %s user %s: %s", platform, user_id, exc)
        return "This invoice is not valid. Send /courses and buy again for a fresh one."
    if signed.user_id != user_id:
        log.warning("refused a checkout by %s user %s of an invoice made for %s", platform, user_id, signed.user_id)
        return "This invoice was made for another member. Send /buy with the course id to get your own."
    course = find_course(dispatcher.settings, signed.course_id)
    if course is None or course.price_stars is None:
        return f"The course {signed.course_id!r} is no longer for sale. See /courses for what is."
    if currency != STARS or amount != signed.amount or amount != course.price_stars:
        return f"The price of {course.title} has changed. Send /buy {course.id} for a fresh invoice."
    if await owns_course(dispatcher, platform=str(platform), user_id=user_id, course_id=course.id):
        return f"You already own {course.title}; you have not been charged."
    return None


async def owns_course(dispatcher: SalesDeps, *, platform: str, user_id: str, course_id: str) -> bool:
    """Whether the member holds a live purchase of the course (bought, not refunded, not ended).

    Args:
        dispatcher: The dispatcher (database), or a command's context.
        platform: The member's platform.
        user_id: The member's platform user id.
        course_id: The course.

    Returns:
        True when a checkout for the course must not charge the member again.
    """
    owned = await asyncio.to_thread(
        live_purchase, dispatcher.engine, dispatcher.community_id, platform, user_id, course_id
    )
    return owned is not None


def course_charge(course: CourseSettings) -> tuple[int, str] | None:
    """What a checkout charges for a course: its Stars price, else its money price in cents; None without a price.

    Returns:
        ``(amount, currency)`` with the amount in the currency's smallest unit (``XTR`` has none), as a
        :class:`~storage.events.PurchaseEvent` records it.
    """
    if course.price_stars is not None:
        return course.price_stars, STARS
    if course.price is not None and course.currency:
        return int((course.price * 100).to_integral_value()), course.currency
    return None


def simulated_sales_allowed(settings: Settings) -> bool:
    """Whether a pretend payment (the console's ``:pay``) may be recorded in this config's database.

    Only where no real platform runs: a database a live Telegram or Discord community writes to would count a
    pretend sale as revenue in its reports.
    """
    return not (settings.telegram.enabled or settings.discord.enabled)


async def _grant(actions: PlatformActions, member: MemberRef, course: CourseSettings) -> AccessResult:
    try:
        return await actions.grant_access(member, course)
    except Exception as exc:  # a platform failure must not lose the fact that the sale is recorded
        log.exception("granting %s access to %r failed", member.user_id, course.id)
        return AccessResult(ok=False, problem=f"granting access failed: {exc}")


async def _after_grant(
    dispatcher: SalesDeps,
    what: str,
    event: PurchaseEvent,
    course: CourseSettings,
    access: AccessResult,
    purchase_id: int,
) -> str:
    """Mark the purchase's access as given, or log why not; the line the buyer's receipt gets for it (may be empty)."""
    if access.ok:
        await asyncio.to_thread(mark_access_granted, dispatcher.engine, purchase_id, at=event.occurred_at)
        return access.detail
    log.error(
        "%s %s of %r by %s user %s is recorded but access could not be given: %s",
        what,
        event.charge_id,
        course.id,
        event.platform.value,
        event.member.user_id,
        access.problem or "no reason given",
    )
    return "We could not give you access automatically; the admins have been told and will sort it out."


async def _revoke(actions: PlatformActions, member: MemberRef, course: CourseSettings) -> AccessResult:
    try:
        return await actions.revoke_access(member, course)
    except Exception as exc:  # the refund is recorded whatever the platform says
        log.exception("revoking %s access to %r failed", member.user_id, course.id)
        return AccessResult(ok=False, problem=f"revoking access failed: {exc}")


async def _revoke_unless_still_owned(
    dispatcher: SalesDeps,
    actions: PlatformActions,
    platform: str,
    member: MemberRef,
    course: CourseSettings,
    *,
    now: datetime | None = None,
) -> AccessResult:
    """Revoke ``member``'s access to ``course``, unless another purchase of it is still live at ``now``."""
    still_owned = await asyncio.to_thread(
        live_purchase, dispatcher.engine, dispatcher.community_id, platform, member.user_id, course.id, now=now
    )
    if still_owned is not None:
        # Bought twice (say a Stars payment and an admin grant): the other purchase still gives access.
        return AccessResult(ok=True, detail="access kept: another purchase of the course is still live")
    return await _revoke(actions, member, course)


async def record_sale(dispatcher: SalesDeps, event: PurchaseEvent, actions: PlatformActions) -> SaleOutcome:
    """Commit a purchase, then give the buyer access, once.

    A payment delivered again finds its purchase and grants nothing more, unless the first delivery never got to
    grant access (the bot stopped in between): then the redelivery finishes the grant.

    Args:
        dispatcher: The dispatcher (settings, writer), or a command's context.
        event: The purchase as the platform (or ``/grant``) reported it.
        actions: The platform's capabilities (grant access).

    Returns:
        The outcome; ``reply`` is the receipt for the buyer.
    """
    platform = event.platform.value
    # One lock per charge (a redelivery racing the original) and one per buyer and course (two payments for the
    # same course racing each other: the second must see the first to be refunded as the duplicate). Always taken
    # in this order, so they never deadlock.
    async with (
        dispatcher.sale_locks(f"{platform}:{event.charge_id}"),
        dispatcher.sale_locks(f"owner:{platform}:{event.member.user_id}:{event.course_id}"),
    ):
        return await _record_sale(dispatcher, event, actions)


def _stars(amount: int) -> str:
    return fmt_money(Decimal(amount), "XTR")


def _already_returned(exc: Exception) -> bool:
    # Telegram answers CHARGE_ALREADY_REFUNDED when the Stars went back before (a crash after refunding).
    return "already_refunded" in str(exc).lower().replace(" ", "_")


async def _refund_duplicate(
    dispatcher: SalesDeps, event: PurchaseEvent, course: CourseSettings | None, actions: PlatformActions, *, new: bool
) -> SaleOutcome:
    """Give back a second payment for a course the buyer already owns, record the refund, tell the buyer once."""
    title = course.title if course else event.course_id
    platform = event.platform.value
    stored = await asyncio.to_thread(
        purchase_by_charge, dispatcher.engine, dispatcher.community_id, platform, event.charge_id
    )
    if stored is not None and stored.refunded_at is not None:
        return SaleOutcome(
            created=False,
            course=course,
            access=None,
            reply=Reply(rich(["Your second payment for ", bold(title), " was already refunded."]), private=True),
        )
    try:
        await actions.refund_payment(event.member, event.charge_id)
    except Exception as exc:
        if not _already_returned(exc):
            log.error(
                "%s user %s paid twice for %r (charge %s) but the refund failed: %s; refund it with /refund charge %s",
                platform,
                event.member.user_id,
                event.course_id,
                event.charge_id,
                exc,
                event.charge_id,
            )
            return SaleOutcome(
                created=new,  # told once; a redelivery retries the refund quietly
                course=course,
                access=None,
                reply=Reply(
                    rich(
                        ["You already own ", bold(title), ", so this payment was not needed."],
                        "We could not refund it automatically; the admins have been told and will refund you.",
                        ["Your payment reference: ", code(event.charge_id)],
                    ),
                    private=True,
                ),
            )
    refund = RefundEvent(
        platform=event.platform,
        community=event.community,
        charge_id=event.charge_id,
        occurred_at=dispatcher.clock.now(),
        reason="paid twice: the member already owned the course",
    )
    recorded = await dispatcher.writer.record_refund(refund)
    log.warning(
        "%s user %s paid twice for %r: charge %s refunded automatically",
        platform,
        event.member.user_id,
        event.course_id,
        event.charge_id,
    )
    return SaleOutcome(
        created=recorded.created,
        course=course,
        access=None,
        reply=Reply(
            rich(
                [
                    "You already own ",
                    bold(title),
                    f", so this payment of {_stars(event.amount)} was refunded to you automatically.",
                ],
                "Your access is unchanged.",
                ["Your payment reference: ", code(event.charge_id)],
            ),
            private=True,
        ),
    )


async def _record_sale(dispatcher: SalesDeps, event: PurchaseEvent, actions: PlatformActions) -> SaleOutcome:
    try:
        outcome = await dispatcher.writer.record_purchase(event)
    except UnknownCourseError:
        log.error(
            "payment %s by %s user %s is for course %r, which is not in the catalog: nothing was stored; "
            "add the course to [[courses]] and record the payment with /grant, or refund it",
            event.charge_id,
            event.platform.value,
            event.member.user_id,
            event.course_id,
        )
        return SaleOutcome(
            created=False,
            course=None,
            access=None,
            problem=True,
            reply=Reply(
                rich(
                    "Thank you for your payment. Something is not set up on our side for this course, so an admin "
                    "will sort it out with you personally.",
                    ["Your payment reference: ", code(event.charge_id)],
                ),
                private=True,
            ),
        )
    course = find_course(dispatcher.settings, event.course_id)
    title = course.title if course else event.course_id
    if course is not None and is_subscription_payment(event, course):
        return await _record_subscription_payment(dispatcher, event, course, outcome.row_id, outcome.created, actions)
    if event.source == PurchaseSource.TELEGRAM_STARS:  # the only payments the bot can give back itself
        earlier = await asyncio.to_thread(
            earlier_live_purchase,
            dispatcher.engine,
            dispatcher.community_id,
            outcome.row_id,
            now=dispatcher.clock.now(),
        )
        if earlier is not None:
            return await _refund_duplicate(dispatcher, event, course, actions, new=outcome.created)
    if event.is_test and not dispatcher.settings.discord.grant_test_entitlements:
        log.info(
            "test purchase %s of %r by %s user %s recorded; no access given ([discord] grant_test_entitlements is off)",
            event.charge_id,
            event.course_id,
            event.platform.value,
            event.member.user_id,
        )
        return SaleOutcome(
            created=outcome.created,
            course=course,
            access=None,
            reply=Reply(
                rich(
                    ["Your test purchase of ", bold(title), " is recorded (no money moved)."],
                    "Test purchases give no access unless the owner turns on [discord] grant_test_entitlements.",
                ),
                private=True,
            ),
        )
    if not outcome.created and (
        course is None
        or await asyncio.to_thread(access_granted, dispatcher.engine, outcome.row_id)
        or await asyncio.to_thread(
            live_purchase,
            dispatcher.engine,
            dispatcher.community_id,
            event.platform.value,
            event.member.user_id,
            course.id,
        )
        is None  # refunded since: no access to finish
    ):
        return SaleOutcome(
            created=False,
            course=course,
            access=None,
            reply=Reply(rich(["Your payment for ", bold(title), " was already recorded. Nothing more to do."]), True),
        )
    if course is None:
        log.error(
            "purchase %s of %r is recorded, but the course is no longer in [[courses]]: give %s user %s access "
            "by hand or refund them",
            event.charge_id,
            event.course_id,
            event.platform.value,
            event.member.user_id,
        )
        return SaleOutcome(
            created=True,
            course=None,
            access=None,
            reply=Reply(
                rich(
                    ["Thank you! Your payment for ", bold(title), " is recorded."],
                    "An admin will give you access personally.",
                ),
                private=True,
            ),
        )
    access = await _grant(actions, event.member, course)
    lines: list[list[Span | str] | str] = [["Thank you! Your purchase of ", bold(course.title), " is recorded."]]
    await _alert_sale(dispatcher, "sale", event, course, access, new=outcome.created)
    if line := await _after_grant(dispatcher, "purchase", event, course, access, outcome.row_id):
        lines.append(line)
    lines.append("Questions about your payment? Send /paysupport.")
    return SaleOutcome(created=outcome.created, course=course, access=access, reply=Reply(rich(*lines), private=True))


async def _alert_sale(
    dispatcher: SalesDeps,
    kind: Literal["sale", "renewal"],
    event: PurchaseEvent,
    course: CourseSettings,
    access: AccessResult | None,
    *,
    new: bool,
    note: str = "",
) -> None:
    """Tell the owners about a newly recorded sale or renewal, and (each time) about a grant that failed."""
    if event.is_test:
        return  # no money moved
    if new:
        await alert(
            dispatcher,
            SaleAlert(kind, event.platform.value, event.member, course.title, event.amount, event.currency, note),
        )
    if access is not None and not access.ok:
        problem = access.problem or "no reason given"
        await alert(
            dispatcher, SaleAlert("access failed", event.platform.value, event.member, course.title, note=problem)
        )


async def _record_subscription_payment(
    dispatcher: SalesDeps,
    event: PurchaseEvent,
    course: CourseSettings,
    purchase_id: int,
    new_purchase: bool,
    actions: PlatformActions,
) -> SaleOutcome:
    """One period of a monthly course: extend the member's subscription; give access unless they still have it.

    The purchase is committed already (the caller did). The period is recorded once per charge, so a renewal
    delivered again extends nothing and says nothing; one that comes after the member lost access (a late renewal,
    or paying again) gives access again.
    """
    assert event.access_ends_at is not None
    period: PeriodOutcome = await asyncio.to_thread(
        record_period,
        dispatcher.engine,
        dispatcher.community_id,
        platform=event.platform.value,
        user_id=event.member.user_id,
        course_key=course.id,
        charge_id=event.charge_id,
        starts_at=event.occurred_at,
        ends_at=event.access_ends_at,
        subscription_ref=event.subscription_ref,
        provider="stripe" if event.source is PurchaseSource.STRIPE else None,
    )
    until = fmt_day(period.subscription.ends_at.astimezone(dispatcher.settings.community.tz).date())
    granted = await asyncio.to_thread(access_granted, dispatcher.engine, purchase_id)
    if not period.created and not new_purchase and granted:
        return SaleOutcome(
            created=False,
            course=course,
            access=None,
            reply=Reply(
                rich(["Your payment for ", bold(course.title), " was already recorded. Nothing more to do."]), True
            ),
        )
    if period.renewal and not period.was_ended:
        # The member is still in: nothing to grant (a second invite link would only confuse).
        await asyncio.to_thread(mark_access_granted, dispatcher.engine, purchase_id, at=event.occurred_at)
        await _alert_sale(dispatcher, "renewal", event, course, None, new=period.created, note=f"until {until}")
        return SaleOutcome(
            created=period.created or new_purchase,
            course=course,
            access=None,
            reply=Reply(
                rich(
                    ["Thank you! Your subscription to ", bold(course.title), f" is renewed until {until}."],
                    "Send /subscriptions to see or cancel it.",
                ),
                private=True,
            ),
        )
    access = await _grant(actions, event.member, course)
    kind: Literal["sale", "renewal"] = "renewal" if period.renewal else "sale"
    await _alert_sale(dispatcher, kind, event, course, access, new=period.created, note=f"until {until}")
    every = "every month" if event.source is PurchaseSource.STRIPE else f"every {BILLING_PERIOD_DAYS} days"
    lines: list[list[Span | str] | str] = [
        ["Thank you! You are subscribed to ", bold(course.title), f" until {until}; it renews {every}."]
    ]
    if line := await _after_grant(dispatcher, "subscription payment", event, course, access, purchase_id):
        lines.append(line)
    lines.append("Send /subscriptions to see or cancel it; questions about your payment: /paysupport.")
    return SaleOutcome(created=True, course=course, access=access, reply=Reply(rich(*lines), private=True))


async def _end_refunded_subscription(
    dispatcher: SalesDeps, actions: PlatformActions, platform: str, event: RefundEvent, buyer: MemberRef
) -> None:
    """A refunded subscription payment ends the subscription now and stops its renewals.

    Otherwise the platform would charge the member again next period for access they no longer have.
    """
    subscription = await asyncio.to_thread(
        subscription_of_charge, dispatcher.engine, dispatcher.community_id, platform, event.charge_id
    )
    if subscription is None or not subscription.active(event.occurred_at):
        return
    await asyncio.to_thread(
        end_subscription_at,
        dispatcher.engine,
        dispatcher.community_id,
        platform,
        subscription.subscription_ref,
        event.occurred_at,
    )
    # A card subscription (Stripe) is stopped by the checkout side, not by the chat platform.
    if subscription.cancelled_at is None and subscription.provider is None and isinstance(actions, SubscriptionActions):
        try:
            await actions.set_subscription_cancelled(buyer, subscription.subscription_ref, cancelled=True)
        except Exception as exc:  # the refund stands; the owners must stop the renewals by hand
            log.error(
                "refunded %s charge %s, but stopping the renewals of subscription %s failed: %s",
                platform,
                event.charge_id,
                subscription.subscription_ref,
                exc,
            )
        else:
            await asyncio.to_thread(
                set_cancelled,
                dispatcher.engine,
                dispatcher.community_id,
                platform,
                subscription.subscription_ref,
                event.occurred_at,
            )


async def record_refund(
    dispatcher: SalesDeps, event: RefundEvent, member: MemberRef | None, actions: PlatformActions
) -> SaleOutcome:
    """Commit a refund, then take access away (only when it is newly recorded and no other purchase covers it).

    Args:
        dispatcher: The dispatcher (settings, database, writer), or a command's context.
        event: The refund, naming the purchase by charge id.
        member: The buyer, when the platform said; otherwise the stored buyer of the purchase.
        actions: The platform's capabilities (revoke access).

    Returns:
        The outcome; ``reply`` is the notice for the buyer.
    """
    platform = event.platform.value
    purchase = await asyncio.to_thread(
        purchase_by_charge, dispatcher.engine, dispatcher.community_id, platform, event.charge_id
    )
    try:
        outcome = await dispatcher.writer.record_refund(event)
    except UnknownPurchaseError:
        unmatched = await asyncio.to_thread(
            unmatched_payment, dispatcher.engine, dispatcher.community_id, platform, event.charge_id
        )
        if unmatched is not None:
            # Telegram reports the refund of a payment that bought nothing (the bot's own, or an admin's): the
            # refund is noted, and nothing else happens, since nothing was bought.
            marked = await asyncio.to_thread(
                mark_unmatched_refunded, dispatcher.engine, unmatched.id, at=event.occurred_at
            )
            return SaleOutcome(
                created=marked,
                course=None,
                access=None,
                reply=Reply(rich(["Your payment ", code(event.charge_id), " was refunded."]), private=True),
            )
        log.error("a refund of %s charge %s arrived, but no such purchase is recorded", platform, event.charge_id)
        return SaleOutcome(
            created=False,
            course=None,
            access=None,
            problem=True,
            reply=Reply.say("We could not find the payment this refund is for; an admin will check.", private=True),
        )
    course = find_course(dispatcher.settings, purchase.course_key) if purchase else None
    title = course.title if course else (purchase.title if purchase else event.charge_id)
    if not outcome.created:
        return SaleOutcome(
            created=False,
            course=course,
            access=None,
            reply=Reply(rich(["The refund for ", bold(title), " was already recorded."]), private=True),
        )
    buyer = member
    if buyer is None and purchase is not None and purchase.member_user_id is not None:
        buyer = MemberRef(purchase.member_user_id)
    if buyer is not None:
        await _end_refunded_subscription(dispatcher, actions, platform, event, buyer)
    access: AccessResult | None = None
    if course is not None and buyer is not None:
        access = await _revoke_unless_still_owned(dispatcher, actions, platform, buyer, course)
        if not access.ok:
            log.error(
                "refund of %s is recorded but access to %r could not be taken from %s user %s: %s",
                event.charge_id,
                course.id,
                platform,
                buyer.user_id,
                access.problem or "no reason given",
            )
    elif purchase is not None:
        log.warning("refund of %s recorded; course %r is not configured, no access to revoke", event.charge_id, title)
    if purchase is not None and not purchase.is_test:
        who = buyer or MemberRef(purchase.member_user_id or "[forgotten]")
        await alert(dispatcher, SaleAlert("refund", platform, who, title, purchase.amount, purchase.currency))
        if access is not None and not access.ok:
            await alert(
                dispatcher, SaleAlert("access failed", platform, who, title, note=access.problem or "could not revoke")
            )
    return SaleOutcome(
        created=True,
        course=course,
        access=access,
        reply=Reply(rich(["Your payment for ", bold(title), " was refunded."]), private=True),
    )


@dataclass(frozen=True, slots=True)
class RefusedPayment:
    """What to say about a payment that bought nothing, the first time it is handled.

    Attributes:
        refunded: The money went back (now).
        buyer: The message for the payer.
        owners: The notice for the owners (says how to refund it when the bot did not).
    """

    refunded: bool
    buyer: Reply
    owners: Rich


async def refuse_payment(
    dispatcher: SalesDeps,
    actions: PlatformActions,
    *,
    charge_id: str,
    payer: MemberRef,
    amount: int,
    currency: str,
    received_at: datetime,
    problem: str,
    refund: bool,
) -> RefusedPayment | None:
    """Keep a payment that buys nothing (no purchase, no access), and give the money back when ``refund``.

    Stored once per charge: a redelivery changes nothing and says nothing again, except that a refund that failed
    the first time is tried again.

    Args:
        dispatcher: The dispatcher (database, locks), or a command's context.
        actions: The platform's capabilities (refund the payment).
        charge_id: The platform's charge id.
        payer: Who paid (the sender of the payment, never the invoice's member).
        amount: The amount (whole Stars for XTR).
        currency: Its currency.
        received_at: When the payment arrived.
        problem: Why it buys nothing (for the owners and the log).
        refund: Give the money back now (the payer is not the invoice's member); otherwise the owners decide.

    Returns:
        What to tell the payer and the owners, or None when there is nothing new to say.
    """
    platform = actions.platform.value
    async with dispatcher.sale_locks(f"{platform}:{charge_id}"):
        record = await asyncio.to_thread(
            record_unmatched_payment,
            dispatcher.engine,
            dispatcher.community_id,
            platform=platform,
            charge_id=charge_id,
            payer_user_id=payer.user_id,
            amount=amount,
            currency=currency,
            received_at=received_at,
            problem=problem,
        )
        if record.refunded_at is not None or (not refund and not record.created):
            return None
        how = f"/refund charge {charge_id}"
        reference: list[Span | str] = ["Your payment reference: ", code(charge_id)]
        if refund:
            try:
                await actions.refund_payment(payer, charge_id)
            except Exception as exc:
                if not _already_returned(exc):
                    log.error("refunding %s payment %s failed: %s; refund it with %s", platform, charge_id, exc, how)
                    if not record.created:
                        return None
                    return RefusedPayment(
                        refunded=False,
                        buyer=Reply(
                            rich(
                                "This payment could not be accepted, and we could not refund it automatically. "
                                "The admins have been told and will refund you.",
                                reference,
                            ),
                            private=True,
                        ),
                        owners=rich(
                            [
                                f"A {platform} payment was refused and could not be refunded automatically: ",
                                code(charge_id),
                            ],
                            f"Payer: user {payer.user_id}. Reason: {problem}.",
                            ["To refund it: ", code(how)],
                        ),
                    )
            await asyncio.to_thread(mark_unmatched_refunded, dispatcher.engine, record.id, at=dispatcher.clock.now())
            log.warning(
                "%s payment %s by user %s refused and refunded: %s", platform, charge_id, payer.user_id, problem
            )
            return RefusedPayment(
                refunded=True,
                buyer=Reply(
                    rich(
                        f"This payment could not be accepted for your account, so your {_money(amount, currency)} "
                        f"{plural(amount, 'was', 'were', with_count=False) if currency == STARS else 'were'} "
                        "refunded. Nothing was bought.",
                        reference,
                    ),
                    private=True,
                ),
                owners=rich(
                    [f"A {platform} payment was refused and refunded: ", code(charge_id)],
                    f"Payer: user {payer.user_id}. Reason: {problem}. Nothing was bought; no access was given.",
                ),
            )
        log.error(
            "%s payment %s by user %s could not be matched (%s): nothing was bought; refund it with %s "
            "or record it with /grant",
            platform,
            charge_id,
            payer.user_id,
            problem,
            how,
        )
        return RefusedPayment(
            refunded=False,
            buyer=Reply(
                rich(
                    "Thank you for your payment. We could not match it to a course, so an admin will sort it out "
                    "with you personally.",
                    reference,
                ),
                private=True,
            ),
            owners=rich(
                [f"A {platform} payment could not be matched to a course: ", code(charge_id)],
                f"Payer: user {payer.user_id}. Amount: {_money(amount, currency)}. Reason: {problem}.",
                ["To refund it: ", code(how), " (or record it as a sale with /grant)"],
            ),
        )


def _money(amount: int, currency: str) -> str:
    if currency == STARS:
        return _stars(amount)
    return f"{Decimal(amount) / 100:.2f} {currency}"


async def record_access_end(dispatcher: SalesDeps, event: PurchaseEvent, actions: PlatformActions) -> SaleOutcome:
    """Record that a purchase's access ends at ``event.access_ends_at`` (nothing refunded), and act on it.

    A Discord entitlement that expired or was cancelled: the purchase stays (it was paid), its access end is
    stored so the daily reconciliation never gives the role back, and when the end has passed the role is taken
    away now, unless another live purchase of the course covers the member. A purchase never seen before (the bot
    was offline when it was made) is recorded first, without granting.

    Args:
        dispatcher: The dispatcher (database, writer, clock).
        event: The purchase, with ``access_ends_at`` set.
        actions: The platform's capabilities (revoke access).

    Returns:
        The outcome: ``created`` when the end was newly recorded; ``access`` the revocation, if it was needed.
    """
    assert event.access_ends_at is not None
    platform = event.platform.value
    course = find_course(dispatcher.settings, event.course_id)
    title = course.title if course else event.course_id
    async with dispatcher.sale_locks(f"{platform}:{event.charge_id}"):
        try:
            recorded = await dispatcher.writer.record_purchase(event)
        except UnknownCourseError:
            log.warning("ignored the end of %s purchase %s: course %r unknown", platform, event.charge_id, title)
            return SaleOutcome(
                created=False,
                course=None,
                access=None,
                reply=Reply.say(f"Your access to {title} has ended.", private=True),
            )
        changed = recorded.created or await asyncio.to_thread(
            end_access,
            dispatcher.engine,
            dispatcher.community_id,
            platform,
            event.charge_id,
            at=event.access_ends_at,
        )
        now = dispatcher.clock.now()
        access: AccessResult | None = None
        # Only news is acted on: a redelivered end was acted on already (and the daily check covers a crash).
        if changed and course is not None and event.access_ends_at <= now:
            access = await _revoke_unless_still_owned(dispatcher, actions, platform, event.member, course, now=now)
        if changed and not event.is_test:
            # Discord sends an end only when a subscription ends: at a future moment (the paid period runs out
            # then), or now.
            until = fmt_day(event.access_ends_at.astimezone(dispatcher.settings.community.tz).date())
            ending: AlertKind = "ending" if event.access_ends_at > now else "access ended"
            await alert(dispatcher, SaleAlert(ending, platform, event.member, title, note=f"access until {until}"))
        log.info(
            "%s purchase %s of %r by user %s: access ends %s%s",
            platform,
            event.charge_id,
            event.course_id,
            event.member.user_id,
            event.access_ends_at.isoformat(),
            "" if changed else " (already recorded)",
        )
    return SaleOutcome(
        created=changed,
        course=course,
        access=access,
        reply=Reply(
            rich(
                ["Your access to ", bold(title), " has ended."],
                ["Want to come back? Send ", code(f"/buy {event.course_id}"), "."],
            ),
            private=True,
        ),
    )


@dataclass(frozen=True, slots=True)
class PaymentNotices:
    """What to say after a payment or refund arrived from a platform.

    Attributes:
        buyer: What to tell the payer privately; None when there is nothing new (a redelivery already answered).
        owners: What to tell the owners; None when they need not know.
    """

    buyer: Reply | None
    owners: Rich | None = None


def _worth_telling(outcome: SaleOutcome) -> bool:
    # A replayed payment was already answered the first time; only news (or a problem) is worth a message. News
    # includes a replay that finished an interrupted grant: its receipt carries the only invite sent.
    return outcome.created or outcome.access is not None or outcome.problem


async def receive_payment(
    dispatcher: SalesDeps,
    actions: PlatformActions,
    *,
    invoice_payload: str,
    payer: MemberRef,
    charge_id: str,
    amount: int,
    currency: str,
    received_at: datetime,
    purchase: Callable[[str], PurchaseEvent],
) -> PaymentNotices:
    """A completed payment for an invoice the bot signed: record the sale, or keep a payment that buys nothing.

    An invoice payload that does not verify buys nothing and is kept for the owners to decide (not refunded); one
    paid by someone other than the member it was made for is refused and refunded (Telegram checks nothing of the
    kind; the pre-checkout refused it, so this is defence in depth).

    Args:
        dispatcher: The dispatcher (settings, database, writer, signing secret).
        actions: The platform's capabilities (grant access, refund).
        invoice_payload: The signed payload the invoice carried.
        payer: Who paid.
        charge_id: The platform's charge id.
        amount: The amount paid (whole Stars for XTR).
        currency: Its currency.
        received_at: When the payment arrived.
        purchase: Builds the platform's purchase event for the course id the payload names.

    Returns:
        What to tell the payer and the owners.
    """
    try:
        payload = verify_payload(dispatcher.signing_secret or "", invoice_payload)
    except PaymentError as exc:
        problem, refund = str(exc), False
    else:
        if payload.user_id == payer.user_id:
            outcome = await record_sale(dispatcher, purchase(payload.course_id), actions)
            return PaymentNotices(outcome.reply if _worth_telling(outcome) else None)
        log.warning(
            "payment %s: user %s paid an invoice made for user %s; refusing and refunding it",
            charge_id,
            payer.user_id,
            payload.user_id,
        )
        # The stored reason names nobody: the invoice's member may ask to be forgotten later.
        problem, refund = "the invoice was made for another member, not for the payer", True
    refused = await refuse_payment(
        dispatcher,
        actions,
        charge_id=charge_id,
        payer=payer,
        amount=amount,
        currency=currency,
        received_at=received_at,
        problem=problem,
        refund=refund,
    )
    if refused is None:
        return PaymentNotices(None)  # a redelivery of a payment already handled
    return PaymentNotices(refused.buyer, refused.owners)


async def receive_refund(
    dispatcher: SalesDeps, event: RefundEvent, member: MemberRef | None, actions: PlatformActions
) -> Reply | None:
    """A refund the platform reports: record it and revoke access once.

    Returns:
        What to tell the member, or None when there is nothing new (a redelivery already answered).
    """
    outcome = await record_refund(dispatcher, event, member, actions)
    return outcome.reply if _worth_telling(outcome) else None


async def receive_entitlement(
    dispatcher: SalesDeps, purchase: PurchaseEvent, actions: PlatformActions
) -> tuple[Reply, ...]:
    """A Discord entitlement created or updated: grant a new one; an ended one revokes access, refunding nothing.

    A subscription that runs out or was cancelled keeps its sale (it was paid); the ledger learns when access ends,
    so the daily reconciliation never gives the role back, and once the end has passed the role goes now.

    Returns:
        The messages for the member, in order (a receipt, a notice that access ended), possibly none.
    """
    notices: list[Reply] = []
    now = dispatcher.clock.now()
    if purchase.access_ends_at is None or purchase.access_ends_at > now:
        sale = await record_sale(dispatcher, purchase, actions)
        if sale.created or sale.access is not None:  # also a retry that finished an interrupted grant
            notices.append(sale.reply)
    if purchase.access_ends_at is not None:
        ended = await record_access_end(dispatcher, purchase, actions)
        if ended.created and ended.access is not None and ended.access.ok:
            notices.append(ended.reply)
    return tuple(notices)
