"""``/unanswered`` (admins) and the question figures ``/stats`` shows: the help channels' questions.

Definitions: docs/metrics.md, "Questions and answers". Links: a Discord message's jump URL needs the server id,
which storage does not keep per channel, so it is given when ``[discord] guild_ids`` names exactly one server; a
Telegram message link exists for supergroups (``-100…`` chat ids), including forum topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date

import pandas as pd

from analytics.formatting import fmt_day, fmt_int, plural
from analytics.questions import WaitingQuestion, member_counts, waiting_questions, week_figures
from analytics.render import clean_name
from analytics.render.questions import figures_line
from analytics.results import Report
from bot.config import Settings
from bot.core.commands.base import CommandContext, CommandSpec
from bot.core.markup import Rich, Span, bold, link, rich
from bot.core.replies import Reply
from bot.questions import RECENT_DAYS, question_rules, recent_questions

UNANSWERED_LISTED = 20
"""How many waiting questions ``/unanswered`` names (oldest first); the count covers them all."""

_TELEGRAM_SUPERGROUP = "-100"


def message_link(settings: Settings, question: WaitingQuestion) -> str | None:
    """A link that opens the question's message, when the platform and the stored ids allow one.

    Args:
        settings: The configuration (the Discord server id comes from ``[discord] guild_ids``).
        question: The question.

    Returns:
        A Discord jump URL, a ``t.me/c/...`` link, or None.
    """
    if question.platform == "discord":
        if len(settings.discord.guild_ids) != 1:
            return None
        guild = settings.discord.guild_ids[0]
        return f"https://discord.com/channels/{guild}/{question.link_channel}/{question.platform_message_id}"
    if question.platform == "telegram":
        chat, _, topic = question.link_channel.partition("#")
        if not chat.startswith(_TELEGRAM_SUPERGROUP) or not question.platform_message_id.isdigit():
            return None
        internal = chat[len(_TELEGRAM_SUPERGROUP) :]
        middle = f"{topic}/" if topic else ""
        return f"https://t.me/c/{internal}/{middle}{question.platform_message_id}"
    return None


def _waited(hours: float) -> str:
    if hours < 48:
        return plural(int(hours), "hour")
    return plural(int(hours // 24), "day")


async def _recent(ctx: CommandContext) -> pd.DataFrame:
    now = ctx.clock.now()
    today = now.astimezone(ctx.settings.community.tz).date()
    # Shared by /unanswered and every member's /stats until the data changes.
    return await ctx.figures.get(
        ("questions-recent", ctx.settings.help, today),
        lambda: recent_questions(ctx.engine, ctx.community_id, ctx.settings.help, now=now),
    )


async def unanswered(ctx: CommandContext) -> Reply:
    """Questions in the help channels still waiting for an answer, oldest first, with links."""
    help_ = ctx.settings.help
    questions = await _recent(ctx)
    waiting = await asyncio.to_thread(waiting_questions, questions, end=ctx.clock.now(), rules=question_rules(help_))
    limit = plural(help_.unanswered_after_hours, "hour")
    title = f"Unanswered questions (no answer after {limit}, last {RECENT_DAYS} days)"
    if not waiting:
        return Reply(rich([bold(title)], "None: every question got an answer."), private=True)
    tz = ctx.settings.community.tz
    lines: list[Sequence[Span | str] | str] = [[bold(title), f" ({fmt_int(len(waiting))})"]]
    for q in waiting[:UNANSWERED_LISTED]:
        where = f"#{clean_name(q.channel)}, {clean_name(q.asker)}, {fmt_day(q.asked_at.astimezone(tz).date())}"
        url = message_link(ctx.settings, q)
        spans: list[Span | str] = ["• ", link(where, url) if url else where, f" – waiting {_waited(q.waiting_hours)}"]
        lines.append(spans)
    if len(waiting) > UNANSWERED_LISTED:
        lines.append(f"… and {plural(len(waiting) - UNANSWERED_LISTED, 'more question')}")
    return Reply(rich(*lines), private=True)


async def member_question_counts(ctx: CommandContext, member_id: int) -> tuple[int, int]:
    """The invoking member's questions asked and first answers given in the help channels, last 30 days.

    Args:
        ctx: The command's context.
        member_id: The member's stored id.

    Returns:
        (questions asked, answers given).
    """
    return member_counts(await _recent(ctx), member_id)


QUESTION_COMMANDS: tuple[CommandSpec, ...] = (CommandSpec("unanswered", unanswered, admin=True),)


DIGEST_WAITING = 5
"""How many of the longest-waiting questions the owners' digest names."""


def digest_questions(report: Report, settings: Settings, monday: date) -> Rich | None:
    """The owners' digest section: the week's question figures and the longest-waiting questions, with links.

    Args:
        report: The digest's report (its range ends on the digest's Sunday).
        settings: The configuration (links, the unanswered limit).
        monday: The digest week's Monday.

    Returns:
        The section, or None when the report has no questions section or no question in its range (no help
        channels: nothing to say).
    """
    summary = report.questions
    if summary is None or summary.total.questions == 0:
        return None
    week = week_figures(summary, monday)
    lines: list[Sequence[Span | str] | str] = [[bold("Questions"), " (help channels)"]]
    lines.append(f"This week: {figures_line(week)}" if week is not None else "This week: no questions.")
    tz = settings.community.tz
    recent = [q for q in summary.waiting if q.waiting_hours <= RECENT_DAYS * 24][:DIGEST_WAITING]
    if recent:
        lines.append(f"Longest waiting (no answer after {plural(settings.help.unanswered_after_hours, 'hour')}):")
        for q in recent:
            where = f"#{clean_name(q.channel)}, {clean_name(q.asker)}, {fmt_day(q.asked_at.astimezone(tz).date())}"
            url = message_link(settings, q)
            lines.append(["• ", link(where, url) if url else where, f" – {_waited(q.waiting_hours)}"])
    return rich(*lines)
