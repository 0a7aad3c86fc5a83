"""Commands for the community's admins: report, inactive members, revenue, digest preview, grants and refunds.

The dispatcher refuses these to non-admins before a handler runs. Reports and charts are computed in a thread
(``asyncio.to_thread``) so the event loop keeps serving other members meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from analytics.charts import activity_chart
from analytics.render import clean_name, data_notices
from analytics.results import MemberStatus, Report
from bot.config import CourseSettings
from bot.core.commands.base import CapabilityError, CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.digest import build_digest, latest_cohort
from bot.core.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from bot.core.markup import Span, bold, code, italic, join, rich
from bot.core.replies import Attachment, Reply
from bot.core.sales import SaleOutcome, find_course, record_refund, record_sale
from bot.core.views import (
    DASH,
    fmt_change,
    fmt_conversion,
    fmt_day,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_totals,
    revenue_by_course,
    revenue_windows,
    totals_by_currency,
)
from bot.reporting import ReportError, ReportRequest, build_community_report, current_member_ids
from storage.member_queries import (
    MemberLookupError,
    ResolvedMember,
    ledger,
    live_purchase,
    resolve_member,
)

log = logging.getLogger(__name__)

REPORT_WEEKS = 12
MAX_LISTED = 20
_Lines = list[Sequence[Span | str] | str]


def _now_local_day(ctx: CommandContext) -> tuple[datetime, date]:
    now = ctx.clock.now()
    return now, now.astimezone(ctx.settings.community.tz).date()


async def _report(ctx: CommandContext, weeks: int = REPORT_WEEKS) -> tuple[Report, str | None]:
    now, _ = _now_local_day(ctx)
    request = ReportRequest(
        community=ctx.settings.community.name,
        weeks=weeks,
        inactive_after_days=ctx.settings.nudges.inactive_after_days,
    )
    try:
        return await asyncio.to_thread(build_community_report, ctx.engine, request, now=now)
    except ReportError as exc:  # the community is registered at start-up, so this means a broken database
        log.error("/report: %s", exc)
        raise UsageError(f"The report cannot be built: {exc}") from exc


# --- /report -----------------------------------------------------------------------------------------------------


async def report(ctx: CommandContext) -> Reply:
    """Key figures of the community, with an activity chart."""
    now, today = _now_local_day(ctx)
    result, hint = await _report(ctx)
    chart = await asyncio.to_thread(activity_chart, result)
    rows = await asyncio.to_thread(ledger, ctx.engine, ctx.community_id)
    s = result.summary
    weeks = result.weekly
    lines: _Lines = [
        [bold(f"{result.community}: report as of {fmt_day(result.as_of)}")],
        *([italic(f"⚠ {note}")] for note in data_notices(result)),
        f"Members: {fmt_int(result.members)}",
        f"Active: DAU {fmt_int(s.dau)} · WAU {fmt_int(s.wau)} · MAU {fmt_int(s.mau)}",
        f"Stickiness (DAU/MAU): {fmt_pct(s.stickiness)}",
        f"Messages: {fmt_int(s.messages_7d)} in 7 days, {fmt_int(s.messages_28d)} in 28 days",
    ]
    if weeks:
        current = weeks[-1]
        lines.append(
            f"This week so far: {fmt_int(current.new)} new, {fmt_int(current.left)} left, "
            f"{fmt_int(current.messages)} messages"
        )
    if len(weeks) > 1:
        # A partial week compared with a whole one would always look like a drop: compare the last two whole weeks.
        last, before = weeks[-2], (weeks[-3] if len(weeks) > 2 else None)
        change = fmt_change(before.active, last.active) if before else DASH
        lines.append(
            f"Last week ({last.week}): {fmt_int(last.active)} active"
            + (f" ({change} vs the week before)" if change != DASH else "")
            + f", {fmt_int(last.new)} new, {fmt_int(last.left)} left, {fmt_int(last.messages)} messages"
        )
    cohort = latest_cohort(result)
    if cohort is not None:
        lines.append(
            f"Retention: of the {fmt_int(cohort.size)} who joined in {cohort.cohort}, "
            f"{fmt_pct(cohort.second_week_retention)} came back in their second week"
        )
    if result.activation_eligible:
        lines.append(
            f"Activation (3+ messages in the first 7 days): {fmt_pct(result.activation_rate)} of "
            f"{fmt_int(result.activation_eligible)} recent joiners"
        )
    if rows:
        lines += ["", [bold("Revenue, net of refunds")]]
        for label, start in revenue_windows(today, ctx.settings.community.tz):
            totals = totals_by_currency(revenue_by_course(rows, start=start, end=now))
            lines.append(f"{label}: {fmt_totals(totals)}")
    if hint:
        lines += ["", [italic(f"Note: {hint}")]]
    lines += ["", "More: /inactive, /revenue, /digest"]
    attachment = Attachment(f"report-{result.as_of.isoformat()}-activity.png", chart, "image/png")
    return Reply(rich(*lines), private=True, attachments=(attachment,))


# --- /inactive ---------------------------------------------------------------------------------------------------


def _member_list(title: str, members: Sequence[MemberStatus], as_of: date, empty: str) -> _Lines:
    lines: _Lines = [[bold(title), f" ({fmt_int(len(members))})"]]
    if not members:
        lines.append(empty)
        return lines
    for member in members[:MAX_LISTED]:
        if member.days_since_active is None:
            seen = "never active"
        else:
            seen = f"last seen {fmt_day(as_of - timedelta(days=member.days_since_active))}"
        lines.append(f"• {clean_name(member.name)} ({member.platform}) – {seen}")
    if len(members) > MAX_LISTED:
        lines.append(f"… and {fmt_int(len(members) - MAX_LISTED)} more")
    return lines


async def inactive(ctx: CommandContext) -> Reply:
    """Members who have gone quiet: first those at risk, then the other inactive members."""
    result, _ = await _report(ctx, weeks=1)
    days = ctx.settings.nudges.inactive_after_days
    # The two lists are disjoint: a member at risk (recently slipped away, the most worth a hello) is listed there
    # only, not again among the inactive members.
    at_risk = {m.member_id for m in result.at_risk}
    lines = _member_list(
        "At risk: active 2–6 weeks ago, silent for the last 2 weeks",
        result.at_risk,
        result.as_of,
        "Nobody right now.",
    )
    lines.append("")
    lines += _member_list(
        f"Other inactive members: silent for {days}+ days (not counting those at risk)",
        [m for m in result.inactive if m.member_id not in at_risk],
        result.as_of,
        "Nobody else: everyone has been around lately.",
    )
    return Reply(rich(*lines), private=True)


# --- /revenue ----------------------------------------------------------------------------------------------------


async def revenue(ctx: CommandContext) -> Reply:
    """Revenue net of refunds by course: this week, last 4 weeks, all time."""
    now, today = _now_local_day(ctx)
    rows = await asyncio.to_thread(ledger, ctx.engine, ctx.community_id)
    if not rows:
        return Reply.say("No sales recorded yet.", private=True)
    member_ids = await asyncio.to_thread(current_member_ids, ctx.engine, ctx.settings.community.name, as_of=today)
    blocks = [rich([bold(f"Revenue of {ctx.settings.community.name}, net of refunds")])]
    for label, start in revenue_windows(today, ctx.settings.community.tz):
        lines_in = revenue_by_course(rows, start=start, end=now)
        lines: _Lines = [[bold(label), f": {fmt_totals(totals_by_currency(lines_in))}"]]
        for line in lines_in:
            refunds = f", {line.refunds} refunded ({fmt_money(line.refunded, line.currency)})" if line.refunds else ""
            lines.append(
                f"• {line.title}: {line.sales} sold to {line.buyers} buyer{'s' if line.buyers != 1 else ''}, "
                f"{fmt_money(line.net, line.currency)} net{refunds}"
            )
        blocks.append(rich(*lines))
    refund_count = sum(1 for r in rows if r.refunded_at is not None)
    blocks.append(
        rich(
            f"Conversion: {fmt_conversion(rows, member_ids, end=now)}",
            f"Refunds: {fmt_int(refund_count)} of {fmt_int(len(rows))} purchases "
            f"({fmt_pct(refund_count / len(rows), 1)})",
        )
    )
    return Reply(join(blocks), private=True)


# --- /digest -----------------------------------------------------------------------------------------------------


async def digest(ctx: CommandContext) -> Reply:
    """Preview this week's owner digest."""
    built = await asyncio.to_thread(
        build_digest, ctx.engine, ctx.settings, ctx.community_id, now=ctx.clock.now(), for_admins=True
    )
    head = rich([italic(f"Preview of the digest for {built.week_label} (the admin version):")], "")
    return Reply(head + built.text, private=True, attachments=built.charts)


