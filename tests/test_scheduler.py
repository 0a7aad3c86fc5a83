"""The scheduler with an injected clock: the weekly digest goes out once, late when missed, never twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from bot.config import Settings, parse_settings
from bot.scheduler import Scheduler, digest_slot, due_digest_week
from storage.digests import digest_record
from storage.engine import make_engine
from storage.ingest import IngestStore
from storage.job_runs import last_job_runs
from storage.models import Digest, JobRun
from tests.conftest import COMMUNITY, Events
from tests.helpers.platform_double import FakeClock, RecordingPlatform, make_scheduler

BERLIN = ZoneInfo("Europe/Berlin")
WEEK_MONDAY = datetime(2024, 3, 4, tzinfo=BERLIN).date()  # ISO week 2024-W10
SLOT = datetime(2024, 3, 11, 9, 0, tzinfo=BERLIN)  # Monday 09:00 after it: the default digest time


def settings(**digest: object) -> Settings:
    return parse_settings(
        {
            "community": {"name": COMMUNITY, "timezone": "Europe/Berlin"},
            "telegram": {"owner_ids": [7001]},
            "digest": {"telegram_chat_ids": [-100500], "discord_channel_ids": [900], **digest},
        }
    )


def seed_week(store: IngestStore, ev: Events) -> None:
    events = []
    for day in range(7):
        at = datetime(2024, 3, 4 + day, 12, tzinfo=UTC)
        events += [ev.message(f"u{i}", at=at) for i in range(1 + day % 3)]
    store.write_batch(events)


def scheduler(
    engine: Engine, store: IngestStore, clock: FakeClock, *platforms: RecordingPlatform, cfg: Settings | None = None
) -> Scheduler:
    return make_scheduler(cfg or settings(), engine, store.community_id(COMMUNITY), clock, *platforms)


def test_the_digest_slot_is_the_configured_weekday_and_time_after_the_week() -> None:
    cfg = settings()
    assert digest_slot(WEEK_MONDAY, cfg) == SLOT
    assert due_digest_week(SLOT, cfg) == WEEK_MONDAY
    # A minute before Monday 09:00 the newest due digest is still the week before.
    assert due_digest_week(SLOT - timedelta(minutes=1), cfg) == WEEK_MONDAY - timedelta(days=7)
    friday = settings(weekday="friday", time="17:30")
    assert digest_slot(WEEK_MONDAY, friday) == datetime(2024, 3, 15, 17, 30, tzinfo=BERLIN)


@pytest.mark.storage
async def test_digest_goes_to_channels_and_owners_once_across_a_restart(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    seed_week(store, ev)
    clock = FakeClock(SLOT.astimezone(UTC))
    telegram, discord = RecordingPlatform("telegram"), RecordingPlatform("discord")

    first = await scheduler(engine, store, clock, telegram, discord).run("digest")
    assert first.outcome == "ok", first.detail
    targets = sorted((m.platform, m.target, m.direct) for m in telegram.sent + discord.sent)
    assert targets == [("discord", "900", False), ("telegram", "-100500", False), ("telegram", "7001", True)]
    for message in telegram.sent + discord.sent:
        text = message.reply.text.plain()
        assert "2024-W10" in text
        assert "late" not in text.lower()
        assert message.reply.attachments and message.reply.attachments[0].data.startswith(b"\x89PNG")

    # A restart (a new scheduler on the same database) at the same slot, and the cron firing again an hour later.
    again = await scheduler(engine, store, clock, telegram, discord).run("digest")
    clock.advance(timedelta(hours=1))
    third = await scheduler(engine, store, clock, telegram, discord).run("digest")
    assert (again.outcome, third.outcome) == ("skipped", "skipped")
    assert len(telegram.sent) + len(discord.sent) == 3
    record = digest_record(engine, store.community_id(COMMUNITY), "2024-W10")
    assert record is not None and record.sent_at is not None and not record.late
    # The owners' version is kept with the week, exactly as the owner received it, to be shown again later.
    (to_owner,) = [m for m in telegram.sent if m.direct]
    assert record.owner_text == to_owner.reply.text.plain()
    runs = last_job_runs(engine, store.community_id(COMMUNITY))
    assert runs["digest"].outcome == "skipped" and runs["digest"].finished_at is not None


@pytest.mark.storage
async def test_two_processes_racing_for_one_digest_send_it_once(
    engine: Engine, store: IngestStore, ev: Events, db_url: str
) -> None:
    seed_week(store, ev)
    clock = FakeClock(SLOT.astimezone(UTC))
    platforms = [RecordingPlatform("telegram") for _ in range(4)]
    engines = [make_engine(db_url) for _ in platforms]  # one connection pool per "process"
    try:
        results = await asyncio.gather(
            *(scheduler(e, store, clock, p).run("digest") for e, p in zip(engines, platforms, strict=True))
        )
    finally:
        for e in engines:
            e.dispose()
    assert sorted(r.outcome for r in results) == ["ok", "skipped", "skipped", "skipped"]
    assert sum(len(p.sent) for p in platforms) == 2  # one channel and one owner, from one process
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Digest)).scalar_one() == 1


@pytest.mark.storage
async def test_a_digest_missed_while_down_is_sent_late_once(engine: Engine, store: IngestStore, ev: Events) -> None:
    seed_week(store, ev)
    clock = FakeClock(datetime(2024, 3, 8, 12, tzinfo=UTC))
    telegram = RecordingPlatform("telegram")
    sched = scheduler(engine, store, clock, telegram)
    assert (await sched.run("refresh")).outcome == "ok"  # the bot was running before the slot...

    clock.current = datetime(2024, 3, 13, 15, tzinfo=UTC)  # ...and comes back on Wednesday
    restarted = scheduler(engine, store, clock, telegram)
    result = await restarted.catch_up()
    assert result is not None and result.outcome == "ok" and "(late)" in result.detail
    assert len(telegram.sent) == 2
    assert all("Sent late" in m.reply.text.plain() for m in telegram.sent)
    record = digest_record(engine, store.community_id(COMMUNITY), "2024-W10")
    assert record is not None and record.late
    (to_owner,) = [m for m in telegram.sent if m.direct]
    assert record.owner_text == to_owner.reply.text.plain() and "Sent late" in record.owner_text

    assert await scheduler(engine, store, clock, telegram).catch_up() is None
    assert (await restarted.run("digest")).outcome == "skipped"
    assert len(telegram.sent) == 2


@pytest.mark.storage
async def test_first_start_after_the_slot_sends_no_late_digest(engine: Engine, store: IngestStore, ev: Events) -> None:
    seed_week(store, ev)
    telegram = RecordingPlatform("telegram")
    clock = FakeClock(datetime(2024, 3, 13, 15, tzinfo=UTC))
    assert await scheduler(engine, store, clock, telegram).catch_up() is None
    assert telegram.sent == []


@pytest.mark.storage
async def test_without_any_digest_target_the_week_is_not_used_up(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    seed_week(store, ev)
    clock = FakeClock(SLOT.astimezone(UTC))
    result = await scheduler(engine, store, clock).run("digest")  # no platform connected
    assert result.outcome == "skipped"
    assert digest_record(engine, store.community_id(COMMUNITY), "2024-W10") is None
    telegram = RecordingPlatform("telegram")
    assert (await scheduler(engine, store, clock, telegram).run("digest")).outcome == "ok"
    assert len(telegram.sent) == 2


@pytest.mark.storage
async def test_a_target_that_fails_does_not_stop_the_others_and_is_recorded(
    engine: Engine, store: IngestStore, ev: Events
) -> None:
    seed_week(store, ev)
    clock = FakeClock(SLOT.astimezone(UTC))
    telegram = RecordingPlatform("telegram", blocked={"7001"})
    result = await scheduler(engine, store, clock, telegram).run("digest")
    assert result.outcome == "ok"
    assert "sent to 1 of 2" in result.detail and "7001" in result.detail
    assert [m.target for m in telegram.sent] == ["-100500"]
    with engine.connect() as conn:
        detail = conn.execute(select(JobRun.detail).where(JobRun.job == "digest")).scalar_one()
    assert "blocked" in detail


async def test_job_triggers_follow_the_configuration_in_the_community_zone() -> None:
    cfg = parse_settings(
        {
            "community": {"name": COMMUNITY, "timezone": "Europe/Berlin"},
            "digest": {"weekday": "friday", "time": "17:30"},
            "nudges": {"enabled": True, "run_time": "18:15"},
            "schedule": {"refresh_minutes": 5},
        }
    )
    clock = FakeClock(datetime(2024, 3, 4, 12, tzinfo=UTC))
    sched = Scheduler(
        settings=cfg,
        engine=None,
        clock=clock,
        adapters=[],
        community_id=lambda: 1,  # type: ignore[arg-type]
    )
    after = datetime(2024, 3, 4, 12, tzinfo=UTC)
    runs = sched.next_runs(after)
    assert runs["digest"] == datetime(2024, 3, 8, 17, 30, tzinfo=BERLIN)
    assert runs["nudges"] == datetime(2024, 3, 4, 18, 15, tzinfo=BERLIN)
    assert runs["refresh"] is not None and runs["refresh"] - after <= timedelta(minutes=5)
    assert "reconcile" not in runs  # no course and no platform that controls access


@pytest.mark.storage
async def test_a_digest_no_owner_received_keeps_no_owner_text(engine: Engine, store: IngestStore, ev: Events) -> None:
    # Only the channel version went out: there is no owners' text to show again (the channel's is not it).
    seed_week(store, ev)
    clock = FakeClock(SLOT.astimezone(UTC))
    telegram = RecordingPlatform("telegram")
    result = await scheduler(engine, store, clock, telegram, cfg=settings(send_to_owners=False)).run("digest")
    assert result.outcome == "ok" and [m.target for m in telegram.sent] == ["-100500"]
    record = digest_record(engine, store.community_id(COMMUNITY), "2024-W10")
    assert record is not None and record.sent_at is not None and record.owner_text is None
