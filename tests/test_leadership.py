"""Several processes on one PostgreSQL database: one leader runs the jobs, and a week goes by without doubles.

The week is simulated in-process: two apps built by ``build_app`` (separate engines, as two processes have, on
the same database) read one fake clock; each day the jobs' cron slots fire on whichever app runs its scheduler.
Midweek the leader's database session is killed by the server, as when its host dies or its network is cut.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from bot.app import App, build_app
from bot.config import Settings, parse_settings
from storage.engine import make_engine
from storage.events import Platform
from storage.ingest import IngestStore
from storage.leadership import AlreadyRunningError, LeaderLock, SqliteFileLock, leader_key, sqlite_lock_path
from tests.conftest import COMMUNITY, Events, require_backend
from tests.helpers.platform_double import FakeClock, RecordingPlatform

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2024, 5, 6, tzinfo=BERLIN)  # the digest of ISO week 2024-W18 is due at 09:00
LAST_SEEN = datetime(2024, 4, 1, 12, tzinfo=UTC)  # five weeks before: inactive, to be nudged
GROUP, OWNER = -100500, 7001


@pytest.fixture
def backend() -> str:
    """PostgreSQL only: leader election is for several processes, and SQLite runs one (see the last test)."""
    require_backend("postgresql")
    return "postgresql"


@pytest.fixture
def pg_url(db_url: str) -> str:
    return db_url


def settings() -> Settings:
    return parse_settings(
        {
            "community": {"name": COMMUNITY, "timezone": "Europe/Berlin"},
            "telegram": {"owner_ids": [OWNER]},
            "digest": {"telegram_chat_ids": [GROUP]},
            "nudges": {"enabled": True, "holdout_share": 0.1, "max_per_run": 10},
        }
    )


def seed(store: IngestStore, ev: Events) -> list[str]:
    inactive = [f"u{i:03d}" for i in range(100)]
    events = [ev.join(u, at=LAST_SEEN - timedelta(days=30)) for u in inactive]
    events += [ev.message(u, at=LAST_SEEN, channel="help") for u in inactive]
    last_week = MONDAY - timedelta(days=7)
    events += [ev.message(f"r{i}", at=(last_week + timedelta(days=d, hours=12))) for d in range(7) for i in range(3)]
    store.write_batch(events)
    return inactive


def lock_holder_pid(engine: Engine, key: int) -> int | None:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    with engine.connect() as conn:
        pid = conn.execute(
            text(
                "select pid from pg_locks where locktype = 'advisory' and granted "
                "and classid::bigint = :hi and objid::bigint = :lo and objsubid = 1"
            ),
            {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF},
        ).scalar_one_or_none()
    return int(pid) if pid is not None else None


async def released(engine: Engine, key: int) -> None:
    """Wait for the server to end a terminated backend (it signals it and returns at once)."""
    for _ in range(600):
        if lock_holder_pid(engine, key) is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the terminated leader's session still holds the lock")


class Process:
    """One simulated ``cohortbot run``: an app on its own engine, with a recording Telegram."""

    def __init__(self, url: str, clock: FakeClock) -> None:
        self.telegram = RecordingPlatform("telegram")
        self.app: App = build_app(
            settings(), clock=clock, adapters=lambda deps: [self.telegram], engine=make_engine(url), sleep=clock.sleep
        )

    @property
    def leads(self) -> bool:
        return self.app.scheduler.running

    async def fire(self, job: str) -> None:
        """The job's cron slot: APScheduler fires it only in a process whose scheduler runs."""
        if self.leads:
            await self.app.scheduler.run(job)


@pytest.fixture
async def processes(pg_url: str, store: IngestStore) -> AsyncIterator[tuple[Process, Process, FakeClock]]:
    clock = FakeClock(MONDAY.astimezone(UTC))
    first, second = Process(pg_url, clock), Process(pg_url, clock)
    try:
        yield first, second, clock
    finally:
        for process in (first, second):
            await process.app.stop()


