"""Entitlements that end, and test-mode entitlements, through the real discord.py client against the fake Discord.

An entitlement that ends takes the course role away and records the end in the ledger, so the daily
reconciliation never gives the role back; a test-mode purchase is recorded as a test purchase, is never revenue,
and gives the role only when ``[discord] grant_test_entitlements = true``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.reconcile import reconcile_access

from .conftest import BOB_ID, CARA_ID, RUST_ROLE, RUST_SKU, HarnessFactory
from .test_adapter import body, role_calls


def iso(at: datetime) -> str:
    return at.isoformat()


def ledger(h: Any) -> list[tuple[Any, ...]]:
    """(charge id, is test, amount, access ends set, refunded) of every purchase."""
    return [
        (r[0], bool(r[1]), int(r[2]), r[3] is not None, bool(r[4]))
        for r in h.rows(
            "SELECT p.charge_id, p.is_test, p.amount, p.access_ends_at, f.id IS NOT NULL FROM purchases p "
            "LEFT JOIN refunds f ON f.purchase_id = p.id ORDER BY p.id"
        )
    ]


async def revenue(h: Any) -> str:
    token = await h.fake.slash(BOB_ID, "revenue")
    [answer] = await h.fake.wait_responses(token)
    return str(body(answer)["content"])


async def test_an_entitlement_that_ends_takes_the_role_and_the_daily_check_never_gives_it_back(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    entitlement = h.fake.entitlement(CARA_ID, RUST_SKU)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)
    await h.fake.wait_for_call("PUT", r"/guilds/\d+/members/\d+/roles/\d+")
    await h.eventually(lambda: ledger(h))
    ended = {**entitlement, "ends_at": iso(datetime.now(UTC) - timedelta(minutes=1))}
    await h.fake.dispatch("ENTITLEMENT_UPDATE", ended)
    await h.fake.wait_for_call("DELETE", r"/guilds/\d+/members/\d+/roles/\d+")
    await h.fake.dispatch("ENTITLEMENT_UPDATE", ended)  # delivered again
    await h.adapter._drain(5.0)
    assert role_calls(h, "DELETE") == [(CARA_ID, RUST_ROLE)]
    # The sale stays (it was paid, nothing refunded); its access end is in the ledger.
    assert ledger(h) == [(entitlement["id"], False, 0, True, False)]
    report = await reconcile_access(h.engine, h.settings, h.dispatcher.community_id, [h.adapter])
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]  # only the original grant
    assert not report.fixed


async def test_a_cancelled_subscription_keeps_the_role_until_it_ends(make_harness: HarnessFactory) -> None:
    h = await make_harness(start=False)
    # Cara holds the role from her purchase (the fake keeps the roles it started with; Discord would tell).
    next(m for m in h.fake.guild().members if m["user"]["id"] == CARA_ID)["roles"] = [RUST_ROLE]
    await h.start()
    ends = datetime.now(UTC) + timedelta(days=3)
    entitlement = h.fake.entitlement(CARA_ID, RUST_SKU)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)
    await h.fake.dispatch("ENTITLEMENT_UPDATE", {**entitlement, "ends_at": iso(ends)})  # cancelled: ends later
    await h.eventually(lambda: ledger(h) and ledger(h)[0][3])
    await h.adapter._drain(5.0)
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)] and role_calls(h, "DELETE") == []
    community_id = h.dispatcher.community_id
    await reconcile_access(h.engine, h.settings, community_id, [h.adapter], now=ends - timedelta(hours=1))
    assert role_calls(h, "DELETE") == []
    # No event comes when it ends: the daily check after the end takes the role and does not give it back.
    after = await reconcile_access(h.engine, h.settings, community_id, [h.adapter], now=ends + timedelta(hours=1))
    assert role_calls(h, "DELETE") == [(CARA_ID, RUST_ROLE)] and len(after.fixed) == 1
    await reconcile_access(h.engine, h.settings, community_id, [h.adapter], now=ends + timedelta(days=1))
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]  # the purchase's grant only, never again


async def test_a_test_mode_entitlement_is_a_test_purchase_without_a_role_or_revenue(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness()
    test_purchase = {**h.fake.entitlement(CARA_ID, RUST_SKU), "type": 4}
    await h.fake.dispatch("ENTITLEMENT_CREATE", test_purchase)
    await h.eventually(lambda: ledger(h))
    await h.fake.wait_for_call("POST", r"/channels/\d+/messages")  # the buyer is told it was a test purchase
    await h.adapter._drain(5.0)
    assert ledger(h) == [(test_purchase["id"], True, 0, False, False)]
    assert role_calls(h, "PUT") == []
    assert "No sales recorded yet." in await revenue(h)
    # The daily check agrees: a test purchase does not earn the role.
    await reconcile_access(h.engine, h.settings, h.dispatcher.community_id, [h.adapter])
    assert role_calls(h, "PUT") == []


async def test_test_mode_entitlements_give_the_role_when_the_owner_turns_it_on(make_harness: HarnessFactory) -> None:
    h = await make_harness(discord={"grant_test_entitlements": True}, start=False)
    next(m for m in h.fake.guild().members if m["user"]["id"] == CARA_ID)["roles"] = [RUST_ROLE]  # as granted
    await h.start()
    test_purchase = {**h.fake.entitlement(CARA_ID, RUST_SKU), "type": 4}
    await h.fake.dispatch("ENTITLEMENT_CREATE", test_purchase)
    await h.fake.wait_for_call("PUT", r"/guilds/\d+/members/\d+/roles/\d+")
    await h.adapter._drain(5.0)
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]
    assert ledger(h) == [(test_purchase["id"], True, 0, False, False)]
    assert "No sales recorded yet." in await revenue(h)  # still not revenue
    # The daily check counts it as owned: the role stays.
    report = await reconcile_access(h.engine, h.settings, h.dispatcher.community_id, [h.adapter])
    assert role_calls(h, "DELETE") == [] and not report.fixed
