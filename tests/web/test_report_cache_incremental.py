"""The dashboard's figures after a commit: refreshed incrementally, and equal to a full build (both backends)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pandas as pd
from pandas.testing import assert_frame_equal
from sqlalchemy import Engine

from bot.web.data import REPORT_CACHE, DashboardData, DashboardRange, ReportCache
from storage.events import (
    ChannelRef,
    MemberJoined,
    MemberRef,
    MessageEvent,
    Platform,
    PurchaseEvent,
    PurchaseSource,
    ReactionEvent,
)
from storage.ingest import IngestStore
from storage.writer import Commit, EventWriter
from tests.web.pages_app import COMMUNITY, NOW, TIMEZONE, at, pages_app, seed

TG = Platform.TELEGRAM
DEFAULT = DashboardRange(date(2024, 1, 1), date(2024, 3, 20))  # 12 weeks: the member table shares the report's days
LONG = DashboardRange(date(2023, 6, 5), date(2024, 3, 20))  # 42 weeks: the table takes the last 121 days only


def message(message_id: str, user: str, when: datetime, channel: str = "general") -> MessageEvent:
    return MessageEvent(
        platform=TG,
        community=COMMUNITY,
        message_id=message_id,
        channel=ChannelRef(channel, name=f"#{channel}"),
        author=MemberRef(user, display_name=user.title()),
        occurred_at=when,
        length=12,
    )


async def refreshed(cache: ReportCache, rng: DashboardRange) -> DashboardData:
    """The figures once the refresh the last commit started has finished."""
    await cache.get(rng)
    # Generous: a refresh on PostgreSQL takes seconds on a loaded 2-core machine; this waits, it does not time.
    for _ in range(3000):
        if cache._entries[rng].task is None and cache._entries[rng].version == cache.version:
            return await cache.get(rng)
        await asyncio.sleep(0.02)
    raise AssertionError("the figures were not refreshed within a minute")


def assert_same(refreshed_data: DashboardData, full: DashboardData) -> None:
    assert refreshed_data.report == full.report
    assert refreshed_data.hint == full.hint
    assert refreshed_data.ledger == full.ledger
    assert refreshed_data.latest_day == full.latest_day
    assert_frame_equal(refreshed_data.member_table, full.member_table)


async def test_a_commit_refreshes_only_the_days_it_touched_and_the_figures_equal_a_full_build(engine: Engine) -> None:
    community_id = seed(engine)
    store = IngestStore(engine)
    store.register_community(COMMUNITY, TIMEZONE)
    writer = EventWriter(store, flush_interval=0.01)
    app = pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW, writer=writer)
    cache = app[REPORT_CACHE]
    await writer.start()
    try:
        before = {rng: await cache.get(rng) for rng in (DEFAULT, LONG)}

        # Today's messages by a newcomer, a back-dated message in another channel, a join and a reaction.
        await writer.put(MemberJoined(TG, COMMUNITY, MemberRef("dee", display_name="Dee"), at(20, 8)))
        await writer.put(message("n1", "dee", at(20, 9)))
        await writer.put(message("n2", "dee", at(20, 10), channel="help"))
        await writer.put(message("n3", "bob", at(14, 10), channel="random"))
        await writer.put(
            ReactionEvent(
                TG, COMMUNITY, ChannelRef("general"), "n1", MemberRef("ann"), "🎉", at(20, 10), message_author_id="dee"
            )
        )
        await writer.flush()

        for rng in (DEFAULT, LONG):
            after = await refreshed(cache, rng)
            assert_same(after, await asyncio.to_thread(cache.full_build, rng))
            assert after.report != before[rng].report
        assert cache.incremental_builds == 2
        after = await cache.get(DEFAULT)
        assert after.report.summary.messages_28d == before[DEFAULT].report.summary.messages_28d + 3
        assert "Dee" in set(after.member_table["name"])
        assert {c.name: c.active_members for c in after.report.channels}["#random"] == 1

        # A purchase by the newcomer from before the loaded history (an import), then messages of theirs from the
        # 30 days after it: buyer retention reads those older days, which the second commit changes.
        await writer.record_purchase(
            PurchaseEvent(
                TG,
                COMMUNITY,
                "ch-dee",
                MemberRef("dee"),
                "py-async",
                500,
                "XTR",
                datetime(2023, 9, 1, 9, tzinfo=UTC),
                PurchaseSource.TELEGRAM_STARS,
            )
        )
        for rng in (DEFAULT, LONG):
            assert_same(await refreshed(cache, rng), await asyncio.to_thread(cache.full_build, rng))
        retained = (await cache.get(DEFAULT)).report.commerce
        await writer.put(message("old", "dee", datetime(2023, 9, 10, 9, tzinfo=UTC)))
        await writer.flush()
        for rng in (DEFAULT, LONG):
            assert_same(await refreshed(cache, rng), await asyncio.to_thread(cache.full_build, rng))
        assert cache.incremental_builds == 6
        after = await cache.get(DEFAULT)
        earlier = before[DEFAULT].report.commerce
        assert after.report.commerce is not None and earlier is not None and retained is not None
        assert after.report.commerce.buyers == earlier.buyers + 1
        assert after.report.commerce.buyer_retention_30d != retained.buyer_retention_30d

        # A removed reaction is taken off the day it was given: its commit says nothing of the day, and the
        # refresh is a full build.
        await writer.put(
            ReactionEvent(
                TG,
                COMMUNITY,
                ChannelRef("general"),
                "n1",
                MemberRef("ann"),
                "🎉",
                at(20, 11),
                added=False,
                message_author_id="dee",
            )
        )
        await writer.flush()
        removed = await refreshed(cache, DEFAULT)
        assert cache.incremental_builds == 6
        assert_same(removed, await asyncio.to_thread(cache.full_build, DEFAULT))
        assert removed.report.summary.reactions_28d == after.report.summary.reactions_28d - 1
    finally:
        await writer.stop()


async def test_commits_of_other_communities_leave_the_figures_alone(engine: Engine) -> None:
    community_id = seed(engine)
    app = pages_app(engine, community_id, community=COMMUNITY, timezone=TIMEZONE, now=NOW)
    cache = app[REPORT_CACHE]
    await cache.get(DEFAULT)
    version = cache.version
    cache.invalidate(Commit(frozenset({"another"}), at(20), at(20)))
    assert cache.version == version
    cache.invalidate(Commit(frozenset({COMMUNITY}), at(20), at(20)))
    assert cache.version == version + 1


async def test_the_writer_tells_its_listeners_what_each_commit_touched(engine: Engine) -> None:
    store = IngestStore(engine)
    store.register_community(COMMUNITY, TIMEZONE)
    writer = EventWriter(store, flush_interval=0.01)
    commits: list[Commit] = []
    writer.add_commit_listener(commits.append)
    await writer.start()
    try:
        await writer.put(message("m1", "ann", at(12, 9)))
        await writer.put(message("m2", "ann", at(10, 9)))
        await writer.put(message("m3", "bob", at(11, 9)))
        await writer.flush()
        await writer.put(
            ReactionEvent(TG, COMMUNITY, ChannelRef("general"), "m1", MemberRef("bob"), "👍", at(13), added=False)
        )
        await writer.flush()
    finally:
        await writer.stop()
    assert commits[0] == Commit(frozenset({COMMUNITY}), at(10, 9), at(12, 9))
    assert commits[-1] == Commit(frozenset({COMMUNITY}), None, None)
    assert all(c.earliest is None or c.earliest.tzinfo is UTC or c.earliest.utcoffset() is not None for c in commits)
    assert pd.Timestamp(commits[0].latest).tz is not None
