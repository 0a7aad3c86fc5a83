"""``/subscriptions``: a member's monthly courses, when each renews or ends, and cancelling or resuming one.

Cancelling stops the renewals through whoever bills them (Telegram ``editUserStarSubscription``, Stripe's
``cancel_at_period_end`` for a card subscription); access lasts until the paid period ends. The ledger is not
touched: nothing is refunded. Platforms whose members cancel in the platform's own settings (Discord: User Settings
→ Subscriptions) are told where; their subscriptions are listed all the same.
"""

from __future__ import annotations

import asyncio
import logging

from analytics.formatting import fmt_day
from bot.core.alerts import AlertKind, SaleAlert
from bot.core.checkout import CheckoutUnavailable
from bot.core.commands.base import CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.markup import Span, bold, code, rich
from bot.core.ports import CapabilityError, SubscriptionActions
from bot.core.replies import Button, Reply
from bot.core.reported_subscriptions import billed_by_platform, where_to_cancel
from bot.core.sales import alert
from storage.subscriptions import SubscriptionRecord, member_subscriptions, set_cancelled

log = logging.getLogger(__name__)


def _day(ctx: CommandContext, record: SubscriptionRecord) -> str:
    return fmt_day(record.ends_at.astimezone(ctx.settings.community.tz).date())


def _running(ctx: CommandContext, record: SubscriptionRecord) -> bool:
    if record.active(ctx.clock.now()):
        return True
    # Discord may renew after the paid period's end (it retries a failed payment); it says when it has ended.
    return billed_by_platform(record) and record.ended_at is None and record.cancelled_at is None


def _status(ctx: CommandContext, record: SubscriptionRecord) -> str:
    if record.active(ctx.clock.now()):
        if record.cancelled_at is not None:
            return f"cancelled: your access ends on {_day(ctx, record)}"
        if billed_by_platform(record):
            return f"paid until {_day(ctx, record)}, renews then"
        return f"renews on {_day(ctx, record)}"
    if _running(ctx, record):
        return f"paid until {_day(ctx, record)}; the renewal is due"
    return f"ended on {_day(ctx, record)}"


async def subscriptions(ctx: CommandContext) -> Reply:
    """Your monthly courses: when they renew, and cancel or resume one."""
    action = ctx.options.get("action")
    records = await asyncio.to_thread(
        member_subscriptions, ctx.engine, ctx.community_id, ctx.platform.value, ctx.invoker.user_id
    )
    if action is not None:
        course_id = ctx.options.get("course")
        if course_id is None:
            raise UsageError(f"Which course? Send /subscriptions {action} <course id>.")
        course = ctx.course(course_id)
        live = [r for r in records if r.course_key == course.id and _running(ctx, r)]
        if not live:
            return Reply(rich(["You have no running subscription to ", bold(course.title), "."]), private=True)
        return await _change(ctx, live[-1], cancel=action == "cancel")
    if not records:
        return Reply.say("You have no subscriptions. Send /courses to see what is on offer.", private=True)
    lines: list[list[Span | str] | str] = [[bold("Your subscriptions")]]
    buttons: list[Button] = []
    now = ctx.clock.now()
    for record in records:
        lines.append([bold(record.title), " ", code(record.course_key), f": {_status(ctx, record)}"])
        if record.active(now) and _can_change(ctx, record):
            if record.cancelled_at is None:
                buttons.append(
                    Button(f"Cancel {record.title}", "command", f"/subscriptions cancel {record.course_key}")
                )
            else:
                buttons.append(
                    Button(f"Resume {record.title}", "command", f"/subscriptions resume {record.course_key}")
                )
        elif not _running(ctx, record):
            lines.append(["To come back, send ", code(f"/buy {record.course_key}"), "."])
    elsewhere = sorted({where for record in records if (where := where_to_cancel(record)) is not None})
    for where in elsewhere:
        lines.append(f"To cancel or resume, open {where}: the bot cannot do it for you.")
    if not elsewhere and any(not _can_change(ctx, r) for r in records if r.active(now)):
        lines.append("To cancel, use your account's subscription settings in the app.")
    return Reply(rich(*lines), private=True, buttons=tuple(buttons))


def _can_change(ctx: CommandContext, record: SubscriptionRecord) -> bool:
    """Whether the bot can cancel or resume this subscription: a card one through Stripe, a Stars one on Telegram."""
    if where_to_cancel(record) is not None:
        return False
    if record.provider is not None:
        return ctx.checkout_sessions is not None
    return isinstance(ctx.actions, SubscriptionActions)


async def _set_cancelled(ctx: CommandContext, record: SubscriptionRecord, *, cancel: bool) -> None:
    if record.provider is not None:
        assert ctx.checkout_sessions is not None
        try:
            await ctx.checkout_sessions.set_cancelled(record.subscription_ref, cancelled=cancel)
        except CheckoutUnavailable as exc:
            raise CapabilityError(str(exc)) from exc
        return
    assert isinstance(ctx.actions, SubscriptionActions)
    await ctx.actions.set_subscription_cancelled(ctx.invoker, record.subscription_ref, cancelled=cancel)


async def _change(ctx: CommandContext, record: SubscriptionRecord, *, cancel: bool) -> Reply:
    where = where_to_cancel(record)
    if where is not None:
        return Reply.say(f"The bot cannot change your subscription: open {where} to cancel or resume it.", private=True)
    if not _can_change(ctx, record):
        return Reply.say(
            "Subscriptions here are cancelled in the app itself: open your account's subscription settings.",
            private=True,
        )
    if (record.cancelled_at is not None) == cancel:
        state = "already cancelled" if cancel else "running"
        return Reply(rich(["Your subscription to ", bold(record.title), f" is {state}."]), private=True)
    try:
        await _set_cancelled(ctx, record, cancel=cancel)
    except CapabilityError as exc:
        log.warning(
            "%s user %s could not change subscription %s: %s",
            ctx.platform.value,
            ctx.invoker.user_id,
            record.subscription_ref,
            exc,
        )
        return Reply.say(f"Sorry, that did not work: {exc}. Send /paysupport for help.", private=True)
    now = ctx.clock.now()
    changed = await asyncio.to_thread(
        set_cancelled,
        ctx.engine,
        ctx.community_id,
        ctx.platform.value,
        record.subscription_ref,
        now if cancel else None,
    )
    if changed and ctx.alerts is not None and ctx.alerts.enabled:
        kind: AlertKind = "cancellation" if cancel else "resumed"
        await alert(
            ctx, SaleAlert(kind, ctx.platform.value, ctx.invoker, record.title, note=f"paid until {_day(ctx, record)}")
        )
    if cancel:
        return Reply(
            rich(
                ["Your subscription to ", bold(record.title), " is cancelled: nothing more will be charged."],
                f"Your access lasts until {_day(ctx, record)}. Changed your mind? Send /subscriptions resume "
                f"{record.course_key} before then.",
            ),
            private=True,
        )
    return Reply(
        rich(["Your subscription to ", bold(record.title), f" is running again; it renews on {_day(ctx, record)}."]),
        private=True,
    )


SUBSCRIPTION_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "subscriptions",
        subscriptions,
        options=(
            OptionSpec(
                "action", "cancel or resume a subscription", kind="choice", required=False, choices=("cancel", "resume")
            ),
            OptionSpec("course", "The course id", kind="course", required=False),
        ),
    ),
)