@pytest.mark.storage
async def test_leadership_moves_midweek_and_the_week_has_one_digest_and_single_nudges(
    processes: tuple[Process, Process, FakeClock], store: IngestStore, engine: Engine
) -> None:
    a, b, clock = processes
    inactive = seed(store, Events(Platform.TELEGRAM))
    await a.app.start()
    await b.app.start()
    assert (a.leads, b.leads) == (True, False)
    assert a.app.leader_lock is not None and a.app.leader_lock.key is not None
    assert lock_holder_pid(engine, a.app.leader_lock.key) is not None
    assert b.app.leadership is not None
    await b.app.leadership.check()
    assert not b.leads  # a live leader keeps the lock

    for day in range(7):
        date = MONDAY + timedelta(days=day)
        clock.current = date.replace(hour=9).astimezone(UTC)
        for process in (a, b):
            await process.fire("digest")  # only Monday's slot is due; later runs find the week claimed
        if day == 2:
            # The leader's session dies (its host or network is gone): the server releases the lock.
            assert a.app.leader_lock is not None and a.app.leader_lock.key is not None
            pid = lock_holder_pid(engine, a.app.leader_lock.key)
            with engine.connect() as conn:
                conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
            await released(engine, a.app.leader_lock.key)
            assert b.app.leadership is not None
            await b.app.leadership.check()
            # Until its next heartbeat the old leader still fires its jobs: both lead for a moment, and the
            # digest claim and the nudge log keep that from sending anything twice.
            assert (a.leads, b.leads) == (True, True)
            for process in (a, b):
                await process.fire("digest")
        clock.current = date.replace(hour=18).astimezone(UTC)
        for process in (a, b):
            await process.fire("nudges")
        if day == 2:
            assert a.app.leadership is not None
            await a.app.leadership.check()
            assert (a.leads, b.leads) == (False, True)

    sent = a.telegram.sent + b.telegram.sent
    digests = [m for m in sent if "2024-W18" in m.reply.text.plain()]
    assert sorted((m.target, m.direct) for m in digests) == [(str(GROUP), False), (str(OWNER), True)]
    nudged = [m.target for m in sent if m not in digests]
    assert len(nudged) == len(set(nudged)), "a member was nudged twice"
    assert set(nudged) <= set(inactive)
    assert len(nudged) >= 70  # at least ten a day, every day, across the takeover
    assert any(m not in digests for m in b.telegram.sent), "the new leader ran the nudges"


@pytest.mark.storage
async def test_a_clean_stop_hands_the_lock_over_at_the_followers_next_try(
    processes: tuple[Process, Process, FakeClock], store: IngestStore
) -> None:
    a, b, _ = processes
    await a.app.start()
    await b.app.start()
    assert (a.leads, b.leads) == (True, False)
    assert b.app.health_problems() == []  # a follower is healthy without a scheduler
    await a.app.stop()
    assert b.app.leadership is not None
    await b.app.leadership.check()
    assert b.leads
    assert b.app.health_problems() == []


@pytest.mark.storage
async def test_a_leader_that_lost_its_session_leads_again_when_nobody_took_over(
    processes: tuple[Process, Process, FakeClock], store: IngestStore, engine: Engine
) -> None:
    a, _, clock = processes
    await a.app.start()
    assert a.app.leader_lock is not None and a.app.leader_lock.key is not None and a.app.leadership is not None
    with engine.connect() as conn:  # the database server restarted, say
        conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": lock_holder_pid(engine, a.app.leader_lock.key)})
    await released(engine, a.app.leader_lock.key)
    await a.app.leadership.check()
    assert a.leads  # stopped, then started again with a new session
    assert lock_holder_pid(engine, a.app.leader_lock.key) is not None
    clock.current = (MONDAY + timedelta(days=7, hours=9)).astimezone(UTC)
    assert (await a.app.scheduler.run("refresh")).outcome == "ok"
    assert a.app.health_problems() == []


@pytest.mark.storage
def test_the_lock_is_one_per_community_and_schema(pg_url: str) -> None:
    engines = [make_engine(pg_url) for _ in range(3)]
    first, second = LeaderLock(engines[0], COMMUNITY), LeaderLock(engines[1], COMMUNITY)
    other = LeaderLock(engines[2], "another community")
    try:
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire()
        assert other.try_acquire()  # another community on the same database leads on its own
        assert first.key == second.key != other.key
        first.drop()  # the session ends: the server releases the lock as its backend exits, a moment later
        assert any(second.try_acquire() or time.sleep(0.05) for _ in range(600))
    finally:
        for lock in (first, second, other):
            lock.release()
        for e in engines:
            e.dispose()
    # Stable across processes (no Python hash seed in it) and per schema.
    assert leader_key("PyCraft", "public") == leader_key("PyCraft", "public") != leader_key("PyCraft", "t_x")


def test_a_second_sqlite_process_lock_is_refused_and_freed_with_the_first(tmp_path: Path) -> None:
    path = sqlite_lock_path(f"sqlite:///{tmp_path}/cohortbot.db")
    assert path == tmp_path / "cohortbot.db.lock"
    assert sqlite_lock_path("sqlite://") is None and sqlite_lock_path("postgresql://h/db") is None
    first, second = SqliteFileLock(path), SqliteFileLock(path)
    first.acquire()
    with pytest.raises(AlreadyRunningError, match="already running on this SQLite database"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
