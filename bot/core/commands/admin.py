"""Commands for the community's admins: report, inactive members, revenue, digest preview, grants and refunds.

The dispatcher refuses these to non-admins before a handler runs. Reports and charts are computed in a thread
(``asyncio.to_thread``) so the event loop keeps serving other members meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from analytics.charts import activity_chart
from analytics.commerce import revenue_by_course, totals_by_currency
from analytics.formatting import DASH, fmt_change, fmt_day, fmt_int, fmt_money, fmt_pct, fmt_totals, plural
from analytics.privacy import OWNERS
from analytics.render import clean_name, data_notices
from analytics.results import MemberStatus, Report
from bot.config import BILLING_PERIOD_DAYS, CourseSettings
from bot.core.commands.base import CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.digest import build_digest
from bot.core.markup import Span, bold, code, italic, join, link, rich
from bot.core.ports import CapabilityError
from bot.core.replies import Attachment, Button, Reply
from bot.core.sales import SaleOutcome, record_refund, record_sale
from bot.core.views import activation_sentence, fmt_conversion, retention_sentence, revenue_windows
from bot.reporting import ReportError, ReportRequest, build_community_report, current_member_ids
from bot.web.links import NO_SECRET_MESSAGE, NoSecretError, issue_login_link
from storage.dashboard_access import DashboardIdentity
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.ledger import (
    LedgerRow,
    UnmatchedRecord,
    ledger,
    live_purchase,
    mark_unmatched_refunded,
    purchase_by_charge,
    unmatched_payment,
    unmatched_payment_by_id,
)
from storage.members import MemberLookupError, ResolvedMember, find_member, resolve_member

log = logging.getLogger(__name__)

REPORT_WEEKS = 12
MAX_LISTED = 20
REFUND_CODE_CHARS = 16
# A confirmation names a purchase (p<id>) or a payment that bought nothing (u<id>): short enough for Telegram's
# 64-byte button data, where a charge id would not fit.
_REF_RE = re.compile(r"[pu][0-9]{1,18}")
_Lines = list[Sequence[Span | str] | str]


def _now_local_day(ctx: CommandContext) -> tuple[datetime, date]:
    now = ctx.clock.now()
    return now, now.astimezone(ctx.settings.community.tz).date()


async def _report(ctx: CommandContext, weeks: int = REPORT_WEEKS) -> tuple[Report, str | None]:
    now, today = _now_local_day(ctx)
    request = ReportRequest(
        community=ctx.settings.community.name,
        weeks=weeks,
        inactive_after_days=ctx.settings.nudges.inactive_after_days,
        help=ctx.settings.help,
    )
    try:
        # The report as of today depends on the day, not the moment: every admin's run until the next commit
        # shares one build (seconds on a big community).
        return await ctx.figures.get(
            ("report", request, today), lambda: build_community_report(ctx.engine, request, now=now)
        )
    except ReportError as exc:  # the community is registered at start-up, so this means a broken database
        log.error("/report: %s", exc)
        raise UsageError(f"The report cannot be built: {exc}") from exc


# --- /report -----------------------------------------------------------------------------------------------------


async def report(ctx: CommandContext) -> Reply:
    """Key figures of the community, with an activity chart."""
    now, today = _now_local_day(ctx)
    result, hint = await _report(ctx)
    chart = await ctx.figures.get(("report-chart", REPORT_WEEKS, today), lambda: activity_chart(result))
    rows = await ctx.figures.get(("ledger", ctx.community_id), lambda: tuple(ledger(ctx.engine, ctx.community_id)))
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
            f"{plural(current.messages, 'message')}"
        )
    if len(weeks) > 1:
        # A partial week compared with a whole one would always look like a drop: compare the last two whole weeks.
        last, before = weeks[-2], (weeks[-3] if len(weeks) > 2 else None)
        change = fmt_change(before.active, last.active) if before else DASH
        lines.append(
            f"Last week ({last.week}): {fmt_int(last.active)} active"
            + (f" ({change} vs the week before)" if change != DASH else "")
            + f", {fmt_int(last.new)} new, {fmt_int(last.left)} left, {plural(last.messages, 'message')}"
        )
    lines += [
        sentence for sentence in (retention_sentence(result, OWNERS), activation_sentence(result, OWNERS)) if sentence
    ]
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
                f"• {line.title}: {fmt_int(line.sales)} sold to {plural(line.buyers, 'buyer')}, "
                f"{fmt_money(line.net, line.currency)} net{refunds}"
            )
        blocks.append(rich(*lines))
    refund_count = sum(1 for r in rows if r.refunded_at is not None)
    blocks.append(
        rich(
            f"Conversion: {fmt_conversion(rows, member_ids, end=now)}",
            f"Refunds: {fmt_int(refund_count)} of {plural(len(rows), 'purchase')} "
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
    now = ctx.clock.now()
    # A monthly course is granted for one period: nothing renews it, so the daily access check removes the member
    # when it ends (grant again to extend, or the member subscribes with /buy).
    ends = now + timedelta(days=BILLING_PERIOD_DAYS) if course.billing == "monthly" else None
    event = PurchaseEvent(
        platform=ctx.platform,
        community=ctx.invocation.community,
        charge_id=f"grant:{platform}:{member.user_id}:{course.id}:{uuid.uuid4().hex[:12]}",
        member=MemberRef(member.user_id, member.display_name),
        course_id=course.id,
        amount=amount,
        currency=currency,
        occurred_at=now,
        source=PurchaseSource.GRANT,
        granted_by=ctx.invoker.user_id,
        access_ends_at=ends,
    )
    outcome = await record_sale(ctx, event, ctx.actions)
    if not outcome.created:
        return Reply(rich(["Nothing was recorded: ", *outcome.reply.text.lines[0]]), private=True)
    money = fmt_money(Decimal(amount) if currency == "XTR" else Decimal(amount) / 100, currency)
    lines: _Lines = [
        ["Recorded: ", bold(_who(member)), " owns ", bold(course.title), f" ({money}, granted by you)."],
        ["Reference: ", code(event.charge_id)],
    ]
    if ends is not None:
        until = fmt_day(ends.astimezone(ctx.settings.community.tz).date())
        lines.append(f"A monthly course: this gives {BILLING_PERIOD_DAYS} days of access, until {until}.")
    lines += _access_lines(outcome, "given")
    return Reply(rich(*lines), private=True)


def refund_code(key: bytes, platform: str, admin_id: str, ref: str, day: date) -> str:
    """The confirmation code of a ``/refund`` on a UTC day: tied to the admin who asked and to one payment."""
    message = f"refund:{platform}:{admin_id}:{ref}:{day.isoformat()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:REFUND_CODE_CHARS]


def _confirmation(ctx: CommandContext, ref: str) -> str:
    day = ctx.clock.now().astimezone(UTC).date()
    return f"{ref}.{refund_code(ctx.confirm_key, ctx.platform.value, ctx.invoker.user_id, ref, day)}"


def _confirmed_ref(ctx: CommandContext, value: str) -> str:
    """The payment reference a confirmation names, once its code checks out for this admin (today or yesterday)."""
    ref, _, given = value.strip().lower().partition(".")
    today = ctx.clock.now().astimezone(UTC).date()
    if _REF_RE.fullmatch(ref) and any(
        hmac.compare_digest(given, refund_code(ctx.confirm_key, ctx.platform.value, ctx.invoker.user_id, ref, day))
        for day in (today, today - timedelta(days=1))
    ):
        return ref
    raise UsageError(
        "This confirmation is not valid: it was made for another admin, or it has expired. Nothing changed; "
        "send /refund again to get a fresh one."
    )


def _purchase_by_id(ctx: CommandContext, purchase_id: int) -> LedgerRow | None:
    for row in ledger(ctx.engine, ctx.community_id, include_test=True):
        if row.purchase_id == purchase_id:
            return row
    return None


def _ask(ctx: CommandContext, ref: str, what: _Lines, *, money: str) -> Reply:
    lines: _Lines = [[bold("Refund this payment?")], *what, money, "Press the button to confirm (only you can)."]
    button = Button("Refund", "command", f"/refund confirm {_confirmation(ctx, ref)}", danger=True)
    return Reply(rich(*lines), private=True, buttons=(button,))


def _money_back(purchase: LedgerRow) -> str:
    if purchase.source == PurchaseSource.TELEGRAM_STARS.value:
        verb = plural(purchase.amount, "goes", "go", with_count=False)
        return f"{fmt_money(Decimal(purchase.amount), 'XTR')} {verb} back to the member through Telegram."
    if purchase.source == PurchaseSource.SIMULATED.value:
        return "It was a simulated payment: no money moved, so none goes back."
    if purchase.source == PurchaseSource.DISCORD_ENTITLEMENT.value:
        return "Discord purchases are refunded by Discord: point the member to Discord's support for the money."
    return "Return the money the way it was paid (checkout provider or bank); the bot only records it."


async def refund(ctx: CommandContext) -> Reply:
    """Refund a payment after you confirm: /refund <member> <course>, or /refund charge <id>.

    Name the member by numeric user id, @username or a mention (or send the command as a reply to one of their
    messages); a display name is never used. ``/refund charge <id>`` refunds any payment by its charge id,
    including one the bot could not match to a course (the owners' notice gives the command). The bot answers with
    a button; only the admin who asked can press it, and a refund happens once however often it is pressed.
    """
    if "confirm" in ctx.options:
        return await _refund_confirmed(ctx, _confirmed_ref(ctx, ctx.options["confirm"]))
    platform = ctx.platform.value
    charge = ctx.options.get("charge")
    if charge is not None:
        purchase = await asyncio.to_thread(purchase_by_charge, ctx.engine, ctx.community_id, platform, charge)
        if purchase is None:
            unmatched = await asyncio.to_thread(unmatched_payment, ctx.engine, ctx.community_id, platform, charge)
            if unmatched is None:
                raise UsageError(f"No {platform} payment with the charge id {charge!r} is recorded; nothing to refund.")
            if unmatched.refunded_at is not None:
                return Reply.say(f"That payment was already refunded ({fmt_day(unmatched.refunded_at)}).", private=True)
            return _ask(
                ctx,
                f"u{unmatched.id}",
                [
                    [
                        "Payment ",
                        code(unmatched.charge_id),
                        f" by user {unmatched.payer_user_id}, which bought nothing.",
                    ],
                    f"Why: {unmatched.problem}.",
                ],
                money=f"{_unmatched_money(unmatched)} go back to the payer through Telegram.",
            )
        if purchase.refunded_at is not None:
            return Reply.say("That purchase was already refunded; nothing to do.", private=True)
    else:
        if "member" not in ctx.options or "course" not in ctx.options:
            raise UsageError("Name the member and the course, or the payment: /refund charge <charge id>.")
        member = await _resolve(ctx)
        course_id = ctx.options["course"]
        owned = await asyncio.to_thread(
            live_purchase, ctx.engine, ctx.community_id, platform, member.user_id, course_id
        )
        if owned is None:
            raise UsageError(f"{_who(member)} has no live purchase of {course_id!r} on {platform}; nothing to refund.")
        purchase = await asyncio.to_thread(_purchase_by_id, ctx, owned.purchase_id)
        assert purchase is not None  # just read as live
    buyer = f"user {purchase.member_user_id}" if purchase.member_user_id else "a forgotten member"
    return _ask(
        ctx,
        f"p{purchase.purchase_id}",
        [
            [
                "The purchase of ",
                bold(purchase.title),
                " by ",
                bold(buyer),
                " (reference ",
                code(purchase.charge_id),
                ").",
            ]
        ],
        money=_money_back(purchase) + " Their access is removed.",
    )


def _unmatched_money(payment: UnmatchedRecord) -> str:
    if payment.currency == "XTR":
        return fmt_money(Decimal(payment.amount), "XTR")
    return fmt_money(Decimal(payment.amount) / 100, payment.currency)


async def _refund_confirmed(ctx: CommandContext, ref: str) -> Reply:
    kind, number = ref[0], int(ref[1:])
    if kind == "u":
        payment = await asyncio.to_thread(unmatched_payment_by_id, ctx.engine, ctx.community_id, number)
        if payment is None or payment.platform != ctx.platform.value:
            raise UsageError("That payment is no longer recorded; nothing changed.")
        async with ctx.sale_locks(f"{payment.platform}:{payment.charge_id}"):
            return await _refund_unmatched(ctx, payment.charge_id)
    purchase = await asyncio.to_thread(_purchase_by_id, ctx, number)
    if purchase is None or purchase.platform != ctx.platform.value:
        raise UsageError("That purchase is no longer recorded; nothing changed.")
    async with ctx.sale_locks(f"{purchase.platform}:{purchase.charge_id}"):
        return await _refund_purchase(ctx, number)


async def _refund_unmatched(ctx: CommandContext, charge_id: str) -> Reply:
    # Read again under the lock: a second press (or a replayed button) finds it refunded and does nothing.
    payment = await asyncio.to_thread(unmatched_payment, ctx.engine, ctx.community_id, ctx.platform.value, charge_id)
    if payment is None:
        raise UsageError("That payment is no longer recorded; nothing changed.")
    if payment.refunded_at is not None:
        return Reply.say("This payment was already refunded; nothing changed.", private=True)
    if payment.payer_user_id is None:
        return Reply.say(
            "The payer asked to be forgotten, so the bot cannot refund them; nothing changed.", private=True
        )
    try:
        await ctx.actions.refund_payment(MemberRef(payment.payer_user_id), payment.charge_id)
    except CapabilityError as exc:
        return Reply.say(f"This platform cannot refund the payment: {exc}. Nothing changed.", private=True)
    except Exception as exc:  # the platform refused: record nothing, so the books match what happened
        log.exception("refunding %s failed", payment.charge_id)
        return Reply.say(f"The refund was refused: {exc}. Nothing was recorded.", private=True)
    await asyncio.to_thread(
        mark_unmatched_refunded, ctx.engine, payment.id, at=ctx.clock.now(), by_user_id=ctx.invoker.user_id
    )
    log.info("payment %s (bought nothing) refunded by admin %s", payment.charge_id, ctx.invoker.user_id)
    return Reply(
        rich(
            ["Refunded: payment ", code(payment.charge_id), f" of user {payment.payer_user_id}."],
            f"{_unmatched_money(payment)} returned to the payer by Telegram.",
        ),
        private=True,
    )


async def _refund_purchase(ctx: CommandContext, purchase_id: int) -> Reply:
    # Read again under the lock: a second press (or a replayed button) finds it refunded and does nothing.
    purchase = await asyncio.to_thread(_purchase_by_id, ctx, purchase_id)
    if purchase is None:
        raise UsageError("That purchase is no longer recorded; nothing changed.")
    if purchase.refunded_at is not None:
        return Reply.say("This purchase was already refunded; nothing changed.", private=True)
    member_ref = MemberRef(purchase.member_user_id) if purchase.member_user_id else None
    returned = _money_back(purchase)
    if purchase.source == PurchaseSource.TELEGRAM_STARS.value:
        if member_ref is None:
            return Reply.say(
                "The buyer asked to be forgotten, so the bot cannot refund them; nothing changed.", private=True
            )
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
    title = outcome.course.title if outcome.course else purchase.title
    who = "a forgotten member"
    if purchase.member_user_id is not None:
        found = await asyncio.to_thread(
            find_member, ctx.engine, ctx.community_id, purchase.platform, purchase.member_user_id
        )
        who = _who(ResolvedMember(purchase.member_user_id, found.display_name if found else None, found is not None))
    lines: _Lines = [
        ["Refunded the purchase of ", bold(title), " by ", bold(who), "."],
        ["Reference: ", code(purchase.charge_id)],
        returned,
    ]
    lines += _access_lines(outcome, "removed")
    return Reply(rich(*lines), private=True)


async def dashboard(ctx: CommandContext) -> Reply:
    """Get a one-time link to the web dashboard, sent to you privately (works once, for 10 minutes)."""
    if not ctx.settings.dashboard.enabled:
        return Reply.say(
            "The web dashboard is switched off. The owner can switch it on with [dashboard] enabled = true in the "
            "config and a restart.",
            private=True,
        )
    identity = DashboardIdentity(
        ctx.community_id, ctx.platform.value, ctx.invoker.user_id, ctx.invoker.display_name or None
    )
    try:
        issued = await asyncio.to_thread(
            issue_login_link, ctx.engine, ctx.settings, ctx.signing_secret, identity, ctx.clock.now()
        )
    except NoSecretError:
        return Reply.say(f"No sign-in link can be made: {NO_SECRET_MESSAGE}.", private=True)
    lines: _Lines = [
        [bold("Your dashboard sign-in link"), " (works once, for 10 minutes; don't share it):"],
        [code(issued.url)],
    ]
    if ctx.settings.web.public_url:
        lines.append([link("Open the dashboard", issued.url)])
    else:
        lines.append(
            [italic("It opens on the server itself; set [web] public_url to reach it through your own domain.")]
        )
    return Reply(rich(*lines), private=True)


_MEMBER = OptionSpec("member", "The member: numeric user id, @username, a mention, or reply to them", kind="member")
_COURSE = OptionSpec("course", "The course id (see /courses)", kind="course")
_REFUND_OPTIONS = (
    OptionSpec(_MEMBER.name, _MEMBER.description, kind="member", required=False),
    OptionSpec(_COURSE.name, _COURSE.description, kind="course", required=False),
    OptionSpec("charge", "A payment's charge id (from a receipt or the owners' notice)", required=False, keyword=True),
    OptionSpec("confirm", "The confirmation the Refund button carries", required=False, keyword=True),
)

ADMIN_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("report", report, admin=True),
    CommandSpec("inactive", inactive, admin=True),
    CommandSpec("revenue", revenue, admin=True),
    CommandSpec("digest", digest, admin=True),
    CommandSpec("grant", grant, options=(_MEMBER, _COURSE), admin=True),
    CommandSpec("refund", refund, options=_REFUND_OPTIONS, admin=True),
    CommandSpec("dashboard", dashboard, admin=True),
)
