"""Surveys on Telegram: the NPS question in a chat, native polls and their votes.

Native polls are sent with ``sendPoll`` (non-anonymous); their votes arrive as ``poll_answer`` updates, which
:func:`bot.core.surveys.receive_poll_vote` stores.

A poll must be non-anonymous for Telegram to send ``poll_answer`` updates at all, and only for polls the bot sent:
every vote names its member. A vote withdrawn in the app arrives as an answer with no options.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from telegram import PollAnswer
from telegram.error import TelegramError

from bot.adapters.telegram import render
from bot.core.ports import CapabilityError, DeliveryError, PostedSurvey
from bot.core.replies import Reply
from bot.core.surveys import PollVote, receive_poll_vote
from storage.events import ChannelRef, Platform

if TYPE_CHECKING:
    from bot.adapters.telegram.adapter import TelegramAdapter


def _where(channel: ChannelRef) -> tuple[int, int | None]:
    return int(channel.channel_id), int(channel.thread_id) if channel.thread_id is not None else None


async def post_survey(adapter: TelegramAdapter, channel: ChannelRef, reply: Reply) -> PostedSurvey:
    """Post a question with its buttons in the chat (and forum topic) of ``channel``.

    Raises:
        DeliveryError: Telegram refused (the bot may not post there).
    """
    chat_id, thread_id = _where(channel)
    try:
        parts = render.plan(reply)
        sent = await render.send_parts(adapter.app.bot, chat_id, parts, call=adapter.call, thread_id=thread_id)
    except CapabilityError as exc:
        raise DeliveryError(str(exc)) from exc
    except TelegramError as exc:
        raise DeliveryError(f"Telegram refused the message to chat {chat_id}: {exc.message}") from exc
    return PostedSurvey(str(sent[-1].message_id))


async def post_poll(
    adapter: TelegramAdapter, channel: ChannelRef, question: str, options: tuple[str, ...]
) -> PostedSurvey:
    """Post a native non-anonymous, single-answer poll (``sendPoll``); its votes name their members.

    Raises:
        DeliveryError: Telegram refused the poll.
    """
    chat_id, thread_id = _where(channel)
    bot = adapter.app.bot
    try:
        message = await adapter.call(
            chat_id,
            lambda: bot.send_poll(
                chat_id,
                question,
                list(options),
                is_anonymous=False,
                allows_multiple_answers=False,
                message_thread_id=thread_id,
            ),
        )
    except TelegramError as exc:
        raise DeliveryError(f"Telegram refused the poll in chat {chat_id}: {exc.message}") from exc
    if message.poll is None:
        raise DeliveryError("Telegram answered sendPoll without a poll")
    return PostedSurvey(str(message.message_id), message.poll.id)


async def poll_answer(adapter: TelegramAdapter, answer: PollAnswer) -> None:
    """Store a vote on one of our polls (a vote cast as a channel, with no user, cannot be attributed: ignored).

    Runs before the update is confirmed to Telegram: a database error makes the update come again, and a
    replayed vote stores the same answer.
    """
    if answer.user is None:
        return
    option = answer.option_ids[0] if answer.option_ids else None
    vote = PollVote(Platform.TELEGRAM.value, answer.poll_id, str(answer.user.id), option)
    deps = adapter.deps
    await asyncio.to_thread(receive_poll_vote, deps.engine, deps.dispatcher.community_id, vote, now=deps.clock.now())
