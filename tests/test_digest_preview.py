"""The weekly digest (built directly and previewed with /digest) over a seeded community."""

from __future__ import annotations

import re
import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from analytics.privacy import MEMBERS, OWNERS
from bot.core.digest import _engagement, build_digest
from bot.core.views import latest_cohort
from storage.events import MemberJoined, MemberLeft, MemberRef, Platform, PurchaseEvent, PurchaseSource
from storage.ingest import IngestStore
from storage.models import Member
from tests.conftest import COMMUNITY, Events
from tests.helpers.fake_actions import NOW, Bot, running_bot
from tests.report_samples import sample_report

pytestmark = pytest.mark.storage

NAMES = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon")
ID = {name: str(2000 + i) for i, name in enumerate(NAMES)}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def day(month: int, d: int) -> datetime:
    return datetime(2024, month, d, 12, tzinfo=UTC)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def seed_weeks(bot: Bot) -> None:
    """Now is Wed 20 March 2024; the digest covers 2024-W11 (11-17 March), compared with W10 (4-10 March).

    W10: ann..fay active, 2 messages each (6 active, 12 messages). W11: ann 10 messages, bob 5, cat dan eve gus hal
    jon 1 each (8 active, 21 messages); jon joined on the 12th (new), hal left on the 15th. ivy was last active on
    20 February (at risk). ann opted out of leaderboards. ann bought Async Python for Stars on the 13th.
    """
    ev = Events(Platform.TELEGRAM)

    def msg(name: str, when: datetime) -> object:
        return ev.message(ID[name], at=when, name=name.title())

    events: list[object] = [
        MemberJoined(Platform.TELEGRAM, COMMUNITY, MemberRef(ID[n], n.title()), day(1, 1)) for n in NAMES if n != "jon"
    ]
    events.append(MemberJoined(Platform.TELEGRAM, COMMUNITY, MemberRef(ID["jon"], "Jon"), day(3, 12)))
    events += [msg(n, day(3, 5)) for n in ("ann", "bob", "cat", "dan", "eve", "fay") for _ in range(2)]
    events += [msg("ann", day(3, 11 + i % 7)) for i in range(10)]
    events += [msg("bob", day(3, 13)) for _ in range(5)]
    events += [msg(n, day(3, 12)) for n in ("cat", "dan", "eve", "gus", "hal", "jon")]
    events.append(msg("ivy", day(2, 20)))
    events.append(MemberLeft(Platform.TELEGRAM, COMMUNITY, MemberRef(ID["hal"]), day(3, 15)))
    await bot.put(*events)  # type: ignore[arg-type]
    with bot.engine.begin() as conn:
        conn.execute(update(Member).where(Member.platform_user_id == ID["ann"]).values(leaderboard_opt_out=True))
    await bot.writer.record_purchase(
        PurchaseEvent(
            Platform.TELEGRAM,
            COMMUNITY,
            "stars-1",
            MemberRef(ID["ann"]),
            "py-async",
            500,
            "XTR",
            day(3, 13),
            PurchaseSource.TELEGRAM_STARS,
        )
    )


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    async with running_bot(store) as running:
        await seed_weeks(running)
        yield running


async def test_digest_covers_the_last_complete_week(bot: Bot) -> None:
    digest = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=True)
    text = digest.text.plain()
    assert digest.week_label == "2024-W11"
    assert text.startswith("testers: week 2024-W11 (11 Mar – 17 Mar 2024)")
    assert "Active members: 8 (+2, +33% vs last week)" in text
    assert "New members: 1 (+1 vs last week)\n" in text  # the owners' digest is exact, small groups included
    assert "<5" not in text
    assert "Messages: 21 (+9, +75% vs last week)" in text
    top = text.split("Top contributors")[1].split("\n\n")[0]
    assert re.search(r"^1\. Bob · score [\d.]+ · 7 messages in 28 days$", top, re.MULTILINE)
    assert "(by engagement score, which weighs recent days more)" in top
    assert "Ann" not in top  # opted out of leaderboards
    assert "At risk" in text and "Ivy" in text
    assert "Async Python: 1 sold, 500 Stars net" in text
    assert "More members were active than the week before (up 33%)." in text
    assert len(text) < 4096


@pytest.mark.parametrize("configured", [2, 7])
async def test_digest_lists_the_configured_number_of_top_members_by_score(bot: Bot, configured: int) -> None:
    settings = replace(bot.settings, digest=replace(bot.settings.digest, top_members=configured))
    text = build_digest(bot.engine, settings, bot.community_id, now=NOW, for_admins=False).text.plain()
    top = text.split("Top contributors")[1].split("\n\n")[0].splitlines()[1:]
    scores = [float(re.search(r"score ([\d,.]+)", line).group(1).replace(",", "")) for line in top]  # type: ignore[union-attr]
    assert len(top) == configured  # 7: more than the 5 the digest used to stop at
    assert scores == sorted(scores, reverse=True)


async def test_public_digest_names_nobody_at_risk(bot: Bot) -> None:
    digest = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=False)
    text = digest.text.plain()
    assert "At risk" not in text and "went quiet" not in text
    # Ivy (at risk) may be on the leaderboard, by score, but is named nowhere else.
    assert "Ivy" not in text.replace(text.split("Top contributors")[1].split("\n\n")[0], "")
    assert "Sales" not in text and "Stars" not in text
    assert "Active members: 8 (+2, +33% vs last week)" in text
    # Seen by members: one joiner shows as "<5", and no change reveals it (last week had none).
    assert "New members: <5\n" in text
    assert "Left: <5\n" in text


async def test_digest_chart_is_a_phone_sized_png(bot: Bot) -> None:
    digest = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=True)
    (chart,) = digest.charts
    assert chart.mime_type == "image/png" and chart.filename == "digest-2024-W11-activity.png"
    assert png_size(chart.data) == (1200, 675)


async def test_digest_command_previews_for_admins_only(bot: Bot) -> None:
    refused = await bot.run("/digest")
    assert "only for the community's admins" in refused.text.plain() and not refused.attachments
    preview = await bot.run("/digest", admin=True)
    text = preview.text.plain()
    assert text.startswith("Preview of the digest for 2024-W11")
    assert "Messages: 21" in text and "Ivy" in text
    assert preview.private
    (chart,) = preview.attachments
    assert png_size(chart.data) == (1200, 675)


async def test_digest_of_an_empty_community(store: IngestStore) -> None:
    async with running_bot(store) as bot:
        digest = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=True)
    text = digest.text.plain()
    assert "Active members: 0" in text and "Messages: 0" in text
    assert "No sales or refunds this week." in text
    assert png_size(digest.charts[0].data) == (1200, 675)


def test_members_never_see_a_share_that_reveals_a_small_group_owners_see_it() -> None:
    # The newest observed cohort has 10 members, 2 of whom came back in their second week: 20 % names two people.
    report = sample_report()
    latest = latest_cohort(report)
    assert latest is not None
    small_part = replace(latest, size=10, retention=(1.0, 0.2), second_week_retention=0.2)
    report = replace(report, cohorts=(*[c for c in report.cohorts if c is not latest], small_part))
    owners = _engagement(report, OWNERS).plain()
    members = _engagement(report, MEMBERS).plain()
    assert f"of the 10 who joined in {latest.cohort}, 20% came back" in owners
    retention = next(line for line in members.splitlines() if line.startswith("Retention"))
    assert retention == (
        f"Retention: of the 10 who joined in {latest.cohort}, how many came back in their second week is not shown "
        "(fewer than 5 either way)."
    )
