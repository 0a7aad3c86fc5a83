"""The daily access check against the fake Discord: a buyer missing the course role gets it, others lose it."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.clock import SystemClock
from storage.events import MemberRef, Platform, PurchaseEvent, PurchaseSource, RefundEvent
from storage.job_runs import last_job_runs
from tests.helpers.platform_double import make_scheduler

from .conftest import ANN_ID, CARA_ID, COMMUNITY, GUILD_ID, OWNER_ID, PY_ROLE, HarnessFactory
from .test_adapter import role_calls


async def test_reconcile_gives_a_missing_role_and_removes_a_refunded_and_an_unpaid_one(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(start=False)
    guild = next(g for g in h.fake.guilds if g.id == GUILD_ID)
    for data in guild.members:
        if data["user"]["id"] in (ANN_ID, OWNER_ID):
            data["roles"] = [PY_ROLE]  # ann never paid; the owner paid and was refunded
    at = datetime(2024, 3, 4, tzinfo=UTC)
    for charge, user in (("g-cara", CARA_ID), ("g-owner", OWNER_ID)):
        await h.writer.record_purchase(
            PurchaseEvent(
                Platform.DISCORD, COMMUNITY, charge, MemberRef(user), "py-async", 4900, "EUR", at, PurchaseSource.GRANT
            )
        )
    await h.writer.record_refund(RefundEvent(Platform.DISCORD, COMMUNITY, "g-owner", at))
    await h.start()

    community_id = h.dispatcher.community_id
    scheduler = make_scheduler(h.settings, h.engine, community_id, SystemClock(), h.adapter)
    result = await scheduler.run("reconcile")
    assert result.outcome == "ok", result.detail
    assert role_calls(h, "PUT") == [(CARA_ID, PY_ROLE)]
    assert sorted(role_calls(h, "DELETE")) == sorted([(ANN_ID, PY_ROLE), (OWNER_ID, PY_ROLE)])
    run = last_job_runs(h.engine, community_id)["reconcile"]
    assert run.detail is not None and "fixed 3" in run.detail
