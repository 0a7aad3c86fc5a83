"""Commands every member may run: welcome, help, stats, leaderboard, courses and buying, nudge preference, own data.

Almost every answer here is personal, so almost every command is ``private`` (a DM on Telegram, ephemeral on
Discord). ``/leaderboard`` is the exception: its top list is public, under the small-group rule of
``analytics.privacy``; an answer that tells the caller their own place is private.
Handlers read the database through ``storage`` (members, ledger, export) in a thread and never hold a session.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from analytics.activity import ActivityRows
from analytics.formatting import fmt_day, fmt_int, fmt_money, fmt_number, plural
from analytics.members import member_table, top_members
from analytics.privacy import MIN_GROUP
from analytics.report import history_start
from analytics.results import MemberStatus
from bot.config import BILLING_PERIOD_DAYS
from bot.core.checkout import CheckoutDesk, CheckoutUnavailable
from bot.core.commands.base import CommandContext, CommandSpec, OptionSpec, UsageError
from bot.core.commands.questions import member_question_counts
from bot.core.markup import Span, bold, code, italic, join, rich
from bot.core.payments import PaymentError, sign_payload, sign_reference
from bot.core.replies import Attachment, Button, Invoice, Reply
from bot.core.views import course_prices
from storage.deletion import DeletionReport
from storage.events import Platform
from storage.export import export_member_data, table_counts
from storage.ledger import owned_courses
from storage.members import (
    find_member,
    member_stats,
    message_ranking,
    set_leaderboard_opt_out,
    set_nudges_opt_out,
)
from storage.report_frames import member_days, members

if TYPE_CHECKING:
    from bot.config import CourseSettings

log = logging.getLogger(__name__)

FORGET_TOKEN_CHARS = 16
_Lines = list[Sequence[Span | str] | str]

# What each member-data table holds, in words a member understands (tables missing here are shown by name).
TABLE_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "messages": "messages (when, where, length; the text only if the owner turned text storage on)",
        "reactions": "reactions you gave",
        "membership_events": "joins and leaves",
        "purchases": "purchases",
        "refunds": "refunds",
        "nudges": "reminder messages sent to you",
        "member_daily_activity": "daily activity totals",
        "member_activity": "first and last activity",
    }
)


def _today(ctx: CommandContext) -> date:
    return ctx.clock.now().astimezone(ctx.settings.community.tz).date()


# --- /start and /help --------------------------------------------------------------------------------------------


async def start(ctx: CommandContext) -> Reply:
    """What this bot does here and what it stores about you."""
    community = ctx.settings.community.name
    stored = (
        "who posted, where and when, message length and reactions; the owner has turned on storing message text"
        if ctx.settings.storage.store_text
        else "who posted, where and when, message length and reactions; never the text of your messages"
    )
    return Reply(
        rich(
            [bold(f"Hi! I'm the activity bot of {community}.")],
            "I count activity so the community can see what works, I sell the community's courses, and I can "
            "send a friendly reminder when someone has been away for a while.",
            "",
            [bold("Your privacy: "), f"I store {stored}."],
            "",
            [code("/stats"), " your own activity"],
            [code("/courses"), " what you can learn here"],
            [code("/nudges off"), " no reminder messages"],
            [code("/mydata"), " download everything stored about you"],
            [code("/forget"), " delete everything stored about you"],
            [code("/help"), " every command"],
        ),
        private=True,
    )


async def help_(ctx: CommandContext) -> Reply:
    """Every command, with how to use it."""
    from bot.core.commands import all_commands

    specs = all_commands()
    lines: _Lines = [[bold("Commands")]]
    lines += [[code(s.usage()), f" – {s.help}"] for s in specs if not s.admin]
    if ctx.is_admin:
        lines += ["", [bold("Admin commands")]]
        lines += [[code(s.usage()), f" – {s.help}"] for s in specs if s.admin]
    return Reply(rich(*lines), private=True)


# --- /stats ------------------------------------------------------------------------------------------------------


async def stats(ctx: CommandContext) -> Reply:
    """Your own activity: messages, active days, reactions, streak and rank."""
    tz = ctx.settings.community.tz
    today = _today(ctx)
    # Where every active member stands is the same for all callers of the day: read once per data version.
    ranking = await ctx.figures.get(
        ("stats-ranking", today), lambda: message_ranking(ctx.engine, ctx.community_id, today=today)
    )
    result = await asyncio.to_thread(
        member_stats,
        ctx.engine,
        ctx.community_id,
        ctx.platform.value,
        ctx.invoker.user_id,
        today=today,
        ranking=ranking,
    )
    if result is None or (not result.has_activity and not result.courses):
        since = ""
        if result is not None:
            since = f" You're a member since {fmt_day(result.member.member_since.astimezone(tz).date())}."
        return Reply.say(
            f"Nothing recorded for you in the last 30 days yet.{since} Say hello in the community and your "
            "stats will show up here.",
            private=True,
        )
    s = result
    lines: _Lines = [
        [bold(f"Your activity in {ctx.settings.community.name}")],
        f"Last 7 days: {plural(s.messages_7d, 'message')} on {plural(s.active_days_7d, 'active day')}",
        f"Last 30 days: {plural(s.messages_30d, 'message')} on {plural(s.active_days_30d, 'active day')}",
        f"Reactions (30 days): {fmt_int(s.reactions_given_30d)} given, {fmt_int(s.reactions_received_30d)} received",
    ]
    if s.streak:
        lines.append(f"Streak: {plural(s.streak, 'day')} in a row" + (" 🔥" if s.streak >= 3 else ""))
    if s.rank is not None:
        lines.append(f"Rank: #{s.rank} of {plural(s.ranked_members, 'active member')} (messages, 30 days)")
    else:
        lines.append("Rank: post a message to get on the board")
    lines.append(f"Member since: {fmt_day(s.member.member_since.astimezone(tz).date())}")
    if s.courses:
        lines.append("Courses: " + ", ".join(c.title for c in s.courses))
    asked, answered = await member_question_counts(ctx, s.member.id)
    if asked or answered:
        lines.append(f"Help channels (30 days): {plural(asked, 'question')} asked, {plural(answered, 'answer')} given")
    return Reply(rich(*lines), private=True)


# --- /leaderboard ------------------------------------------------------------------------------------------------

LEADERBOARD_SIZE = 10
"""How many members the public leaderboard names."""

# The accounts that host the console and the demo are not members (as in bot.reporting.BUILT_IN_OWNERS, which
# bot.core cannot import without a cycle through bot.reporting's importers).
_NOT_MEMBERS: frozenset[tuple[str, str]] = frozenset({("console", "owner"), ("simulated", "owner")})


@dataclass(frozen=True, slots=True)
class Leaderboard:
    """Every ranked member as of a local day, and where one caller stands.

    Attributes:
        ranked: Current members with a score above 0 who did not opt out, highest score first (ties by member id):
            the report's top-members order, not cut.
        caller_rank: The caller's place in ``ranked`` (1-based), or None when they are not in it.
        caller_opted_out: Whether the caller asked to be left off leaderboards.
    """

    ranked: tuple[MemberStatus, ...]
    caller_rank: int | None
    caller_opted_out: bool


@dataclass(frozen=True, slots=True)
class LeaderboardRanking:
    """Every ranked member as of a local day (the same for every caller), with each one's place.

    Attributes:
        ranked: As in :class:`Leaderboard`.
        places: Member id -> 1-based place in ``ranked``.
    """

    ranked: tuple[MemberStatus, ...]
    places: Mapping[int, int]


def leaderboard_ranking(engine: Engine, community_id: int, timezone: ZoneInfo, *, today: date) -> LeaderboardRanking:
    """Every ranked member as of the local day ``today``, by the report's engagement score (docs/metrics.md).

    It reads the same rollups over the same days as a report as of ``today`` (``member_daily_activity`` from
    ``today − 120``, ``members`` with ``member_activity``), so the score and the order are the ones the report and
    the dashboard show.

    Args:
        engine: The database.
        community_id: The community.
        timezone: The community's time zone (joins and leaves count by local day).
        today: The community-local day.

    Returns:
        The ranking.
    """
    with engine.connect() as conn:
        days = member_days(conn, community_id, history_start(today, weeks=1), today)
        frame = members(conn, community_id, not_members=_NOT_MEMBERS)
    table = member_table(ActivityRows.from_frame(days), frame, as_of=today, timezone=timezone)
    ranked = tuple(top_members(table, n=len(table)))
    return LeaderboardRanking(ranked, MappingProxyType({m.member_id: i for i, m in enumerate(ranked, 1)}))


def leaderboard(
    engine: Engine,
    community_id: int,
    timezone: ZoneInfo,
    platform: str,
    user_id: str,
    *,
    today: date,
    ranking: LeaderboardRanking | None = None,
) -> Leaderboard:
    """The leaderboard as of the local day ``today`` and where the caller stands on it.

    Args:
        engine: The database.
        community_id: The community.
        timezone: The community's time zone (joins and leaves count by local day).
        platform: The caller's platform.
        user_id: The caller's platform user id.
        today: The community-local day.
        ranking: :func:`leaderboard_ranking` as of ``today``, when the caller keeps it; computed here otherwise.

    Returns:
        The ranked members and the caller's place.
    """
    if ranking is None:
        ranking = leaderboard_ranking(engine, community_id, timezone, today=today)
    caller = find_member(engine, community_id, platform, user_id)
    rank = ranking.places.get(caller.id) if caller is not None else None
    return Leaderboard(ranking.ranked, rank, caller is not None and caller.leaderboard_opt_out)


async def leaderboard_(ctx: CommandContext) -> Reply:
    """The most engaged members, by engagement score; /leaderboard off hides you, on shows you again.

    The score weighs recent days more (activity loses half its weight every 14 days; see docs/metrics.md,
    "Leaderboard score"). Members who sent ``/leaderboard off`` are never listed. With fewer than five members to
    rank, nobody is named. The top list is public; when you are not in it, the answer adds your own place and is
    sent to you privately.
    """
    setting = ctx.options.get("setting")
    if setting is not None:
        return await _set_leaderboard(ctx, opt_out=setting == "off")
    today = _today(ctx)
    tz = ctx.settings.community.tz
    # The ranking is the same for every caller of the day: computed once per data version, shared.
    ranking = await ctx.figures.get(
        ("leaderboard", today), lambda: leaderboard_ranking(ctx.engine, ctx.community_id, tz, today=today)
    )
    board = await asyncio.to_thread(
        leaderboard,
        ctx.engine,
        ctx.community_id,
        tz,
        ctx.platform.value,
        ctx.invoker.user_id,
        today=today,
        ranking=ranking,
    )
    if len(board.ranked) < MIN_GROUP:
        # The small-group rule for public outputs: a board of one to four members would single them out.
        return Reply.say(
            f"Not enough members on the leaderboard yet: it shows once at least {MIN_GROUP} members have been active "
            "recently."
        )
    lines: _Lines = [
        [bold(f"Leaderboard of {ctx.settings.community.name}")],
        "By engagement score (recent days count more)",
    ]
    for place, member in enumerate(board.ranked[:LEADERBOARD_SIZE], 1):
        lines.append([f"{place}. ", bold(member.name), f" – {fmt_number(member.score, 1)}"])
    if board.caller_rank is not None and board.caller_rank <= LEADERBOARD_SIZE:
        return Reply(rich(*lines))
    lines.append("")
    if board.caller_opted_out:
        lines.append("You are hidden from the leaderboard. Send /leaderboard on to be listed.")
    elif board.caller_rank is not None:
        mine = board.ranked[board.caller_rank - 1]
        lines.append(
            f"You: #{board.caller_rank} of {fmt_int(len(board.ranked))} with {fmt_number(mine.score, 1)}. "
            "Send /leaderboard off to be hidden."
        )
    else:
        lines.append("You are not on the leaderboard yet: post a message to get on it.")
    return Reply(rich(*lines), private=True)


async def _set_leaderboard(ctx: CommandContext, *, opt_out: bool) -> Reply:
    before = await asyncio.to_thread(find_member, ctx.engine, ctx.community_id, ctx.platform.value, ctx.invoker.user_id)
    was_out = before is not None and before.leaderboard_opt_out
    await asyncio.to_thread(
        set_leaderboard_opt_out,
        ctx.engine,
        ctx.community_id,
        ctx.platform.value,
        ctx.invoker.user_id,
        opt_out=opt_out,
        now=ctx.clock.now(),
        display_name=ctx.invoker.display_name,
    )
    ctx.figures.clear()  # written directly, not through the writer: shared figures may list it
    if opt_out:
        text = (
            "You were already hidden from the leaderboard; nothing changed."
            if was_out
            else "Done: you are hidden from the leaderboard now. Send /leaderboard on to be listed again."
        )
    else:
        text = (
            "Done: you are listed on the leaderboard again (once you have been active recently)."
            if was_out
            else "You were already listed on the leaderboard; nothing changed. Send /leaderboard off to be hidden."
        )
    return Reply.say(text, private=True)


# --- /courses, /buy, /paysupport ---------------------------------------------------------------------------------


async def courses(ctx: CommandContext) -> Reply:
    """The courses on offer, and which ones you own."""
    if not ctx.settings.courses:
        return Reply.say("No courses are on offer right now.", private=True)
    owned = {
        c.course_key
        for c in await asyncio.to_thread(
            owned_courses, ctx.engine, ctx.community_id, ctx.platform.value, ctx.invoker.user_id
        )
    }
    blocks = [rich([bold("Courses")])]
    buttons: list[Button] = []
    for course in ctx.settings.courses:
        head: list[Span | str] = [bold(course.title), " ", code(course.id)]
        lines: _Lines = [head]
        if course.description:
            lines.append(course.description)
        if course.id in owned:
            lines.append("✅ You own this course.")
        else:
            lines.append(f"Price: {course_prices(course, ctx.platform.value)}")
            buttons.append(Button(f"Buy {course.title}", "command", f"/buy {course.id}"))
        blocks.append(rich(*lines))
    return Reply(join(blocks), private=True, buttons=tuple(buttons))


async def buy(ctx: CommandContext) -> Reply:
    """Buy a course."""
    course = ctx.course(ctx.options["course"])
    owned = await asyncio.to_thread(
        owned_courses, ctx.engine, ctx.community_id, ctx.platform.value, ctx.invoker.user_id
    )
    if any(o.course_key == course.id for o in owned):
        return Reply(rich(["You already own ", bold(course.title), ". Nothing to pay."]), private=True)
    if ctx.platform is Platform.TELEGRAM and course.price_stars is not None:
        if not ctx.signing_secret:
            log.error("/buy %s: COHORTBOT_SECRET is not set, so no invoice can be signed; set it to sell", course.id)
            return Reply.say(
                "Sales are not set up yet. The admins have been told; please try again later.", private=True
            )
        try:
            payload = sign_payload(ctx.signing_secret, course.id, ctx.invoker.user_id, course.price_stars)
        except PaymentError:
            log.exception("/buy %s: cannot sign an invoice payload", course.id)
            return Reply.say(
                "Sorry, I cannot make an invoice for this course. The admins have been told.", private=True
            )
        invoice = Invoice(
            course_id=course.id,
            title=course.title,
            description=course.description or course.title,
            amount=course.price_stars,
            currency="XTR",
            payload=payload,
            subscription_period=BILLING_PERIOD_DAYS * 86_400 if course.billing == "monthly" else None,
        )
        price = fmt_money(Decimal(course.price_stars), "XTR")
        if course.billing == "monthly":
            return Reply(
                rich(
                    ["Subscribe to ", bold(course.title), f": {price} every {BILLING_PERIOD_DAYS} days."],
                    "It renews automatically until you cancel it with /subscriptions.",
                ),
                private=True,
                invoice=invoice,
            )
        return Reply(
            rich(["Here is your invoice for ", bold(course.title), f": {price}."]),
            private=True,
            invoice=invoice,
        )
    if ctx.platform is Platform.DISCORD and course.discord_sku_id is not None:
        return Reply(
            rich(["Buy ", bold(course.title), " in Discord with the button below."]),
            private=True,
            buttons=(Button(f"Buy {course.title}", "premium", str(course.discord_sku_id)),),
        )
    if ctx.settings.stripe.enabled and course.stripe_price_id is not None and ctx.checkout_sessions is not None:
        return await _card_checkout(ctx, course)
    if course.checkout_url:
        price = f" ({course_prices(course, ctx.platform.value)})" if course.price is not None else ""
        return Reply(
            rich(
                ["Buy ", bold(course.title), f"{price} on the checkout page."],
                "After you have paid, an admin will record your payment and give you access.",
            ),
            private=True,
            buttons=(Button("Go to checkout", "url", course.checkout_url),),
        )
    return Reply(
        rich([bold(course.title), " cannot be bought here. Ask an admin how to join it."]),
        private=True,
    )


async def _card_checkout(ctx: CommandContext, course: CourseSettings) -> Reply:
    """A Stripe Checkout link bound to this member and course by a signed reference (never a guessable id)."""
    assert ctx.checkout_sessions is not None
    try:
        reference = sign_reference(ctx.signing_secret or "", ctx.platform.value, ctx.invoker.user_id, course.id)
        url = await ctx.checkout_sessions.create(course, reference)
    except (PaymentError, CheckoutUnavailable) as exc:
        log.error("/buy %s: no card checkout could be made: %s", course.id, exc)
        return Reply.say(
            "Sorry, card payments are not available right now. The admins have been told; please try again later.",
            private=True,
        )
    if course.billing == "monthly":
        return Reply(
            rich(
                ["Subscribe to ", bold(course.title), " by card on Stripe's secure checkout page."],
                "It renews every month until you cancel it with /subscriptions. The link is yours alone: your "
                "access is given to this account as soon as the first payment goes through.",
            ),
            private=True,
            buttons=(Button("Subscribe by card", "url", url),),
        )
    return Reply(
        rich(
            ["Pay for ", bold(course.title), " by card on Stripe's secure checkout page."],
            "The link is yours alone: your access is given to this account as soon as the payment goes through.",
        ),
        private=True,
        buttons=(Button("Pay by card", "url", url),),
    )


async def claim(ctx: CommandContext) -> Reply:
    """Attach a course you paid for on the website: send the code from the page you saw after paying."""
    if not (ctx.settings.stripe.enabled or ctx.settings.checkout.enabled):
        return Reply.say("This community sells nothing outside the chat, so there is nothing to claim.", private=True)
    return await CheckoutDesk(ctx, {}).claim(ctx.platform, ctx.invoker, ctx.options["code"], ctx.actions)


async def paysupport(ctx: CommandContext) -> Reply:
    """Help with a payment or a refund."""
    return Reply(
        rich(
            [bold("Help with a payment")],
            "Something wrong with a course you paid for (no access, charged twice, want a refund)? Write to one of "
            f"the admins of {ctx.settings.community.name} and include your payment reference from the receipt.",
            "Refunds are made by the admins (with /refund): the money goes back the way you paid and your access "
            "to the course ends.",
            "Send /courses to see what you own.",
        ),
        private=True,
    )


# --- /nudges -----------------------------------------------------------------------------------------------------


async def nudges(ctx: CommandContext) -> Reply:
    """Turn reminder messages on or off (they are sent when you have been away a while)."""
    setting = ctx.options.get("setting")
    enabled_here = ctx.settings.nudges.enabled
    note = "" if enabled_here else " (This community does not send reminders at the moment.)"
    if setting is None:
        member = await asyncio.to_thread(
            find_member, ctx.engine, ctx.community_id, ctx.platform.value, ctx.invoker.user_id
        )
        state = "off" if member is not None and member.nudges_opt_out else "on"
        other = "on" if state == "off" else "off"
        return Reply(
            rich(["Reminder messages are ", bold(state), f" for you. Send /nudges {other} to change that.{note}"]),
            private=True,
        )
    opt_out = setting == "off"
    await asyncio.to_thread(
        set_nudges_opt_out,
        ctx.engine,
        ctx.community_id,
        ctx.platform.value,
        ctx.invoker.user_id,
        opt_out=opt_out,
        now=ctx.clock.now(),
        display_name=ctx.invoker.display_name,
    )
    ctx.figures.clear()  # written directly, not through the writer: shared figures may list it
    if opt_out:
        text = "Done: I won't send you reminder messages. Send /nudges on if you change your mind."
    else:
        text = "Done: I may send you a friendly reminder when you have been away for a while."
    return Reply.say(text + note, private=True)


# --- /mydata and /forget -----------------------------------------------------------------------------------------


async def mydata(ctx: CommandContext) -> Reply:
    """Download everything stored about you (a JSON file)."""
    platform, user_id = ctx.platform.value, ctx.invoker.user_id
    document = await asyncio.to_thread(
        export_member_data, ctx.engine, ctx.community_id, platform, user_id, now=ctx.clock.now()
    )
    if document is None:
        return Reply.say("Nothing is stored about you.", private=True)
    data = json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True).encode()
    counts = table_counts(document)
    lines: _Lines = [
        [bold("Everything stored about you is in the attached file.")],
        "Your account and preferences, and:",
    ]
    lines += [f"• {TABLE_WORDS.get(name, name)}: {fmt_int(n)}" for name, n in counts.items()]
    lines.append("Send /forget to delete it.")
    attachment = Attachment(f"cohortbot-mydata-{platform}-{user_id}.json", data, "application/json")
    return Reply(rich(*lines), private=True, attachments=(attachment,))


def forget_token(key: bytes, platform: str, user_id: str, day: date) -> str:
    """The confirmation code for ``/forget`` on a UTC day: short, tied to the account, useless to anyone else."""
    message = f"forget:{platform}:{user_id}:{day.isoformat()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:FORGET_TOKEN_CHARS]


def _token_valid(ctx: CommandContext, token: str) -> bool:
    today = ctx.clock.now().astimezone(UTC).date()
    platform, user_id = ctx.platform.value, ctx.invoker.user_id
    # Valid today and yesterday (UTC), so a code fetched just before midnight still works a moment later.
    return any(
        hmac.compare_digest(token.lower(), forget_token(ctx.confirm_key, platform, user_id, day))
        for day in (today, today - timedelta(days=1))
    )


def _deletion_summary(report: DeletionReport) -> _Lines:
    lines: _Lines = []
    for name, n in sorted(report.deleted.items()):
        if name != "members":
            lines.append(f"• deleted {TABLE_WORDS.get(name, name)}: {fmt_int(n)}")
    for name, n in sorted(report.detached.items()):
        lines.append(f"• kept without your name, for accounting: {TABLE_WORDS.get(name, name)}: {fmt_int(n)}")
    return lines


async def forget(ctx: CommandContext) -> Reply:
    """Delete everything stored about you."""
    platform, user_id = ctx.platform.value, ctx.invoker.user_id
    if ctx.options.get("confirm") is None:
        document = await asyncio.to_thread(
            export_member_data, ctx.engine, ctx.community_id, platform, user_id, now=ctx.clock.now()
        )
        if document is None:
            return Reply.say("Nothing is stored about you, so there is nothing to delete.", private=True)
        counts = table_counts(document)
        token = forget_token(ctx.confirm_key, platform, user_id, ctx.clock.now().astimezone(UTC).date())
        lines: _Lines = [
            [bold("This deletes everything stored about you in "), bold(ctx.settings.community.name), bold(":")],
            "• your account and preferences (including /nudges)",
        ]
        lines += [
            f"• {TABLE_WORDS.get(name, name)}: {fmt_int(n)}"
            for name, n in counts.items()
            if n and name not in ("purchases", "refunds")
        ]
        if counts.get("purchases"):
            n = counts["purchases"]
            lines.append(
                f"Your {plural(n, 'purchase')} {plural(n, 'stays', 'stay', with_count=False)} in the sales records "
                "for accounting, without your name; the bot will then no longer know that you own "
                f"{plural(n, 'that course', 'those courses', with_count=False)}."
            )
        lines += [
            "",
            [italic("This cannot be undone.")],
            ["To go ahead, press the button or send ", code(f"/forget confirm {token}")],
        ]
        return Reply(
            rich(*lines),
            private=True,
            buttons=(Button("Delete my data", "command", f"/forget confirm {token}", danger=True),),
        )
    token = ctx.options.get("token", "")
    if not token:
        raise UsageError(
            "The confirmation code is missing; nothing was deleted. Send /forget to get it, "
            "then /forget confirm followed by the code (or press the button)."
        )
    if not _token_valid(ctx, token):
        raise UsageError(
            "That confirmation code is not valid or has expired; nothing was deleted. Send /forget for a new one."
        )
    report = await ctx.writer.forget_member(ctx.invocation.community, platform, user_id)
    ctx.figures.clear()  # the writer deletes without a commit notice: no shared figure may keep them
    if report is None:
        return Reply.say("Nothing was stored about you.", private=True)
    log.info("forgot %s user %s at their request", platform, user_id)
    return Reply(
        rich([bold("Done. Everything stored about you is deleted.")], *_deletion_summary(report)),
        private=True,
    )


MEMBER_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("start", start),
    CommandSpec("help", help_),
    CommandSpec("stats", stats),
    CommandSpec(
        "leaderboard",
        leaderboard_,
        options=(
            OptionSpec(
                "setting", "off hides you, on lists you again", kind="choice", required=False, choices=("on", "off")
            ),
        ),
        private=False,
    ),
    CommandSpec("courses", courses),
    CommandSpec("buy", buy, options=(OptionSpec("course", "The course id (see /courses)", kind="course"),)),
    CommandSpec(
        "claim",
        claim,
        options=(OptionSpec("code", "The code shown after paying on the website, e.g. ABCDE-FGHJK"),),
    ),
    CommandSpec("paysupport", paysupport),
    CommandSpec(
        "nudges",
        nudges,
        options=(OptionSpec("setting", "on or off", kind="choice", required=False, choices=("on", "off")),),
    ),
    CommandSpec("mydata", mydata),
    CommandSpec(
        "forget",
        forget,
        options=(
            OptionSpec("confirm", "Confirm the deletion", kind="choice", required=False, choices=("confirm",)),
            OptionSpec("token", "The confirmation code /forget gave you", required=False),
        ),
    ),
)
