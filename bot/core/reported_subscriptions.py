"""Subscriptions the platform bills and reports itself (Discord app subscriptions): periods, renewals, cancellations.

Discord charges the member and tells the bot what happened: ``SUBSCRIPTION_CREATE``/``UPDATE``/``DELETE`` carry the
current period and the status, and the subscription's entitlement (a purchase in the ledger, recorded by
:func:`bot.core.sales.receive_entitlement`) is what gives access, as Discord asks ("use entitlements, not the
subscription status, to grant perks"). So here:

- every period Discord reports is stored once, as a ``subscription_periods`` row keyed by
  ``<subscription id>:<period start>``; a renewal (a period starting after the subscription was created) is also a
  purchase at the course's configured price, so revenue and MRR count it like a Telegram renewal; the first period
  is paid by the entitlement's own purchase;
- a cancellation (``canceled_at`` set) and a resumption are stored and told to the owners; access is untouched;
- the end comes from the entitlement's ``ends_at``: the subscription ends then, the renewal purchases stop giving
  access at the same moment (so the daily reconciliation never gives an ended period back), and once the end has
  passed the subscription is marked ended with its come-back message claimed, because the entitlement path already
  took the role and told the member: the subscriptions job does neither a second time.

The subscription is stored under Discord's **subscription id**, not the entitlement id: it stays the same across
renewals and tier changes (an upgrade ends the entitlement and creates another), every subscription event names it,
and it is what Discord's API looks subscriptions up by. An entitlement finds its subscription through the
``subscription_id`` Discord puts on it, or else as the member's running subscription to the same course (Discord
allows one subscription per SKU and member).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from analytics.formatting import fmt_day
from bot.core.alerts import SaleAlert
from bot.core.sales import SalesDeps, alert, find_course
from storage.errors import UnknownCourseError
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource
from storage.ledger import mark_access_granted
from storage.subscriptions import (
    SubscriptionRecord,
    end_period_purchases_at,
    end_subscription_at,
    mark_comeback_sent,
    mark_ended,
    member_subscriptions,
    record_period,
    set_cancelled,
    subscription_by_ref,
)

log = logging.getLogger(__name__)

REPORTED_ENDS = frozenset({Platform.DISCORD.value})
"""Platforms that bill subscriptions themselves and say when one ends (a Discord entitlement's ``ends_at``), rather
than it ending when the stored period runs out: Discord may renew after the period's end while it retries a payment,
so the subscriptions job never ends one of these while the member still holds a live purchase of the course."""

WHERE_TO_CANCEL = {Platform.DISCORD.value: "Discord's User Settings → Subscriptions"}
"""Where members cancel or resume a subscription the bot cannot change for them."""

# A period starting this long after the subscription was created is a renewal; the first period starts at creation.
RENEWAL_AFTER = timedelta(days=1)


class ReportedStatus(enum.StrEnum):
    """A subscription's status as the platform reports it."""

    ACTIVE = "active"  # running and scheduled to renew (also: resumed after a cancellation)
    ENDING = "ending"  # will not renew (cancelled), or the first entitlement is not granted yet
    INACTIVE = "inactive"  # ended, refunded or charged back: no more renewals


@dataclass(frozen=True, slots=True)
class ReportedSubscription:
    """A subscription as the platform reported it in one event.

    Attributes:
        platform: Where it is billed.
        community: The community name.
        subscription_ref: The platform's id of the subscription.
        member: The subscriber.
        course_id: The configured course its SKU sells.
        status: Its status.
        period_start: Start of the current paid period.
        period_end: End of the current paid period.
        created_at: When the subscription was created (Discord: from its id), if known.
        cancelled_at: When the member cancelled, if they did and have not resumed.
        amount: What one period costs, in minor units (the course's configured price: Discord does not say).
        currency: Its currency.
        source: How its payments reached the bot (recorded on renewal purchases).
        received_at: When the event arrived.
    """

    platform: Platform
    community: str
    subscription_ref: str
    member: MemberRef
    course_id: str
    status: ReportedStatus
    period_start: datetime
    period_end: datetime
    created_at: datetime | None
    cancelled_at: datetime | None
    amount: int
    currency: str
    source: PurchaseSource
    received_at: datetime

    @property
    def period_charge_id(self) -> str:
        """The idempotency key of the current period: the same period reported again is stored once."""
        return f"{self.subscription_ref}:{self.period_start.astimezone(UTC).isoformat()}"


@dataclass(frozen=True, slots=True)
class SubscriptionNews:
    """What one subscription event changed (for the log and the tests).

    Attributes:
        stored: The subscription as stored afterwards; None when the event was ignored.
        new_period: A period was stored (False for a replay).
        renewal_recorded: A renewal purchase was recorded.
        cancelled: The subscription became cancelled.
        resumed: A cancellation was undone.
    """

    stored: SubscriptionRecord | None
    new_period: bool = False
    renewal_recorded: bool = False
    cancelled: bool = False
    resumed: bool = False


def billed_by_platform(record: SubscriptionRecord) -> bool:
    """Whether the platform itself bills (and ends) this subscription: a Discord app subscription.

    A subscription of a Discord member billed elsewhere (a card checkout) names its ``provider`` and follows the
    usual rules.
    """
    return record.platform in REPORTED_ENDS and record.provider is None


def where_to_cancel(record: SubscriptionRecord) -> str | None:
    """Where the member cancels this subscription when the bot cannot do it for them (None: the bot can)."""
    return WHERE_TO_CANCEL.get(record.platform) if billed_by_platform(record) else None


async def receive_subscription(deps: SalesDeps, sub: ReportedSubscription) -> SubscriptionNews:
    """Store what a subscription event says: the current period (once), a renewal purchase, a cancellation.

    Access is never given or taken here: the subscription's entitlement decides it.

    Args:
        deps: The dispatcher (settings, database, writer, locks, alerts).
        sub: The subscription as reported.

    Returns:
        What changed; nothing for a replay.
    """
    platform = sub.platform.value
    async with deps.sale_locks(f"subscription:{platform}:{sub.subscription_ref}"):
        before = await asyncio.to_thread(
            subscription_by_ref, deps.engine, deps.community_id, platform, sub.subscription_ref
        )
        if before is not None and before.course_key != sub.course_id:
            # A tier change to another course's SKU: the old entitlement ends and the new one is a purchase of its
            # own, which is what gives access; the stored subscription keeps its first course.
            log.warning(
                "%s subscription %s moved from course %r to %r: access follows the entitlements; its periods are "
                "no longer stored",
                platform,
                sub.subscription_ref,
                before.course_key,
                sub.course_id,
            )
            return SubscriptionNews(before)
        if sub.period_end <= sub.period_start:
            log.warning("ignored %s subscription %s: its period ends before it starts", platform, sub.subscription_ref)
            return SubscriptionNews(before)
        try:
            period = await asyncio.to_thread(
                record_period,
                deps.engine,
                deps.community_id,
                platform=platform,
                user_id=sub.member.user_id,
                course_key=sub.course_id,
                charge_id=sub.period_charge_id,
                starts_at=sub.period_start,
                ends_at=sub.period_end,
                subscription_ref=sub.subscription_ref,
            )
        except UnknownCourseError:
            log.error(
                "%s subscription %s is for course %r, which is not in the catalog: nothing stored",
                platform,
                sub.subscription_ref,
                sub.course_id,
            )
            return SubscriptionNews(None)
        renewal = sub.period_start - sub.created_at >= RENEWAL_AFTER if sub.created_at is not None else period.renewal
        recorded = False
        if period.created and renewal:
            recorded = await _record_renewal(deps, sub, ended=before is not None and before.ended_at is not None)
        cancelled, resumed = await _apply_status(deps, sub, period.subscription)
        stored = await asyncio.to_thread(
            subscription_by_ref, deps.engine, deps.community_id, platform, sub.subscription_ref
        )
    log.info(
        "%s subscription %s of %r by user %s: %s, paid until %s%s",
        platform,
        sub.subscription_ref,
        sub.course_id,
        sub.member.user_id,
        sub.status.value,
        sub.period_end.isoformat(),
        "" if period.created else " (period already stored)",
    )
    return SubscriptionNews(stored, period.created, recorded, cancelled, resumed)


async def _record_renewal(deps: SalesDeps, sub: ReportedSubscription, *, ended: bool) -> bool:
    """A renewal is a payment: one purchase per period, giving access until the period's end.

    Its access ends with the period, so the daily reconciliation keeps the role while it is paid and never gives it
    back once it ran out; a renewal reported for a subscription whose access already ended gives no access of its
    own (a new entitlement would, and the revenue still counts).
    """
    event = PurchaseEvent(
        platform=sub.platform,
        community=sub.community,
        charge_id=sub.period_charge_id,
        member=sub.member,
        course_id=sub.course_id,
        amount=sub.amount,
        currency=sub.currency,
        occurred_at=sub.period_start,
        source=sub.source,
        access_ends_at=sub.period_start if ended else sub.period_end,
    )
    try:
        outcome = await deps.writer.record_purchase(event)
    except UnknownCourseError:
        log.error("renewal %s of %r not recorded: the course is not in the catalog", event.charge_id, sub.course_id)
        return False
    if not outcome.created:
        return False
    # The member keeps the access the entitlement gave: there is nothing to grant for a renewal.
    await asyncio.to_thread(mark_access_granted, deps.engine, outcome.row_id, at=sub.period_start)
    course = find_course(deps.settings, sub.course_id)
    title = course.title if course is not None else sub.course_id
    until = fmt_day(sub.period_end.astimezone(deps.settings.community.tz).date())
    await alert(
        deps,
        SaleAlert("renewal", sub.platform.value, sub.member, title, sub.amount or None, sub.currency, f"until {until}"),
    )
    return True


async def _apply_status(deps: SalesDeps, sub: ReportedSubscription, stored: SubscriptionRecord) -> tuple[bool, bool]:
    """Store a cancellation or a resumption; returns (became cancelled, was resumed)."""
    platform = sub.platform.value
    # ENDING without canceled_at is a subscription whose first entitlement is not granted yet: not a cancellation.
    stopping = sub.status is ReportedStatus.INACTIVE or (
        sub.status is ReportedStatus.ENDING and sub.cancelled_at is not None
    )
    if stopping:
        at = sub.cancelled_at or sub.received_at
        changed = await asyncio.to_thread(
            set_cancelled, deps.engine, deps.community_id, platform, sub.subscription_ref, at
        )
        if changed and sub.cancelled_at is not None:
            until = fmt_day(stored.ends_at.astimezone(deps.settings.community.tz).date())
            await alert(deps, SaleAlert("cancellation", platform, sub.member, stored.title, note=f"paid until {until}"))
        return changed, False
    if sub.status is ReportedStatus.ACTIVE:
        changed = await asyncio.to_thread(
            set_cancelled, deps.engine, deps.community_id, platform, sub.subscription_ref, None
        )
        if changed:
            until = fmt_day(stored.ends_at.astimezone(deps.settings.community.tz).date())
            await alert(deps, SaleAlert("resumed", platform, sub.member, stored.title, note=f"paid until {until}"))
        return False, changed
    return False, False


async def end_by_entitlement(
    deps: SalesDeps,
    *,
    platform: str,
    user_id: str,
    course_id: str,
    at: datetime,
    subscription_ref: str | None,
) -> SubscriptionRecord | None:
    """The entitlement a subscription gives access through ends (or was refunded) at ``at``: end the subscription.

    Its end moves to ``at`` (never later) and every renewal purchase stops giving access then too. Call this
    before the entitlement's own end or refund is recorded and acted on, so that nothing of the subscription still
    counts as a live purchase when access is taken away.

    Args:
        deps: The dispatcher (database).
        platform: The platform.
        user_id: The member.
        course_id: The course the entitlement's SKU sells.
        at: When access ends.
        subscription_ref: The subscription the entitlement names, if it names one.

    Returns:
        The subscription (as it was before), or None when the entitlement belongs to none that is stored.
    """
    record = None
    if subscription_ref is not None:
        record = await asyncio.to_thread(
            subscription_by_ref, deps.engine, deps.community_id, platform, subscription_ref
        )
    if record is None:
        mine = await asyncio.to_thread(member_subscriptions, deps.engine, deps.community_id, platform, user_id)
        running = [r for r in mine if r.course_key == course_id and r.ended_at is None]
        record = max(running, key=lambda r: (r.started_at, r.id), default=None)
    if record is None:
        return None
    await asyncio.to_thread(end_subscription_at, deps.engine, deps.community_id, platform, record.subscription_ref, at)
    await asyncio.to_thread(
        end_period_purchases_at, deps.engine, deps.community_id, platform, record.subscription_ref, at
    )
    return record


async def note_access_lost(deps: SalesDeps, record: SubscriptionRecord, *, now: datetime) -> bool:
    """Record that the member of an ended subscription lost access (the entitlement path took it and told them).

    Claims the removal and the come-back message, so the subscriptions job does neither again.

    Returns:
        True when this call claimed it (False: the job, or an earlier delivery, already did).
    """
    if not await asyncio.to_thread(mark_ended, deps.engine, record.id, at=now):
        return False
    await asyncio.to_thread(mark_comeback_sent, deps.engine, record.id, at=now)
    return True
