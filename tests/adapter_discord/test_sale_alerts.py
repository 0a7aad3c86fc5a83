"""Sale alerts in a Discord channel (``[sales] alert_channel``), through the real discord.py client against the fake
Discord: one line per sale, refund and failed access grant, posted once however often the platform delivers the
event, and only in the owners' channel (the buyer gets the receipt, never the alert)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .conftest import BOB_ID, CARA_ID, RUST_SKU, HarnessFactory
from .test_adapter import ROLE_PATH


def posts_to(h: Any, channel_id: str) -> list[str]:
    return [str(c.json.get("content", "")) for c in h.fake.find("POST", rf"/channels/{channel_id}/messages")]


async def test_each_sale_refund_and_failed_grant_posts_one_line_in_the_alert_channel(
    make_harness: HarnessFactory, fake: Any
) -> None:
    channel = fake.guild().channel_id
    h = await make_harness(sections={"sales": {"alert_channel": int(channel)}})
    entitlement = h.fake.entitlement(CARA_ID, RUST_SKU)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)  # delivered twice
    await h.fake.wait_for_call("PUT", ROLE_PATH)
    await h.eventually(lambda: any("Sale" in t for t in posts_to(h, channel)))
    await h.adapter._drain(5.0)
    (sale,) = [t for t in posts_to(h, channel) if "Sale" in t]
    assert "Intro to Rust" in sale and f"discord user {CARA_ID}" in sale

    # An admin grants a course, but the bot may not give the role: a sale and a failed grant.
    h.fake.inject_missing_permissions("PUT", ROLE_PATH)
    token = await h.fake.slash(BOB_ID, "grant", {"member": CARA_ID, "course": "py-async"})
    await h.fake.wait_responses(token)
    await h.eventually(lambda: any("Access failed" in t for t in posts_to(h, channel)))
    assert len([t for t in posts_to(h, channel) if "Sale: Async Python" in t]) == 1
    assert "49.00 EUR" in next(t for t in posts_to(h, channel) if "Sale: Async Python" in t)

    await h.fake.dispatch("ENTITLEMENT_DELETE", entitlement)  # Discord refunded it
    await h.eventually(lambda: any("Refund" in t for t in posts_to(h, channel)))
    await h.adapter._drain(5.0)
    assert len([t for t in posts_to(h, channel) if "Refund" in t]) == 1
    # Nothing the owners read went anywhere else: every other post is a receipt or an answer, not an alert line.
    others = [c for c in h.fake.find("POST", r"/channels/\d+/messages") if not c.path.endswith(f"/{channel}/messages")]
    assert not any(" · discord user " in str(c.json.get("content", "")) for c in others)


async def test_a_discord_subscription_that_ends_is_announced_once_when_told_and_once_when_over(
    make_harness: HarnessFactory, fake: Any
) -> None:
    channel = fake.guild().channel_id
    h = await make_harness(sections={"sales": {"alert_channel": int(channel)}})
    entitlement = h.fake.entitlement(CARA_ID, RUST_SKU)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)
    await h.eventually(lambda: any("Sale" in t for t in posts_to(h, channel)))
    ends = datetime.now(UTC) + timedelta(days=3)
    cancelled = {**entitlement, "ends_at": ends.isoformat()}
    await h.fake.dispatch("ENTITLEMENT_UPDATE", cancelled)
    await h.fake.dispatch("ENTITLEMENT_UPDATE", cancelled)  # delivered twice
    await h.eventually(lambda: any("Ending" in t for t in posts_to(h, channel)))
    ended = {**entitlement, "ends_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    await h.fake.dispatch("ENTITLEMENT_UPDATE", ended)
    await h.eventually(lambda: any("Access ended" in t for t in posts_to(h, channel)))
    await h.adapter._drain(5.0)
    lines = posts_to(h, channel)
    assert len([t for t in lines if "Ending" in t]) == 1
    assert len([t for t in lines if "Access ended" in t]) == 1
    assert f"{ends.day} {ends:%b %Y}" in next(t for t in lines if "Ending" in t)
