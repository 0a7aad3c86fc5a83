"""Selling courses: checking a checkout before the charge, recording a sale or refund, granting and revoking access.

The order is always ledger first, platform second: a purchase is committed (``EventWriter.record_purchase``)
before the buyer is given access, and access is given only when the purchase was newly recorded, so a payment
delivered twice (a retried webhook, a replayed update) is stored once and grants once. Problems an admin must fix
(a bot without the permission to add roles, a course missing from the config) are logged at ERROR with what to do;
the buyer is told that an admin will sort it out.

Adapters call these from their payment handlers (Telegram ``pre_checkout_query``/``successful_payment``/
``refunded_payment``, Discord entitlements); ``/grant`` and ``/refund`` call them too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.core.commands.base import AccessResult, PlatformActions
from bot.core.events import MemberRef, PurchaseEvent, RefundEvent
from bot.core.locks import KeyedLocks
from bot.core.markup import Span, bold, code, rich
from bot.core.payments import PaymentError, verify_payload
from bot.core.replies import Reply
from storage.errors import UnknownCourseError, UnknownPurchaseError
from storage.member_queries import access_granted, live_purchase, mark_access_granted, purchase_by_charge

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.config import CourseSettings, Settings
    from storage.writer import EventWriter

log = logging.getLogger(__name__)

STARS = "XTR"


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


@dataclass(frozen=True, slots=True)
class SaleOutcome:
    """What recording a sale or refund did.

    Attributes:
        created: The purchase (or refund) was newly recorded; False for a replay or when nothing could be stored.
        course: The configured course, when it still is configured.
        access: The result of granting (sale) or revoking (refund) access; None when it was not attempted.
        reply: What to tell the buyer (the receipt, or the refund notice).
    """

    created: bool
    course: CourseSettings | None
    access: AccessResult | None
    reply: Reply


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
    owned = await asyncio.to_thread(
        live_purchase, dispatcher.engine, dispatcher.community_id, str(platform), user_id, course.id
    )
    if owned is not None:
        return f"You already own {course.title}; you have not been charged."
    return None


async def _grant(actions: PlatformActions, member: MemberRef, course: CourseSettings) -> AccessResult:
    try:
        return await actions.grant_access(member, course)
    except Exception as exc:  # a platform failure must not lose the fact that the sale is recorded
        log.exception("granting %s access to %r failed", member.user_id, course.id)
        return AccessResult(ok=False, problem=f"granting access failed: {exc}")


async def _revoke(actions: PlatformActions, member: MemberRef, course: CourseSettings) -> AccessResult:
    try:
        return await actions.revoke_access(member, course)
    except Exception as exc:  # the refund is recorded whatever the platform says
        log.exception("revoking %s access to %r failed", member.user_id, course.id)
        return AccessResult(ok=False, problem=f"revoking access failed: {exc}")


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
    async with dispatcher.sale_locks(f"{event.platform.value}:{event.charge_id}"):
        return await _record_sale(dispatcher, event, actions)


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
    if access.ok:
        await asyncio.to_thread(mark_access_granted, dispatcher.engine, outcome.row_id, at=event.occurred_at)
        if access.detail:
            lines.append(access.detail)
    else:
        log.error(
            "purchase %s of %r by %s user %s is recorded but access could not be given: %s",
            event.charge_id,
            course.id,
            event.platform.value,
            event.member.user_id,
            access.problem or "no reason given",
        )
        lines.append("We could not give you access automatically; the admins have been told and will sort it out.")
    lines.append("Questions about your payment? Send /paysupport.")
    return SaleOutcome(created=outcome.created, course=course, access=access, reply=Reply(rich(*lines), private=True))


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
        log.error("a refund of %s charge %s arrived, but no such purchase is recorded", platform, event.charge_id)
        return SaleOutcome(
            created=False,
            course=None,
            access=None,
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
    access: AccessResult | None = None
    if course is not None and buyer is not None:
        still_owned = await asyncio.to_thread(
            live_purchase, dispatcher.engine, dispatcher.community_id, platform, buyer.user_id, course.id
        )
        if still_owned is not None:
            # Bought twice (say a Stars payment and an admin grant): the other purchase still gives access.
            access = AccessResult(ok=True, detail="access kept: another purchase of the course is still live")
        else:
            access = await _revoke(actions, buyer, course)
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
    return SaleOutcome(
        created=True,
        course=course,
        access=access,
        reply=Reply(rich(["Your payment for ", bold(title), " was refunded."]), private=True),
    )
