"""The optional pings for help questions left unanswered: ``[help] ping_role`` and ``[help] ping_chat``.

Each question gets at most one ping, whatever the number of bot processes: it is claimed in the database
(``storage.questions.claim_ping``, a unique row per message) before anything is sent. A ping that fails after its
claim is not retried: a lost ping is better than a doubled one. Only questions that passed the limit within the
last :data:`FRESH_HOURS` are pinged, so switching pings on does not flood the helpers with a month of old
questions, and each run sends at most :data:`MAX_PER_RUN`, :data:`PACE_SECONDS` apart (the platforms' limits and
the helpers' patience).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from analytics.questions import WaitingQuestion, waiting_questions
from analytics.render import clean_name
from bot.config import Settings
from bot.core.commands.questions import message_link
from bot.core.markup import link, rich
from bot.core.replies import OutgoingMessage, Reply
from bot.questions import question_rules, recent_questions
from storage.questions import claim_ping

log = logging.getLogger(__name__)

FRESH_HOURS = 24
MAX_PER_RUN = 10
PACE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class PingRun:
    """What one run did."""

    due: int  # questions past the limit, not yet pinged by anyone, fresh enough
    pinged: int
    failed: int

    def detail(self) -> str:
        """One line for ``job_runs``."""
        return f"{self.due} questions waiting past the limit: pinged {self.pinged}, failed {self.failed}"


def ping_messages(settings: Settings, question: WaitingQuestion) -> list[OutgoingMessage]:
    """Where one question's ping goes: its Discord channel (mentioning the role) and the Telegram ping chat."""
    help_ = settings.help
    url = message_link(settings, question)
    what = f"a question by {clean_name(question.asker)} in #{clean_name(question.channel)}"
    waited = f" has waited {int(question.waiting_hours)} hours for an answer"
    line = [link(what, url) if url else what, waited]
    messages = []
    if help_.ping_role is not None and question.platform == "discord":
        # Posted where the question is (a forum post's thread, or the channel), so helpers answer in place.
        target = question.link_channel
        messages.append(
            OutgoingMessage("discord", target, Reply(rich(["Helpers: ", *line, "."]), mention_role=help_.ping_role))
        )
    if help_.ping_chat is not None:
        messages.append(OutgoingMessage("telegram", str(help_.ping_chat), Reply(rich(["❓ ", *line, "."]))))
    return messages


async def run_question_pings(
    engine: Engine,
    settings: Settings,
    community_id: int,
    *,
    send: Callable[[OutgoingMessage], Awaitable[None]],
    now: datetime,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> PingRun:
    """Ping once for each question that passed ``[help] unanswered_after_hours`` within the last day.

    Args:
        engine: The database.
        settings: The configuration.
        community_id: The community.
        send: Delivers one message (raises when it cannot).
        now: The current instant.
        sleep: How to wait between pings.

    Returns:
        What the run did.
    """
    help_ = settings.help
    questions = await asyncio.to_thread(recent_questions, engine, community_id, help_, now=now)
    waiting = waiting_questions(questions, end=now, rules=question_rules(help_))
    fresh = [q for q in waiting if q.waiting_hours <= help_.unanswered_after_hours + FRESH_HOURS]
    fresh.reverse()  # the question that waited longest first
    pinged = failed = due = 0
    for question in fresh:
        messages = ping_messages(settings, question)
        if not messages:
            continue
        if pinged + failed >= MAX_PER_RUN:
            due += 1
            continue

        def claim(message_id: int = question.message_id) -> bool:
            with engine.begin() as conn:
                return claim_ping(conn, community_id, message_id, at=now)

        if not await asyncio.to_thread(claim):
            continue  # pinged before, by this process or another
        due += 1
        if pinged + failed:
            await sleep(PACE_SECONDS)
        ok = True
        for message in messages:
            try:
                await send(message)
            except Exception as exc:  # one unreachable target must not keep the other pings from going out
                log.warning("question ping to %s %s failed: %s", message.platform, message.target, exc)
                ok = False
        pinged += ok
        failed += not ok
    return PingRun(due=due, pinged=pinged, failed=failed)