# --- /grant and /refund ------------------------------------------------------------------------------------------


async def _resolve(ctx: CommandContext) -> ResolvedMember:
    try:
        return await asyncio.to_thread(
            resolve_member, ctx.engine, ctx.community_id, ctx.platform.value, ctx.options["member"]
        )
    except MemberLookupError as exc:
        raise UsageError(str(exc)) from exc


def _who(member: ResolvedMember) -> str:
    name = clean_name(member.display_name) if member.display_name else None
    return f"{name} (id {member.user_id})" if name else f"user {member.user_id}"


def _grant_price(course: CourseSettings) -> tuple[int, str]:
    if course.price is not None and course.currency:
        return int((course.price * 100).to_integral_value()), course.currency
    # No money price: the outside payment's amount is unknown; record the access, not a made-up amount.
    return 0, course.currency or "XTR"


def _access_lines(outcome: SaleOutcome, verb: str) -> _Lines:
    access = outcome.access
    if access is None:
        return [f"Access was not {verb}: the course is not configured for it."]
    if access.ok:
        return [f"Access {verb}." + (f" {access.detail}" if access.detail else "")]
    return [[bold("⚠ Access problem: "), access.problem or "the platform refused without saying why"]]


async def grant(ctx: CommandContext) -> Reply:
    """Record a payment made outside the platform and give the member access."""
    course = ctx.course(ctx.options["course"])
    member = await _resolve(ctx)
    platform = ctx.platform.value
    owned = await asyncio.to_thread(live_purchase, ctx.engine, ctx.community_id, platform, member.user_id, course.id)
    if owned is not None:
        return Reply(
            rich([f"{_who(member)} already owns ", bold(course.title), "; nothing recorded."]),
            private=True,
        )
    amount, currency = _grant_price(course)
    event = PurchaseEvent(
        platform=ctx.platform,
        community=ctx.invocation.community,
        charge_id=f"grant:{platform}:{member.user_id}:{course.id}:{uuid.uuid4().hex[:12]}",
        member=MemberRef(member.user_id, member.display_name),
        course_id=course.id,
        amount=amount,
        currency=currency,
        occurred_at=ctx.clock.now(),
        source=PurchaseSource.GRANT,
        granted_by=ctx.invoker.user_id,
    )
    outcome = await record_sale(ctx, event, ctx.actions)
    if not outcome.created:
        return Reply(rich(["Nothing was recorded: ", *outcome.reply.text.lines[0]]), private=True)
    money = fmt_money(Decimal(amount) if currency == "XTR" else Decimal(amount) / 100, currency)
    lines: _Lines = [
        ["Recorded: ", bold(_who(member)), " owns ", bold(course.title), f" ({money}, granted by you)."],
        ["Reference: ", code(event.charge_id)],
    ]
    lines += _access_lines(outcome, "given")
    return Reply(rich(*lines), private=True)


