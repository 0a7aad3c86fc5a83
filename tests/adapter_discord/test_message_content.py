"""``[discord] message_content``: the bot asks for the Message Content intent only when the owner turned it on.

Without the intent Discord blanks each message's text, attachments and embeds (the fake does the same when told
to be strict), so length, code, link and attachment facts read 0; with it they are real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import parse_settings
from tests.adapter_discord.conftest import ANN_ID, HarnessFactory, settings_dict
from tests.fakes.discord_api import MESSAGE_CONTENT_INTENT, FakeDiscord

POST = "see https://docs.python.org and try ```print(1)```"


def test_the_switch_is_off_by_default_and_read_from_the_config(fake: FakeDiscord, tmp_path: Path) -> None:
    assert parse_settings(settings_dict(fake, tmp_path / "a.db")).discord.message_content is False
    assert parse_settings(settings_dict(fake, tmp_path / "a.db", message_content=True)).discord.message_content


@pytest.mark.parametrize(
    ("message_content", "store_text", "asked"),
    [(False, False, False), (True, False, True), (False, True, True)],
    ids=["off", "message_content", "store_text"],
)
async def test_identify_carries_the_intent_bit_only_when_asked(
    make_harness: HarnessFactory, fake: FakeDiscord, message_content: bool, store_text: bool, asked: bool
) -> None:
    await make_harness(message_content=message_content, store_text=store_text)
    intents = int(fake.identifies[-1]["intents"])
    assert bool(intents & MESSAGE_CONTENT_INTENT) is asked


@pytest.mark.parametrize("message_content", [True, False], ids=["on", "off"])
async def test_message_facts_are_real_only_with_the_intent(
    make_harness: HarnessFactory, fake: FakeDiscord, message_content: bool
) -> None:
    fake.blank_without_message_content = True
    h = await make_harness(message_content=message_content)
    await fake.message(ANN_ID, POST, attachments=2, embeds=1)
    sql = "SELECT length, has_code, has_link, attachments, text FROM messages"
    (row,) = await h.eventually(lambda: h.rows(sql))
    if message_content:
        # Real facts; the text itself is still not kept without [storage] store_text.
        assert tuple(row) == (len(POST), 1, 1, 2, None)
    else:
        assert tuple(row) == (0, 0, 0, 0, None)
