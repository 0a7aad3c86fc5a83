"""/leaderboard in a Telegram group, through the real python-telegram-bot client against the fake Bot API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.adapter_telegram.conftest import running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import DEFAULT_TOKEN, FakeBotApi

# Five members besides Alice, Bob and Carol, so that the board passes the small-group rule.
DAVE, ERIN = 600004, 600005


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(DEFAULT_TOKEN) as api:
        yield api


def to(chat_id: int) -> Any:
    return lambda call: int(call.params.get("chat_id", 0)) == chat_id


async def test_the_board_is_posted_in_the_group_and_opting_out_answers_by_dm(fake: FakeBotApi, tmp_path: Path) -> None:
    now = int(time.time())
    counts = {p.ALICE: 5, p.BOB: 4, p.CAROL: 3, DAVE: 2, ERIN: 1}
    async with running(fake, tmp_path / "cohortbot.db") as h:
        await h.deliver(
            *[p.group_message(user, "hello", date=now) for user, n in counts.items() for _ in range(n)],
        )
        await h.eventually(lambda: h.count("select count(*) from messages") == 15, "the messages are stored")

        await h.deliver(p.group_message(p.ALICE, "/leaderboard", date=now))
        (board,) = await fake.wait_for("sendMessage", lambda c: "Leaderboard" in str(c.params["text"]))
        assert int(board.params["chat_id"]) == p.GROUP  # public: Alice is first
        text = str(board.params["text"])
        assert text.index("5.0") < text.index("4.0") < text.index("1.0")

        await h.deliver(p.group_message(ERIN, "/leaderboard off", date=now))
        (dm,) = await fake.wait_for("sendMessage", lambda c: "hidden from the leaderboard" in str(c.params["text"]))
        assert int(dm.params["chat_id"]) == ERIN  # the answer is personal: by DM, with a pointer in the group

        await h.deliver(p.group_message(p.ALICE, "/leaderboard", date=now))
        (small,) = await fake.wait_for("sendMessage", lambda c: "Not enough members" in str(c.params["text"]))
        assert int(small.params["chat_id"]) == p.GROUP
