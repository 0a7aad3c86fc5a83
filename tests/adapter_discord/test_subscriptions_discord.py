"""Discord app subscriptions through the real discord.py client against the fake Discord.

Discord keeps a subscription's entitlement open while the member pays and reports the rest as gateway events:
SUBSCRIPTION_CREATE/UPDATE (the current period, a renewal, a cancellation) and, when it finally ends,
ENTITLEMENT_UPDATE with ``ends_at``. These tests drive a member through all of it and check what they and the owners
would notice: the role, ``/subscriptions``, the ledger (one purchase per paid period), and that neither the daily
reconciliation nor the subscriptions job gives an ended period back or removes the role twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from bot.adapters.discord import translate
from bot.config import CourseSettings
from bot.core.reconcile import reconcile_access
from bot.core.reported_subscriptions import ReportedStatus
from bot.core.subscriptions import run_subscriptions
from storage.catalog import CourseRecord, sync_courses
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource
from storage.ingest import IngestStore
from storage.ledger import ledger, live_purchase
from storage.subscriptions import end_period_purchases_at, member_subscriptions, record_period
from tests.conftest import COMMUNITY as STORAGE_COMMUNITY
from tests.conftest import T0
from tests.fakes.discord_api import SUBSCRIPTION_ACTIVE, SUBSCRIPTION_ENDING, SUBSCRIPTION_INACTIVE, FakeDiscord

from .conftest import CARA_ID, PY_ROLE, RUST_ROLE, RUST_SKU, Harness, HarnessFactory
from .test_adapter import body, role_calls
from .test_sale_alerts import posts_to

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "platform-payloads" / "discord"
PERIOD = timedelta(days=30)
MONTHLY_COURSES = {
    "courses": [
        {"id": "py-async", "title": "Async Python", "price": 49, "currency": "EUR", "discord_role_id": int(PY_ROLE)},
        {
            "id": "rust-intro",
            "title": "Intro to Rust",
            "price": 9,
            "currency": "USD",
            "billing": "monthly",
            "discord_role_id": int(RUST_ROLE),
            "discord_sku_id": int(RUST_SKU),
        },
    ]
}


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def purchases(h: Harness) -> list[tuple[str, int, str, bool]]:
    """(charge id, amount, currency, refunded) of every purchase, oldest first."""
    return [
        (str(r[0]), int(r[1]), str(r[2]), bool(r[3]))
        for r in h.rows(
            "SELECT p.charge_id, p.amount, p.currency, f.id IS NOT NULL FROM purchases p "
            "LEFT JOIN refunds f ON f.purchase_id = p.id ORDER BY p.id"
        )
    ]


def stored(h: Harness) -> list[tuple[Any, ...]]:
    """(platform, ref, course, paid until, cancelled, ended, periods) of Cara's subscriptions."""
    records = member_subscriptions(h.engine, h.dispatcher.community_id, "discord", CARA_ID)
    return [
        (
            r.platform,
            r.subscription_ref,
            r.course_key,
            r.ends_at,
            r.cancelled_at is not None,
            r.ended_at is not None,
            h.rows("SELECT count(*) FROM subscription_periods WHERE subscription_id = :id", id=r.id)[0][0],
        )
        for r in records
    ]


def same_time(value: datetime, expected: datetime) -> bool:
    return abs(value - expected) < timedelta(milliseconds=1)


async def my_subscriptions(h: Harness, user_id: str = CARA_ID) -> str:
    token = await h.fake.slash(user_id, "subscriptions")
    [answer] = await h.fake.wait_responses(token)
    return str(body(answer)["content"])


def dms(h: Harness) -> list[str]:
    """Texts the bot sent in direct messages (the fake names a DM channel 7<user id>)."""
    return [
        str((c.json or {}).get("content", ""))
        for c in h.fake.find("POST", r"/channels/7\d+/messages")
        if (c.json or {}).get("content")
    ]