async def refund(ctx: CommandContext) -> Reply:
    """Refund a member's purchase of a course and take their access away."""
    course_id = ctx.options["course"]
    member = await _resolve(ctx)
    platform = ctx.platform.value
    purchase = await asyncio.to_thread(live_purchase, ctx.engine, ctx.community_id, platform, member.user_id, course_id)
    if purchase is None:
        raise UsageError(f"{_who(member)} has no live purchase of {course_id!r} on {platform}; nothing to refund.")
    member_ref = MemberRef(member.user_id, member.display_name)
    returned = "Return the money the way it was paid (checkout provider or bank); the bot only records it."
    if purchase.source == PurchaseSource.TELEGRAM_STARS.value:
        try:
            await ctx.actions.refund_payment(member_ref, purchase.charge_id)
        except CapabilityError as exc:
            return Reply.say(
                f"This platform cannot refund a Telegram Stars payment: {exc}. Nothing changed.", private=True
            )
        except Exception as exc:  # the platform refused: record nothing, so the books match what happened
            log.exception("refunding %s failed", purchase.charge_id)
            return Reply.say(f"The refund was refused: {exc}. Nothing was recorded; access is unchanged.", private=True)
        returned = f"{fmt_money(Decimal(purchase.amount), 'XTR')} returned to the member by Telegram."
    elif purchase.source == PurchaseSource.SIMULATED.value:
        returned = "It was a simulated payment: no money moved, so none goes back."
    elif purchase.source == PurchaseSource.DISCORD_ENTITLEMENT.value:
        returned = "Discord purchases are refunded by Discord: point the member to Discord's support for the money."
    event = RefundEvent(
        platform=Platform(purchase.platform),
        community=ctx.invocation.community,
        charge_id=purchase.charge_id,
        occurred_at=ctx.clock.now(),
        reason="refunded by an admin with /refund",
        refunded_by=ctx.invoker.user_id,
    )
    outcome = await record_refund(ctx, event, member_ref, ctx.actions)
    if not outcome.created:
        return Reply.say("This purchase was already refunded; nothing changed.", private=True)
    title = course.title if (course := find_course(ctx.settings, course_id)) else purchase.title
    lines: _Lines = [
        ["Refunded: ", bold(_who(member)), "'s purchase of ", bold(title), "."],
        ["Reference: ", code(purchase.charge_id)],
        returned,
    ]
    lines += _access_lines(outcome, "removed")
    return Reply(rich(*lines), private=True)


_MEMBER = OptionSpec("member", "The member: numeric user id, @name or a mention", kind="member")
_COURSE = OptionSpec("course", "The course id (see /courses)", kind="course")

ADMIN_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("report", report, admin=True),
    CommandSpec("inactive", inactive, admin=True),
    CommandSpec("revenue", revenue, admin=True),
    CommandSpec("digest", digest, admin=True),
    CommandSpec("grant", grant, options=(_MEMBER, _COURSE), admin=True),
    CommandSpec("refund", refund, options=(_MEMBER, _COURSE), admin=True),
)
