"""Commands share computed figures (report, leaderboard, /stats ranks) until the data or the day changes.

Driven through the real dispatcher, writer and database: an answer never shows figures older than the last
committed activity, a preference change, a deletion or the local day.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from storage.events import Platform
from storage.ingest import IngestStore
from tests.conftest import Events
from tests.helpers.fake_actions import NOW, Bot, running_bot

pytestmark = pytest.mark.storage

PLACE = re.compile(r"^(\d+)\. (.+) – ([\d.,]+)$", re.MULTILINE)


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    async with running_bot(store) as running:
        yield running


@pytest.fixture
def tg() -> Events:
    return Events(Platform.TELEGRAM)


def names(text: str) -> list[str]:
    return [m.group(2) for m in PLACE.finditer(text)]


async def post(bot: Bot, tg: Events, counts: dict[str, int], *, days_ago: int = 0) -> None:
    when = NOW - timedelta(days=days_ago)
    await bot.put(*[tg.message(user, at=when, name=f"M{user}") for user, n in counts.items() for _ in range(n)])


async def test_leaderboard_follows_each_commit_of_the_writer(bot: Bot, tg: Events) -> None:
    await post(bot, tg, {f"1{x:02d}": x for x in range(1, 7)})
    first = names((await bot.run("/leaderboard", user="106")).text.plain())
    assert first[0] == "M106"
    # Member 101 overtakes everyone: the next answer, right after the commit, shows it.
    await post(bot, tg, {"101": 20})
    after = names((await bot.run("/leaderboard", user="106")).text.plain())
    assert after[0] == "M101" and after[1] == "M106"


async def test_stats_rank_follows_a_member_who_overtakes(bot: Bot, tg: Events) -> None:
    await post(bot, tg, {"101": 5, "102": 3})
    assert "Rank: #1 of 2 active members" in (await bot.run("/stats", user="101")).text.plain()
    await post(bot, tg, {"102": 10, "103": 1})
    assert "Rank: #2 of 3 active members" in (await bot.run("/stats", user="101")).text.plain()


async def test_report_and_inactive_count_new_activity_and_a_new_day(bot: Bot, tg: Events) -> None:
    await post(bot, tg, {"101": 2, "102": 1})
    await post(bot, tg, {"103": 1}, days_ago=20)  # quiet for 20 days: inactive
    report = (await bot.run("/report", admin=True)).text.plain()
    assert "Messages: 3 in 7 days, 4 in 28 days" in report
    assert "M103" in (await bot.run("/inactive", admin=True)).text.plain()

    await post(bot, tg, {"101": 4, "103": 1})
    report = (await bot.run("/report", admin=True)).text.plain()
    assert "Messages: 8 in 7 days, 9 in 28 days" in report
    assert "M103" not in (await bot.run("/inactive", admin=True)).text.plain()

    # Eight days later nothing new was posted, yet the report is for the new day: last week's messages left the
    # 7-day window.
    bot.clock.advance(timedelta(days=8))
    report = (await bot.run("/report", admin=True)).text.plain()
    assert "Messages: 0 in 7 days, 8 in 28 days" in report  # 29 February left the 28 days too


async def test_a_forgotten_member_leaves_the_shared_leaderboard_at_once(bot: Bot, tg: Events) -> None:
    await post(bot, tg, {f"1{x:02d}": x for x in range(1, 7)})
    assert "M106" in names((await bot.run("/leaderboard", user="101")).text.plain())
    ask = await bot.run("/forget", user="106")
    (button,) = ask.buttons
    assert "Everything stored about you is deleted" in (await bot.run(button.value, user="106")).text.plain()
    assert "M106" not in names((await bot.run("/leaderboard", user="101")).text.plain())