async def monthly_harness(make_harness: HarnessFactory, **sections: Any) -> Harness:
    h = await make_harness(sections=MONTHLY_COURSES | sections)
    h.fake.reflect_role_changes = True  # the member cache follows role changes, as with Discord
    return h


async def subscribe(h: Harness, *, start: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cara subscribes, in the order Discord sends it: subscription (entitlement pending), entitlement, update."""
    entitlement = {**h.fake.entitlement(CARA_ID, RUST_SKU), "starts_at": start.isoformat()}
    sub = h.fake.subscription(CARA_ID, RUST_SKU, start=start, end=start + PERIOD, status=SUBSCRIPTION_ENDING)
    entitlement["subscription_id"] = sub["id"]
    await h.fake.dispatch("SUBSCRIPTION_CREATE", sub)
    await h.fake.dispatch("ENTITLEMENT_CREATE", entitlement)
    sub = {**sub, "status": SUBSCRIPTION_ACTIVE, "entitlement_ids": [entitlement["id"]]}
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", sub)
    await h.fake.wait_for_call("PUT", r"/guilds/\d+/members/\d+/roles/\d+")
    await h.adapter._drain(5.0)
    return sub, entitlement


# ------------------------------------------------------------------------------------------------------------
# Translation of the recorded payload


def test_the_documented_subscription_object_translates_to_a_period_of_the_course() -> None:
    payload = load("subscription_object_example.discord-api-docs.json")
    course = CourseSettings(
        id="rust-intro",
        title="Intro to Rust",
        price=Decimal(9),
        currency="USD",
        billing="monthly",
        discord_sku_id=int(payload["sku_ids"][0]),
    )
    now = datetime(2024, 8, 28, tzinfo=UTC)
    sub = translate.subscription_update("SUBSCRIPTION_UPDATE", payload, community="PyCraft", courses=[course], now=now)
    assert sub is not None
    assert (sub.platform, sub.subscription_ref, sub.member.user_id, sub.course_id) == (
        Platform.DISCORD,
        "1278078770116427839",
        "1088605110638227537",
        "rust-intro",
    )
    assert sub.status is ReportedStatus.ACTIVE and sub.cancelled_at is None
    assert sub.period_end - sub.period_start == timedelta(days=31)
    assert (sub.amount, sub.currency) == (900, "USD")
    # The id says when the subscription was made: the first period starts then, so this period is not a renewal.
    assert sub.created_at is not None and abs(sub.period_start - sub.created_at) < timedelta(seconds=1)
    assert sub.period_charge_id == "1278078770116427839:2024-08-27T19:48:44.406602+00:00"
    # Statuses as the monetization guide numbers them; a deleted subscription is over.
    for raw, status in ((1, ReportedStatus.ENDING), (2, ReportedStatus.INACTIVE)):
        changed = {**payload, "status": raw}
        result = translate.subscription_update("SUBSCRIPTION_UPDATE", changed, community="P", courses=[course], now=now)
        assert result is not None and result.status is status
    deleted = translate.subscription_update("SUBSCRIPTION_DELETE", payload, community="P", courses=[course], now=now)
    assert deleted is not None and deleted.status is ReportedStatus.INACTIVE
    # Another app's SKU, and a status this version does not know, are ignored rather than guessed.
    other = {**payload, "sku_ids": ["5"]}
    assert translate.subscription_update("SUBSCRIPTION_UPDATE", other, community="P", courses=[course], now=now) is None
    odd = {**payload, "status": 7}
    assert translate.subscription_update("SUBSCRIPTION_UPDATE", odd, community="P", courses=[course], now=now) is None


# ------------------------------------------------------------------------------------------------------------
# The whole life of a subscription, through the gateway


async def test_a_subscription_is_stored_renewed_cancelled_and_ended_once(make_harness: HarnessFactory) -> None:
    h = await monthly_harness(make_harness)
    start = datetime.now(UTC) - timedelta(days=31)  # renewed a day ago
    sub, entitlement = await subscribe(h, start=start)
    community_id = h.dispatcher.community_id

    # Created: the role is given once, the subscription is stored with its first period, paid by the entitlement.
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]
    [(platform, ref, course, until, cancelled, ended, periods)] = stored(h)
    assert (platform, ref, course, cancelled, ended, periods) == ("discord", sub["id"], "rust-intro", False, False, 1)
    assert same_time(until, start + PERIOD)
    assert purchases(h) == [(entitlement["id"], 900, "USD", False)]
    first_day = start + PERIOD
    assert "renewal is due" in await my_subscriptions(h)  # ended yesterday, renewal not reported yet
    assert f"paid until {first_day:%a} {first_day.day} {first_day:%b %Y}" in await my_subscriptions(h)

    # Renewed: a new period, paid-until moves on, one purchase more at the configured price.
    renewed = {
        **sub,
        "current_period_start": (start + PERIOD).isoformat(),
        "current_period_end": (start + 2 * PERIOD).isoformat(),
    }
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", renewed)
    await h.eventually(lambda: len(purchases(h)) == 2)
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", renewed)  # delivered again
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", sub)  # and an old one replayed late
    await h.adapter._drain(5.0)
    [(_, _, _, until, cancelled, ended, periods)] = stored(h)
    assert same_time(until, start + 2 * PERIOD) and periods == 2 and not cancelled and not ended
    renewal_charge = f"{sub['id']}:{(start + PERIOD).isoformat()}"
    assert purchases(h) == [(entitlement["id"], 900, "USD", False), (renewal_charge, 900, "USD", False)]
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]  # she kept the role: nothing granted again
    revenue_token = await h.fake.slash("810000000000000003", "revenue")  # Bob, an admin
    [revenue] = await h.fake.wait_responses(revenue_token)
    assert "**All time**: 18.00 USD" in str(body(revenue)["content"])  # both payments are revenue

    # Cancelled in Discord's settings: /subscriptions says so and where to change it; access stays until the end.
    cancelled_at = datetime.now(UTC)
    cancelled_sub = {**renewed, "status": SUBSCRIPTION_ENDING, "canceled_at": cancelled_at.isoformat()}
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", cancelled_sub)
    await h.eventually(lambda: stored(h)[0][4])
    listing = await my_subscriptions(h)
    end_day = start + 2 * PERIOD
    assert f"cancelled: your access ends on {end_day:%a} {end_day.day} {end_day:%b %Y}" in listing
    assert "User Settings → Subscriptions" in listing and "the bot cannot do it for you" in listing
    await reconcile_access(h.engine, h.settings, community_id, [h.adapter])
    assert role_calls(h, "DELETE") == []

    # Ended: Discord ends the entitlement; the role goes once, and neither the job nor the daily check acts again.
    ended_at = datetime.now(UTC) - timedelta(seconds=1)
    ended_entitlement = {**entitlement, "ends_at": ended_at.isoformat()}
    await h.fake.dispatch("ENTITLEMENT_UPDATE", ended_entitlement)
    await h.fake.wait_for_call("DELETE", r"/guilds/\d+/members/\d+/roles/\d+")
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", {**cancelled_sub, "status": SUBSCRIPTION_INACTIVE})
    await h.fake.dispatch("ENTITLEMENT_UPDATE", ended_entitlement)  # delivered again
    await h.adapter._drain(5.0)
    assert role_calls(h, "DELETE") == [(CARA_ID, RUST_ROLE)]
    [(_, _, _, until, _, ended, periods)] = stored(h)
    assert ended and periods == 2 and same_time(until, ended_at)
    now = datetime.now(UTC)
    for later in (now, now + PERIOD, now + 3 * PERIOD):
        job = await run_subscriptions(h.engine, h.settings, community_id, {"discord": h.adapter}, now=later)
        assert (job.removed, job.told, job.reminded) == (0, 0, 0)
        report = await reconcile_access(h.engine, h.settings, community_id, [h.adapter], now=later)
        assert not report.fixed
    assert role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)] and role_calls(h, "DELETE") == [(CARA_ID, RUST_ROLE)]
    # She was told once that it ended and how to come back; the ledger keeps both payments (nothing refunded).
    assert len([t for t in dms(h) if "has ended" in t]) == 1
    assert any("/buy rust-intro" in t for t in dms(h) if "has ended" in t)
    assert [p[3] for p in purchases(h)] == [False, False]
    assert "ended on" in await my_subscriptions(h)


async def test_a_resumed_subscription_is_running_again(make_harness: HarnessFactory) -> None:
    h = await monthly_harness(make_harness)
    start = datetime.now(UTC) - timedelta(days=3)
    sub, _ = await subscribe(h, start=start)
    await h.fake.dispatch(
        "SUBSCRIPTION_UPDATE", {**sub, "status": SUBSCRIPTION_ENDING, "canceled_at": datetime.now(UTC).isoformat()}
    )
    await h.eventually(lambda: stored(h)[0][4])
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", {**sub, "status": SUBSCRIPTION_ACTIVE, "canceled_at": None})
    await h.eventually(lambda: not stored(h)[0][4])
    listing = await my_subscriptions(h)
    assert "cancelled" not in listing and "renews then" in listing
    # Asking the bot to cancel says where members do it instead of pretending.
    token = await h.fake.slash(CARA_ID, "subscriptions", {"action": "cancel", "course": "rust-intro"})
    [answer] = await h.fake.wait_responses(token)
    assert "User Settings → Subscriptions" in str(body(answer)["content"])
    assert not stored(h)[0][4]


async def test_a_refunded_subscription_loses_the_role_even_with_a_renewal_paid(make_harness: HarnessFactory) -> None:
    h = await monthly_harness(make_harness)
    start = datetime.now(UTC) - timedelta(days=31)
    sub, entitlement = await subscribe(h, start=start)
    renewed = {
        **sub,
        "current_period_start": (start + PERIOD).isoformat(),
        "current_period_end": (start + 2 * PERIOD).isoformat(),
    }
    await h.fake.dispatch("SUBSCRIPTION_UPDATE", renewed)
    await h.eventually(lambda: len(purchases(h)) == 2)
    # Discord refunds it: the entitlement is deleted mid-period. The paid renewal must not keep the role.
    await h.fake.dispatch("ENTITLEMENT_DELETE", {**entitlement, "deleted": True})
    await h.fake.wait_for_call("DELETE", r"/guilds/\d+/members/\d+/roles/\d+")
    await h.adapter._drain(5.0)
    assert role_calls(h, "DELETE") == [(CARA_ID, RUST_ROLE)]
    assert stored(h)[0][5]  # ended
    later = datetime.now(UTC) + timedelta(days=1)
    report = await reconcile_access(h.engine, h.settings, h.dispatcher.community_id, [h.adapter], now=later)
    assert not report.fixed and role_calls(h, "PUT") == [(CARA_ID, RUST_ROLE)]


async def test_a_late_renewal_does_not_end_the_subscription_and_reminders_name_discords_settings(
    make_harness: HarnessFactory,
) -> None:
    h = await monthly_harness(make_harness, sales={"renewal_reminder_days": 3})
    start = datetime.now(UTC) - timedelta(days=28)
    await subscribe(h, start=start)
    community_id = h.dispatcher.community_id
    adapters = {"discord": h.adapter}
    # Two days before the period ends: one reminder, with Discord's price and where to cancel.
    job = await run_subscriptions(h.engine, h.settings, community_id, adapters, now=datetime.now(UTC))
    again = await run_subscriptions(h.engine, h.settings, community_id, adapters, now=datetime.now(UTC))
    assert (job.reminded, again.reminded) == (1, 0)
    [reminder] = [t for t in dms(h) if "renews on" in t]
    assert "9.00 USD" in reminder and "User Settings → Subscriptions" in reminder
    # The period ran out but Discord has not ended the entitlement (it may still be retrying the payment):
    # the job leaves her alone, /subscriptions says the renewal is due, and the daily check keeps the role.
    after = start + PERIOD + timedelta(hours=6)
    job = await run_subscriptions(h.engine, h.settings, community_id, adapters, now=after)
    assert (job.removed, job.told) == (0, 0)
    assert not stored(h)[0][5]
    report = await reconcile_access(h.engine, h.settings, community_id, [h.adapter], now=after)
    assert not report.fixed and role_calls(h, "DELETE") == []


# ------------------------------------------------------------------------------------------------------------
# Storage, on SQLite and PostgreSQL


@pytest.mark.storage
def test_ending_a_subscription_early_ends_its_renewals_access_and_never_extends_one(
    engine: Engine, store: IngestStore
) -> None:
    community_id = store.community_id(STORAGE_COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord("rust-intro", "Intro to Rust", price=Decimal(9), currency="USD")])
    ref = "1278078770116427839"
    periods = [(T0, T0 + PERIOD), (T0 + PERIOD, T0 + 2 * PERIOD), (T0 + 2 * PERIOD, T0 + 3 * PERIOD)]
    for start, end in periods:
        charge = f"{ref}:{start.isoformat()}"
        record_period(
            engine,
            community_id,
            platform="discord",
            user_id=CARA_ID,
            course_key="rust-intro",
            charge_id=charge,
            starts_at=start,
            ends_at=end,
            subscription_ref=ref,
        )
        store.record_purchase(
            PurchaseEvent(
                Platform.DISCORD,
                STORAGE_COMMUNITY,
                charge,
                MemberRef(CARA_ID),
                "rust-intro",
                900,
                "USD",
                start,
                PurchaseSource.DISCORD_ENTITLEMENT,
                access_ends_at=end,
            )
        )
    refunded_at = T0 + PERIOD + timedelta(days=10)  # during the second period
    assert end_period_purchases_at(engine, community_id, "discord", ref, refunded_at) == 2
    ends = sorted(r.access_ends_at for r in ledger(engine, community_id) if r.access_ends_at is not None)
    # The first period ended before: untouched (never moved later); the second and third end at the refund.
    assert ends == [T0 + PERIOD, refunded_at, refunded_at]
    assert live_purchase(engine, community_id, "discord", CARA_ID, "rust-intro", now=refunded_at) is None
    assert end_period_purchases_at(engine, community_id, "discord", ref, refunded_at) == 0  # again: nothing changes
    # Another platform's subscription of the same name is not touched.
    assert end_period_purchases_at(engine, community_id, "telegram", ref, T0) == 0


async def test_owners_hear_each_renewal_cancellation_and_resumption_once(
    make_harness: HarnessFactory, fake: FakeDiscord
) -> None:
    channel = fake.guild().channel_id
    h = await monthly_harness(make_harness, sales={"alert_channel": int(channel)})
    start = datetime.now(UTC) - timedelta(days=31)
    sub, _ = await subscribe(h, start=start)
    renewed = {
        **sub,
        "current_period_start": (start + PERIOD).isoformat(),
        "current_period_end": (start + 2 * PERIOD).isoformat(),
    }
    cancelled = {**renewed, "status": SUBSCRIPTION_ENDING, "canceled_at": datetime.now(UTC).isoformat()}
    resumed = {**renewed, "status": SUBSCRIPTION_ACTIVE, "canceled_at": None}
    for update in (renewed, renewed, cancelled, cancelled, resumed, resumed):  # each delivered twice
        await h.fake.dispatch("SUBSCRIPTION_UPDATE", update)
    await h.eventually(lambda: any("Resumed" in t for t in posts_to(h, channel)))
    await h.adapter._drain(5.0)
    lines = posts_to(h, channel)
    [renewal] = [t for t in lines if "Renewal" in t]
    assert "Intro to Rust" in renewal and "9.00 USD" in renewal and f"discord user {CARA_ID}" in renewal
    assert len([t for t in lines if "Cancellation" in t]) == 1
    assert len([t for t in lines if "Resumed" in t]) == 1
    assert len([t for t in lines if "Sale" in t]) == 1  # the first payment, from the entitlement
