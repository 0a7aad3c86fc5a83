"""Daily access reconciliation: buyers have their course access, refunded members and strangers lose it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from bot.config import Settings, parse_settings
from bot.core.reconcile import ReconcileReport, reconcile_access
from storage.catalog import CourseRecord, sync_courses
from storage.events import Platform, RefundEvent
from storage.ingest import IngestStore
from storage.job_runs import last_job_runs
from tests.conftest import COMMUNITY, T0, Events
from tests.helpers.platform_double import FakeClock, RecordingPlatform, make_scheduler


def settings() -> Settings:
    return parse_settings(
        {
            "community": {"name": COMMUNITY, "timezone": "Europe/Berlin"},
            "courses": [
                {"id": "py-async", "title": "Async Python", "price_stars": 500, "discord_role_id": 11},
                {"id": "rust-intro", "title": "Intro to Rust", "price_stars": 300},  # no role: nothing to check
            ],
        }
    )


def sell(store: IngestStore, engine: Engine, ev: Events) -> None:
    cfg = settings()
    community_id = store.community_id(COMMUNITY)
    sync_courses(engine, community_id, [CourseRecord(c.id, c.title, price_stars=c.price_stars) for c in cfg.courses])
    store.record_purchase(ev.purchase("buyer", charge="c-buyer"))
    store.record_purchase(ev.purchase("keeper", charge="c-keeper"))
    store.record_purchase(ev.purchase("refunded", charge="c-refunded"))
    store.record_refund(RefundEvent(Platform.DISCORD, COMMUNITY, "c-refunded", T0 + timedelta(days=1)))
    store.record_purchase(ev.purchase("rust-only", "rust-intro", charge="c-rust"))


@pytest.mark.storage
async def test_reconciliation_gives_a_missing_role_and_removes_refunded_and_unpaid_ones(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    sell(store, engine, ev)
    discord = RecordingPlatform("discord", holders={"py-async": {"keeper", "refunded", "stranger"}})
    report = await reconcile_access(engine, settings(), store.community_id(COMMUNITY), [discord])
    assert sorted(discord.changes) == [
        ("buyer", "py-async", True),
        ("refunded", "py-async", False),
        ("stranger", "py-async", False),
    ]
    assert discord.holders["py-async"] == {"buyer", "keeper"}
    assert len(report.fixed) == 3 and report.problems == ()
    # A second run finds nothing to fix.
    again = await reconcile_access(engine, settings(), store.community_id(COMMUNITY), [discord])
    assert again.fixed == () and len(discord.changes) == 3


@pytest.mark.storage
async def test_a_platform_that_cannot_list_holders_is_asked_per_buyer(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    sell(store, engine, ev)
    discord = RecordingPlatform("discord", holders={"py-async": {"stranger", "refunded"}}, listable=False)
    await reconcile_access(engine, settings(), store.community_id(COMMUNITY), [discord])
    # Buyers get access and refunded members lose it; a stranger it cannot see is left alone.
    assert discord.holders["py-async"] == {"buyer", "keeper", "stranger"}


@pytest.mark.storage
async def test_the_reconcile_job_is_recorded_with_what_it_fixed(engine: Engine, store: IngestStore, ev: Events) -> None:
    sell(store, engine, ev)
    discord = RecordingPlatform("discord", holders={"py-async": set()})
    community_id = store.community_id(COMMUNITY)
    clock = FakeClock(datetime(2024, 3, 10, 3, 30, tzinfo=UTC))
    sched = make_scheduler(settings(), engine, community_id, clock, discord)
    assert "reconcile" in sched.next_runs(clock.now())
    result = await sched.run("reconcile")
    assert result.outcome == "ok"
    run = last_job_runs(engine, community_id)["reconcile"]
    assert run.outcome == "ok" and (run.detail or "").splitlines()[0] == "checked 3 accesses, fixed 2, 0 need an admin"
    assert "gave Async Python access to discord user buyer" in (run.detail or "")


def test_the_job_line_agrees_with_its_counts() -> None:
    one = ReconcileReport(
        checked=1, fixed=(), problems=("discord user 42, Async Python: the bot may not give the role",)
    )
    assert one.summary() == "checked 1 access, fixed 0, 1 needs an admin"
    two = ReconcileReport(checked=2, fixed=("a", "b"), problems=("x", "y"))
    assert two.summary() == "checked 2 accesses, fixed 2, 2 need an admin"
