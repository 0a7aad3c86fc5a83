"""The owners' digest tells how the monthly courses do: active subscriptions, MRR, the week's new and churned, the
renewal rate; the digest posted to the community chat says nothing about them."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.digest import build_digest
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource
from storage.ingest import IngestStore
from storage.subscriptions import record_period
from tests.conftest import COMMUNITY
from tests.helpers.fake_actions import NOW, Bot, running_bot

pytestmark = pytest.mark.storage


async def subscribe(bot: Bot, user: str, charge: str, starts: datetime) -> None:
    """A Stars subscription payment as the payment handler records it: the purchase, then the 30-day period."""
    await bot.writer.record_purchase(
        PurchaseEvent(
            Platform.TELEGRAM,
            COMMUNITY,
            charge,
            MemberRef(user),
            "rust-intro",
            350,
            "XTR",
            starts,
            PurchaseSource.TELEGRAM_STARS,
        )
    )
    await asyncio.to_thread(
        record_period,
        bot.engine,
        bot.community_id,
        platform="telegram",
        user_id=user,
        course_key="rust-intro",
        charge_id=charge,
        starts_at=starts,
        ends_at=starts + timedelta(days=30),
    )


@pytest.fixture
async def bot(store: IngestStore) -> AsyncIterator[Bot]:
    """The digest covers 2024-W11 (11-17 March, Berlin). ann subscribed on 12 February and renewed on 13 March;
    bob subscribed on 14 February and let it run out on 15 March; cat subscribed on 12 March."""
    async with running_bot(store) as running:
        await subscribe(running, "701", "ann-1", datetime(2024, 2, 12, 12, tzinfo=UTC))
        await subscribe(running, "701", "ann-2", datetime(2024, 3, 13, 12, tzinfo=UTC))
        await subscribe(running, "702", "bob-1", datetime(2024, 2, 14, 12, tzinfo=UTC))
        await subscribe(running, "703", "cat-1", datetime(2024, 3, 12, 12, tzinfo=UTC))
        yield running


async def test_owners_digest_has_the_subscription_figures(bot: Bot) -> None:
    text = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=True).text.plain()
    block = text.split("Subscriptions\n")[1].split("\n\n")[0]
    # Paid up on Sunday night: ann (renewed) and cat (new); bob's access ended on Friday without a renewal.
    assert "Active: 2 (+1 new, −1 churned this week) · MRR 700 Stars" in block
    # Over the digest's 8 weeks two periods ran out: ann's was renewed, bob's was not.
    assert "Renewal rate 50% over 8 weeks (1 of 2 renewed)" in block


async def test_owners_digest_charts_the_subscriptions(bot: Bot) -> None:
    digest = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=True)
    activity, subscriptions = digest.charts
    assert activity.filename == "digest-2024-W11-activity.png"
    assert subscriptions.filename == "digest-2024-W11-subscriptions.png"
    assert subscriptions.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", subscriptions.data[16:24]) == (1200, 675)  # phone-sized, like the activity chart


async def test_the_community_chat_digest_leaves_subscriptions_out(bot: Bot) -> None:
    digest = build_digest(bot.engine, bot.settings, bot.community_id, now=NOW, for_admins=False)
    text = digest.text.plain()
    assert "Subscriptions" not in text and "MRR" not in text
    assert [chart.filename for chart in digest.charts] == ["digest-2024-W11-activity.png"]
