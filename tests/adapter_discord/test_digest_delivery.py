"""The weekly digest as a Discord channel shows it: within the message limit, with the chart attached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.scheduler import Scheduler
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
from tests.helpers.platform_double import FakeClock

from .conftest import COMMUNITY, HarnessFactory

DIGEST_CHANNEL = 900000000000000077


async def test_the_digest_posts_to_the_digest_channel_with_its_chart(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    monday = datetime(2024, 3, 4, 12, tzinfo=UTC)
    for day in range(14):
        for user in range(8 if day >= 7 else 5):
            await h.writer.put(
                MessageEvent(
                    Platform.DISCORD,
                    COMMUNITY,
                    f"m{day}-{user}",
                    ChannelRef("c1", "general"),
                    MemberRef(f"u{user}", f"member {user}"),
                    monday - timedelta(days=7) + timedelta(days=day),
                    30,
                )
            )
    await h.writer.flush()
    settings = h.settings
    settings = type(settings)(
        **{
            **{f: getattr(settings, f) for f in settings.__dataclass_fields__},
            "digest": type(settings.digest)(discord_channel_ids=(DIGEST_CHANNEL,)),
        }
    )
    community_id = h.dispatcher.community_id
    clock = FakeClock(datetime(2024, 3, 11, 9, 0, tzinfo=UTC))
    scheduler = Scheduler(
        settings=settings, engine=h.engine, clock=clock, adapters=[h.adapter], community_id=lambda: community_id
    )
    result = await scheduler.run("digest")
    assert result.outcome == "ok", result.detail

    posts = h.fake.find("POST", f"/channels/{DIGEST_CHANNEL}/messages")
    assert posts, "nothing was posted to the digest channel"
    texts = [str((c.json or {}).get("content") or "") for c in posts]
    assert all(len(t) <= 2000 for t in texts)
    whole = "\n".join(texts)
    assert "**PyCraft: week 2024-W10** (04 Mar – 10 Mar 2024)" in whole  # bold title, no stray escapes
    assert "Active members: **8** (+3, +60% vs last week)" in whole
    charts = [data for c in posts for name, data in c.files.items() if name.endswith(".png")]
    assert len(charts) == 1 and charts[0].startswith(b"\x89PNG")
