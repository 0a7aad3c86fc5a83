"""Commands are answered in the community's chats, the courses' chats and private chats; anywhere else, silence."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.adapter_telegram.conftest import running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi

STRANGER = -1009999000001  # a group someone added the bot to; not in the config


def sent_to(fake: FakeBotApi, chat_id: int) -> list[str]:
    return [str(c.params.get("text", "")) for c in fake.calls_to("sendMessage") if int(c.params["chat_id"]) == chat_id]


async def test_commands_are_answered_only_where_the_config_says(
    fake: FakeBotApi, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.adapters.telegram.commands")
    async with running(fake, db_path) as h:
        stranger_group = {"id": STRANGER, "title": "Someone else's group", "type": "supergroup"}
        await h.deliver(
            p.group_message(p.ALICE, "/help"),
            p.group_message(p.ALICE, "/help", chat_id=p.COURSE_CHAT),
            p.private_message(p.ALICE, "/help"),
            {"message": p.message(stranger_group, p.ALICE, "/help")},
            {"message": p.message(stranger_group, p.OWNER, "/report")},
            {"message": p.message(stranger_group, p.BOB, "/stats@cohort_test_bot")},
            {"message": p.message(stranger_group, p.BOB, "just chatting")},
            p.callback(p.ALICE, "/stats", chat=stranger_group, query_id="cbq-stranger"),
        )
        await h.settle()
        # Answered in the community's group, the course's chat and the private chat ...
        assert sent_to(fake, p.GROUP) and sent_to(fake, p.COURSE_CHAT) and sent_to(fake, p.ALICE)
        # ... and nothing for the commands sent in the stranger's group: not there, and not privately either (a
        # group answer goes to the member's private chat, with a note in the group).
        assert sent_to(fake, STRANGER) == []
        assert len(sent_to(fake, p.ALICE)) == 3  # her /help in the group, in the course chat and in private
        assert sent_to(fake, p.OWNER) == [] and sent_to(fake, p.BOB) == []
        # Activity there is not logged either (as before: only [telegram] chat_ids are the community).
        assert h.count("select count(*) from messages") == 0
        assert h.count("select count(*) from channels") == 0
    # The log says so once for that chat, not once per command.
    silent = [r for r in caplog.records if "ignoring commands in Telegram chat" in r.getMessage()]
    assert len(silent) == 1
    assert str(STRANGER) in silent[0].getMessage()
