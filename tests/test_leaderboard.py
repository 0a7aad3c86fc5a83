"""/leaderboard through the real dispatcher over a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.reporting import ReportRequest, build_community_report
from storage.events import Platform
from storage.ingest import IngestStore
from storage.members import find_member
from tests.conftest import COMMUNITY, Events
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


def places(text: str) -> list[tuple[int, str, str]]:
    """The listed places as (place, name, score) in the order shown."""
    return [(int(m.group(1)), m.group(2), m.group(3)) for m in PLACE.finditer(text)]


async def post(bot: Bot, tg: Events, counts: dict[str, int], *, days_ago: int = 0) -> None:
    """``counts[user]`` messages by each user, ``days_ago`` days before now (the same local day in Berlin)."""
    when = NOW - timedelta(days=days_ago)
    await bot.put(*[tg.message(user, at=when, name=f"M{user}") for user, n in counts.items() for _ in range(n)])


async def test_top_members_are_ranked_by_the_reports_score_and_opt_outs_are_absent(bot: Bot, tg: Events) -> None:
    # Twelve members: member 1x posts x messages today (x = 1..12). Member 20 posted 8 messages 14 days ago,
    # which count half (score 4.0, behind member 5's 5.0 and tied with member 4, who wins on the lower member id).
    await post(bot, tg, {f"1{x:02d}": x for x in range(1, 13)})
    await post(bot, tg, {"20": 8}, days_ago=14)
    await bot.run("/leaderboard off", user="111", name="M111")

    reply = await bot.run("/leaderboard", user="112")
    assert not reply.private  # member 112 is in the top: the answer is the public board
    shown = places(reply.text.plain())
    assert [(place, name) for place, name, _ in shown] == [
        (1, "M112"),
        (2, "M110"),
        (3, "M109"),
        (4, "M108"),
        (5, "M107"),
        (6, "M106"),
        (7, "M105"),
        (8, "M104"),
        (9, "M20"),
        (10, "M103"),
    ]
    assert [score for *_, score in shown][:2] == ["12.0", "10.0"]
    assert dict((name, score) for _, name, score in shown)["M20"] == "4.0"
    assert "M111" not in reply.text.plain()  # opted out

    # The same score and order as the report's top members (what the dashboard shows).
    report, _ = build_community_report(
        bot.engine, ReportRequest(community=COMMUNITY, as_of=NOW.date(), top_n=10), now=NOW
    )
    assert [(m.name, f"{m.score:.1f}") for m in report.top_members] == [(name, score) for _, name, score in shown]


async def test_a_member_below_the_top_sees_their_own_place_privately(bot: Bot, tg: Events) -> None:
    await post(bot, tg, {f"1{x:02d}": x for x in range(1, 13)})
    reply = await bot.run("/leaderboard", user="102")
    text = reply.text.plain()
    assert reply.private
    assert len(places(text)) == 10
    assert "You: #11 of 12 with 2.0" in text

    newcomer = await bot.run("/leaderboard", user="999")
    assert newcomer.private
    assert "You are not on the leaderboard yet" in newcomer.text.plain()


async def test_fewer_than_five_ranked_members_names_nobody(bot: Bot, tg: Events) -> None:
    # Five active members, but one opted out: four left to rank, under the small-group rule's five.
    await post(bot, tg, {"101": 3, "102": 2, "103": 5, "104": 1, "105": 4})
    await bot.run("/leaderboard off", user="105")
    reply = await bot.run("/leaderboard", user="101")
    text = reply.text.plain()
    assert "Not enough members on the leaderboard yet" in text
    assert places(text) == [] and "M10" not in text

    await bot.run("/leaderboard on", user="105")
    shown = places((await bot.run("/leaderboard", user="103")).text.plain())
    assert [name for _, name, _ in shown] == ["M103", "M105", "M101", "M102", "M104"]


async def test_off_and_on_round_trip_says_what_changed(bot: Bot, tg: Events) -> None:
    await post(bot, tg, {f"1{x:02d}": x for x in range(1, 7)})

    off = await bot.run("/leaderboard off", user="106")
    assert off.private and "you are hidden from the leaderboard now" in off.text.plain()
    again = await bot.run("/leaderboard off", user="106")
    assert "already hidden" in again.text.plain()
    hidden = await bot.run("/leaderboard", user="106")
    assert hidden.private  # not in the top: their own line is personal
    assert "M106" not in [name for _, name, _ in places(hidden.text.plain())]
    assert "You are hidden from the leaderboard" in hidden.text.plain()

    on = await bot.run("/leaderboard on", user="106")
    assert "listed on the leaderboard again" in on.text.plain()
    assert "already listed" in (await bot.run("/leaderboard on", user="106")).text.plain()
    assert places((await bot.run("/leaderboard", user="106")).text.plain())[0][1] == "M106"


async def test_opting_out_before_posting_keeps_a_new_member_off_the_board(bot: Bot, tg: Events) -> None:
    await bot.run("/leaderboard off", user="777", name="Shy")
    member = find_member(bot.engine, bot.community_id, "telegram", "777")
    assert member is not None and member.leaderboard_opt_out
    await post(bot, tg, {**{f"1{x:02d}": x for x in range(1, 7)}, "777": 50})
    text = (await bot.run("/leaderboard", user="101")).text.plain()
    assert "M777" not in text and "Shy" not in text
    assert places(text)[0][1] == "M106"


async def test_help_and_bad_settings(bot: Bot) -> None:
    help_text = (await bot.run("/help")).text.plain()
    assert "/leaderboard [on|off] – " in help_text
    wrong = await bot.run("/leaderboard maybe")
    assert wrong.private and "Usage: /leaderboard [on|off]" in wrong.text.plain()
