"""The weekly digest as the owner reads it in Telegram: HTML within the message limits, the chart as a photo."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import DigestSettings
from storage.events import ChannelRef, MemberRef, MessageEvent, Platform
from tests.adapter_telegram.conftest import running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.platform_double import FakeClock, make_scheduler


async def test_owner_and_group_get_the_digest_with_its_chart(tmp_path: Path) -> None:
    async with FakeBotApi() as fake, running(fake, tmp_path / "bot.db") as h:
        monday = datetime(2024, 3, 4, 12, tzinfo=UTC)
        for day in range(14):
            for user in range(8 if day >= 7 else 5):
                await h.writer.put(
                    MessageEvent(
                        Platform.TELEGRAM,
                        "PyCraft",
                        f"{day}{user}",
                        ChannelRef(str(p.GROUP), "PyCraft chat"),
                        MemberRef(str(700 + user), f"<Member {user}>"),
                        monday - timedelta(days=7) + timedelta(days=day),
                        30,
                    )
                )
        await h.writer.flush()
        settings = dataclasses.replace(h.settings, digest=DigestSettings(telegram_chat_ids=(p.GROUP,)))
        community_id = h.adapter.deps.dispatcher.community_id
        clock = FakeClock(datetime(2024, 3, 11, 9, 0, tzinfo=UTC))
        result = await make_scheduler(settings, h.engine, community_id, clock, h.adapter).run("digest")
        assert result.outcome == "ok", result.detail

        texts = {int(c.params["chat_id"]): c.params["text"] for c in fake.calls_to("sendMessage")}
        photos = fake.calls_to("sendPhoto")
        assert set(texts) == {p.GROUP, p.OWNER}
        assert {int(c.params["chat_id"]) for c in photos} == {p.GROUP, p.OWNER}
        for call in photos:
            ((filename, data),) = call.files.values()
            assert filename.endswith(".png") and data.startswith(b"\x89PNG")
        for text in texts.values():
            assert len(text) <= 4096
            assert "<b>PyCraft: week 2024-W10</b>" in text
            assert "Active members: <b>8</b> (+3, +60% vs last week)" in text
        # Member names are escaped, never read as markup; the owners' copy has what only admins see.
        assert "1. &lt;Member 0&gt; · score " in texts[p.OWNER] and "<Member" not in texts[p.OWNER]
        assert "14 messages in 28 days" in texts[p.OWNER]
        assert "At risk" in texts[p.OWNER] and "At risk" not in texts[p.GROUP]
