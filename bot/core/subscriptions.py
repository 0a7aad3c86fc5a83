"""The subscriptions job: remind before renewal, remove members whose paid time ran out, say how to come back.

Runs on the refresh interval when a course is monthly. Every step claims its row before acting (see
``storage.subscriptions``), so each member gets one reminder per period, is removed once when access runs out and
is told once how to come back, however many processes run the job. If the bot stops between a claim and the
removal, the daily reconciliation removes the member anyway: the last payment's purchase ends when the
subscription does, and it never gives access back for a period that ended.

Discord subscriptions end when Discord ends their entitlement (``bot.core.reported_subscriptions``), which takes the
role and claims the removal and the come-back message itself; the job only removes a Discord member whose stored end
has passed with no live purchase left (an entitlement that ended at a later moment), never one whose entitlement is
still open (Discord may renew late while it retries a payment). Reminders go to Discord members too: Discord reports
each period's end, so the renewal date is known.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from analytics.formatting import fmt_day, fmt_money, plural
from bot.config import CourseSettings, Settings
from bot.core.alerts import SaleAlert, SaleAlerts
from bot.core.markup import bold, code, rich
from bot.core.ports import AccessReconciler, Adapter
from bot.core.replies import OutgoingMessage, Reply
from bot.core.reported_subscriptions import billed_by_platform, where_to_cancel
from storage.events import MemberRef
from storage.ledger import live_purchase
from storage.subscriptions import (
    SubscriptionRecord,
    due_reminders,
    expired,
    mark_comeback_sent,
    mark_ended,
    mark_reminded,
)

log = logging.getLogger(__name__)


@dataclass
class SubscriptionRun:
    """What one run did, for the job log."""

    reminded: int = 0
    removed: int = 0
    told: int = 0
    problems: list[str] = field(default_factory=list)

    def detail(self) -> str:
        """One line for ``job_runs``."""
        text = (
            f"{plural(self.reminded, 'reminder')} sent, {plural(self.removed, 'member')} removed after their "
            f"subscription ended, {self.told} told how to come back"
        )
        if self.problems:
            text += "; problems: " + "; ".join(self.problems)
        return text


def _course(settings: Settings, course_id: str) -> CourseSettings | None:
    return next((c for c in settings.courses if c.id == course_id), None)


async def run_subscriptions(
    engine: Engine,
    settings: Settings,
    community_id: int,
    adapters: Mapping[str, Adapter],
    *,
    now: datetime,
    alerts: SaleAlerts | None = None,
) -> SubscriptionRun:
    """Send due renewal reminders, remove members whose subscription ran out, tell them how to come back.

    Args:
        engine: The database.
        settings: The configuration (courses, ``[sales] renewal_reminder_days``, the time zone for dates).
        community_id: The community.
        adapters: The connected adapters by platform name.
        now: The current time.
        alerts: Where the owners hear that someone's access ended, if anywhere.

    Returns:
        What was done; one member's failure never stops the others.
    """
    run = SubscriptionRun()
    tz = settings.community.tz
    for platform, adapter in adapters.items():
        days = settings.sales.renewal_reminder_days
        if days > 0:
            due = await asyncio.to_thread(
                due_reminders, engine, community_id, platform, now=now, within=timedelta(days=days)
            )
            for record in due:
                if await asyncio.to_thread(mark_reminded, engine, record.id, record.ends_at):
                    course = _course(settings, record.course_key)
                    price = (
                        f" ({fmt_money(course.price_stars, 'XTR')})"
                        if course is not None and course.price_stars is not None
                        else ""
                    )
                    if billed_by_platform(record):  # Discord bills in money: the price its SKU is recorded at
                        price = ""
                        if course is not None and course.price is not None and course.currency:
                            price = f" ({fmt_money(course.price, course.currency)})"
                    where = where_to_cancel(record)
                    reply = Reply(
                        rich(
                            [
                                "Your subscription to ",
                                bold(record.title),
                                f" renews on {fmt_day(record.ends_at.astimezone(tz).date())}{price}.",
                            ],
                            ["Nothing to do if you want to stay. To stop it, send ", code("/subscriptions"), "."]
                            if where is None
                            else f"Nothing to do if you want to stay. To stop it, open {where}.",
                        ),
                        private=True,
                    )
                    if await _tell(adapter, record, reply, run):
                        run.reminded += 1
        for record in await asyncio.to_thread(expired, engine, community_id, platform, now=now):
            await _end(engine, settings, community_id, adapter, record, now=now, run=run, alerts=alerts)
    return run


async def _end(
    engine: Engine,
    settings: Settings,
    community_id: int,
    adapter: Adapter,
    record: SubscriptionRecord,
    *,
    now: datetime,
    run: SubscriptionRun,
    alerts: SaleAlerts | None,
) -> None:
    if (
        billed_by_platform(record)
        and await asyncio.to_thread(
            live_purchase, engine, community_id, record.platform, record.member_user_id, record.course_key, now=now
        )
        is not None
    ):
        # The platform has not ended it (Discord may renew after the period's end while it retries the payment):
        # its entitlement decides, and its end arrives as an event (see bot.core.reported_subscriptions).
        return
    # Claimed first: the removal and the message happen once; a crash in between is caught by the daily check.
    if not await asyncio.to_thread(mark_ended, engine, record.id, at=now):
        return
    course = _course(settings, record.course_key)
    member = MemberRef(record.member_user_id)
    still_owned = await asyncio.to_thread(
        live_purchase, engine, community_id, record.platform, record.member_user_id, record.course_key, now=now
    )
    removed = False
    if course is not None and still_owned is None and isinstance(adapter, AccessReconciler):
        try:
            fix = await adapter.ensure_access(record.member_user_id, course, should_have=False)
        except Exception as exc:
            log.exception("removing %s user %s from %r failed", record.platform, record.member_user_id, course.id)
            run.problems.append(f"{record.platform} user {record.member_user_id}, {course.title}: {exc}")
        else:
            removed = fix.changed
            if fix.problem:
                run.problems.append(f"{record.platform} user {record.member_user_id}, {course.title}: {fix.problem}")
    if removed:
        run.removed += 1
    log.info(
        "%s user %s: subscription to %r ended%s",
        record.platform,
        record.member_user_id,
        record.course_key,
        " and access was removed" if removed else "",
    )
    if alerts is not None and alerts.enabled:
        await alerts.post(SaleAlert("access ended", record.platform, member, record.title, note="not renewed"))
    if still_owned is not None or not await asyncio.to_thread(mark_comeback_sent, engine, record.id, at=now):
        return
    reply = Reply(
        rich(
            ["Your subscription to ", bold(record.title), " has ended, so your access to it ended too."],
            ["Want to come back? Send ", code(f"/buy {record.course_key}"), " to subscribe again."],
        ),
        private=True,
    )
    if await _tell(adapter, record, reply, run):
        run.told += 1


async def _tell(adapter: Adapter, record: SubscriptionRecord, reply: Reply, run: SubscriptionRun) -> bool:
    try:
        await adapter.send(OutgoingMessage(record.platform, record.member_user_id, reply, direct=True))
    except Exception as exc:  # a member who blocked the bot still loses access; the next member is still told
        log.info("could not message %s user %s: %s", record.platform, record.member_user_id, exc)
        run.problems.append(f"could not message {record.platform} user {record.member_user_id}: {exc}")
        return False
    return True
