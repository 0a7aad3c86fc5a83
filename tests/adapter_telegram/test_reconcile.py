"""The daily access check against the fake Bot API: refunded members leave the course chat, late buyers are listed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.clock import SystemClock
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.job_runs import last_job_runs
from tests.adapter_telegram.conftest import running
from tests.fakes import telegram_payloads as p
from tests.fakes.telegram_bot_api import FakeBotApi
from tests.helpers.platform_double import make_scheduler


async def test_reconcile_removes_a_refunded_member_and_lists_a_buyer_outside_the_chat(tmp_path: Path) -> None:
    async with FakeBotApi() as fake, running(fake, tmp_path / "bot.db") as h:
        at = datetime(2024, 3, 4, tzinfo=UTC)
        for charge, user in (("stx-alice", p.ALICE), ("stx-bob", p.BOB), ("stx-carol", p.CAROL)):
            await h.writer.record_purchase(
                PurchaseEvent(
                    Platform.TELEGRAM,
                    "PyCraft",
                    charge,
                    MemberRef(str(user)),
                    "py-async",
                    50,
                    "XTR",
                    at,
                    PurchaseSource.TELEGRAM_STARS,
                )
            )
        await h.writer.record_refund(RefundEvent(Platform.TELEGRAM, "PyCraft", "stx-carol", at))
        fake.statuses[(p.COURSE_CHAT, p.ALICE)] = "member"  # joined with her link
        fake.statuses[(p.COURSE_CHAT, p.BOB)] = "left"  # paid, never joined
        fake.statuses[(p.COURSE_CHAT, p.CAROL)] = "member"  # refunded, still inside

        community_id = h.adapter.deps.dispatcher.community_id
        scheduler = make_scheduler(h.settings, h.engine, community_id, SystemClock(), h.adapter)
        result = await scheduler.run("reconcile")
        assert result.outcome == "ok", result.detail
        banned = [int(c.params["user_id"]) for c in fake.calls_to("banChatMember")]
        assert banned == [p.CAROL]
        assert fake.statuses[(p.COURSE_CHAT, p.CAROL)] == "left"  # unbanned again: she may buy and come back
        assert fake.calls_to("createChatInviteLink") == []  # no daily invite spam for the buyer outside
        detail = last_job_runs(h.engine, community_id)["reconcile"].detail or ""
        assert "fixed 1" in detail
        assert f"telegram user {p.BOB}, Async Python: bought it but has not joined the course chat" in detail
